"""refundPurchase over HTTP: base and bonus points taken back in proportion to the amount
refunded, rounded so the total never exceeds what was awarded; partial, full and
over-refunds; replays; points already spent; another partner's purchase."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from exchange.kit.db import Database
from tests.graphql.conftest import Caller
from tests.loyalty.conftest import REFUND, balance, campaign, gid, link, partner_with, record


async def _refund(
    partner: Caller, purchase_id: str, amount: str | None = None, key: str | None = None
) -> dict[str, Any]:
    given: dict[str, Any] = {"idempotencyKey": key or f"r-{secrets.token_hex(5)}",
                             "purchaseId": purchase_id}  # fmt: skip
    if amount is not None:
        given["amount"] = amount
    result = await partner.gql(REFUND, input=given)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["refundPurchase"]
    return payload


def _codes(payload: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def test_partial_refunds_then_the_rest_take_back_base_and_bonus_in_proportion(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    await campaign(shop, {"kind": "MULTIPLIER", "value": "2"})
    bought = await record(shop, ref, "100.00")  # base 100 + bonus 100
    purchase = bought["purchase"]["id"]

    quarter = await _refund(shop, purchase, "25.00")  # 25 of each
    half = await _refund(shop, purchase, "25.00")  # 25 more of each
    rest = await _refund(shop, purchase)  # everything left: 50 of each
    nothing_left = await _refund(shop, purchase, "0.01")

    assert [int(t["points"]) for t in quarter["transactions"]] == [25, 25]
    assert {t["kind"] for t in quarter["transactions"]} == {"REVERSAL"}
    assert quarter["purchase"]["refundedAmount"] == "25.00"
    assert int(quarter["wallet"]["balance"]) == 150
    assert int(half["wallet"]["balance"]) == 100
    assert [int(t["points"]) for t in rest["transactions"]] == [50, 50]
    assert (rest["purchase"]["refundedAmount"], int(rest["wallet"]["balance"])) == ("100.00", 0)
    assert _codes(nothing_left) == [("INVALID_INPUT", ["input", "amount"])]


async def test_rounding_never_takes_back_more_than_was_awarded(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    await campaign(shop, {"kind": "FIXED", "value": "7"})
    bought = await record(shop, ref, "10.00")  # base 10 + bonus 7 = 17
    purchase = bought["purchase"]["id"]

    # 3.33 of 10.00: base floor(10 x 0.333) = 3, bonus floor(7 x 0.333) = 2
    first = await _refund(shop, purchase, "3.33")
    # the remaining 6.67: whatever is left of each award, 7 + 5
    rest = await _refund(shop, purchase)

    assert [int(t["points"]) for t in first["transactions"]] == [3, 2]
    assert [int(t["points"]) for t in rest["transactions"]] == [7, 5]
    assert await balance(shop, ref) == 0


async def test_an_over_refund_is_refused_and_moves_nothing(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    bought = await record(shop, ref, "10.00")

    over = await _refund(shop, bought["purchase"]["id"], "10.01")
    cents = await _refund(shop, bought["purchase"]["id"], "1.001")

    assert _codes(over) == [("INVALID_INPUT", ["input", "amount"])]
    assert "at most the 10.00 left" in over["userErrors"][0]["message"]
    assert _codes(cents) == [("INVALID_INPUT", ["input", "amount"])]
    assert await balance(shop, ref) == 10


async def test_a_refund_replays_and_its_key_cannot_be_reused_for_another_amount(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    bought = await record(shop, ref, "40.00")
    key = f"refund-{secrets.token_hex(4)}"

    first = await _refund(shop, bought["purchase"]["id"], "10.00", key=key)
    replay = await _refund(shop, bought["purchase"]["id"], "10.00", key=key)
    reused = await _refund(shop, bought["purchase"]["id"], "20.00", key=key)

    assert replay["transactions"] == first["transactions"]
    assert replay["purchase"]["refundedAmount"] == "10.00"
    assert _codes(reused) == [("IDEMPOTENCY_KEY_REUSED", ["input", "idempotencyKey"])]
    assert await balance(shop, ref) == 30


async def test_points_already_spent_cannot_be_taken_back(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    bought = await record(shop, ref, "10.00")
    spent = await shop.gql(
        'mutation($r: String!) { redeemPoints(input: {idempotencyKey: "spend", memberRef: $r,'
        " points: 10}) { userErrors { code } } }",
        r=ref,
    )
    assert spent["data"]["redeemPoints"]["userErrors"] == []

    refused = await _refund(shop, bought["purchase"]["id"])

    assert [e["code"] for e in refused["userErrors"]] == ["INSUFFICIENT_POINTS"]
    listed = await shop.gql(
        "query($id: ID!) { node(id: $id) { ... on Purchase { refundedAmount } } }",
        id=bought["purchase"]["id"],
    )
    assert listed["data"]["node"]["refundedAmount"] == "0.00"


async def test_another_partner_cannot_refund_a_purchase(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    other = await partner_with(db, api)
    bought = await record(shop, await link(shop), "10.00")

    refused = await _refund(other, bought["purchase"]["id"])
    missing = await _refund(shop, gid("Purchase", 10**15))

    assert _codes(refused) == [("NOT_FOUND", ["input", "purchaseId"])]
    assert _codes(missing) == [("NOT_FOUND", ["input", "purchaseId"])]


async def test_a_co_funded_award_goes_back_to_each_funder(
    db: Database, api: httpx.AsyncClient
) -> None:
    owner = await partner_with(db, api)
    funder = await partner_with(db, api)
    funding = [
        {"partnerId": gid("Partner", owner.partner_id), "share": "0.5"},
        {"partnerId": gid("Partner", funder.partner_id), "share": "0.5"},
    ]
    created = await campaign(owner, {"kind": "FIXED", "value": "20"}, activate=False,
                             funding=funding)  # fmt: skip
    await funder.gql(
        "mutation($id: ID!) { acceptCampaignFunding(input: {campaignId: $id}) { userErrors"
        " { code } } }",
        id=created["id"],
    )
    await owner.gql(
        "mutation($id: ID!) { activateCampaign(input: {campaignId: $id}) { userErrors { code } } }",
        id=created["id"],
    )
    ref = await link(owner)
    bought = await record(owner, ref, "10.00")  # base 10 + 10 by the owner + 10 by the funder

    refunded = await _refund(owner, bought["purchase"]["id"])

    assert [int(a["points"]) for a in bought["purchase"]["awards"]] == [10, 10, 10]
    assert [int(t["points"]) for t in refunded["transactions"]] == [10, 10, 10]
    assert int(refunded["wallet"]["balance"]) == 0
