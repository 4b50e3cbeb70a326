"""What the schema fuzzer (test_fuzz.py) found, each held by a test of its own: the input
that failed inside the server, and the clear answer it gets now."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest

from exchange.kit.db import Database
from graphql_schema import ids
from tests.graphql.conftest import Caller, email, new_operator, new_partner

CHANGE_CONTRACT = """mutation {{ changeContract(input: {{partnerId: "UGFydG5lcjox",
  effectiveFrom: "2100-01-01T00:00:00+00:00", creditLimitPoints: {literal}}}) {{
  userErrors {{ code }} }} }}"""


def _no_internal_error(result: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = result.get("errors") or []
    for error in errors:
        assert not error["message"].startswith("Unexpected error"), error
        assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR", error
    return errors


@pytest.mark.parametrize("literal", ['"abc"', '"٣"', '"--5"', f'"{"9" * 5000}"', "true"])
async def test_a_bigint_that_is_no_64_bit_integer_is_refused_as_the_clients_mistake(
    db: Database, api: httpx.AsyncClient, literal: str
) -> None:
    """Found: a BigInt literal that is not an integer (``creditLimitPoints: "abc"``) was
    a masked "Unexpected error": the scalar raised a ValueError, which the schema treats
    as a bug of ours. Non-ASCII digits were read as digits."""
    operator = await new_operator(db, api)
    as_literal = await api.post(
        "/graphql",
        json={"query": CHANGE_CONTRACT.format(literal=literal)},
        headers={"Authorization": f"Bearer {operator.token}"},
    )
    as_variable = await api.post(
        "/graphql",
        json={
            "query": CHANGE_CONTRACT.format(literal="$v").replace(
                "mutation", "mutation($v: BigInt)"
            ),
            "variables": {"v": literal.strip('"') if literal != "true" else True},
        },
        headers={"Authorization": f"Bearer {operator.token}"},
    )

    for response in (as_literal, as_variable):
        assert response.status_code == 200, response.text
        errors = _no_internal_error(response.json())
        assert len(errors) == 1
        assert "BigInt must be" in errors[0]["message"]
        assert response.json().get("data") is None  # refused before anything ran


LINK = """mutation($ref: String!, $email: String) {
  linkMember(input: {memberRef: $ref, email: $email}) { userErrors { code } } }"""
EARN = """mutation($key: String!, $ref: String!) {
  earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: 50}) {
    transaction { id } userErrors { code } } }"""
TRANSFER = """mutation($key: String!, $to: String!) {
  transferPoints(input: {idempotencyKey: $key, points: 1, toEmail: $to}) {
    transaction { id } userErrors { code } } }"""


async def _linked(partner: Caller, points: int = 0) -> tuple[str, str]:
    ref, address = f"k-{secrets.token_hex(4)}", email()
    assert (await partner.gql(LINK, ref=ref, email=address))["data"]["linkMember"][
        "userErrors"
    ] == []
    if points:
        earned = await partner.gql(EARN, key=f"seed-{ref}", ref=ref)
        assert earned["data"]["earnPoints"]["userErrors"] == []
    return ref, address


async def test_a_members_idempotency_keys_are_its_own_not_its_partners_or_other_members(
    db: Database, api: httpx.AsyncClient
) -> None:
    """Found: member tokens carry the client id of the partner that exchanged them, and
    keys were the client's. A gift with a key the partner had used for another member's
    earn was a masked "Unexpected error" (the earlier entry is out of the member's sight);
    a gift could take a key the partner was going to use, and the partner's earn was then
    refused IDEMPOTENCY_KEY_REUSED."""
    partner = await new_partner(db, api)
    other, _ = await _linked(partner)
    giver, _ = await _linked(partner, points=50)
    second_giver, _ = await _linked(partner, points=50)
    _, recipient = await _linked(partner)
    member = await partner.member_token(giver, "wallet:read wallet:transfer")
    second = await partner.member_token(second_giver, "wallet:read wallet:transfer")
    partners_key, members_key = f"p-{secrets.token_hex(4)}", f"m-{secrets.token_hex(4)}"

    earned = await partner.gql(EARN, key=partners_key, ref=other)
    gift_with_partners_key = await member.gql(TRANSFER, key=partners_key, to=recipient)
    gift_first = await member.gql(TRANSFER, key=members_key, to=recipient)
    earn_after = await partner.gql(EARN, key=members_key, ref=other)
    same_key_other_member = await second.gql(TRANSFER, key=members_key, to=recipient)
    replayed = await member.gql(TRANSFER, key=members_key, to=recipient)

    for result in (gift_with_partners_key, gift_first, same_key_other_member, replayed):
        _no_internal_error(result)
        assert result["data"]["transferPoints"]["userErrors"] == [], result
    assert earned["data"]["earnPoints"]["userErrors"] == []
    assert earn_after["data"]["earnPoints"]["userErrors"] == []
    assert (
        replayed["data"]["transferPoints"]["transaction"]
        == gift_first["data"]["transferPoints"]["transaction"]
    )
    assert (
        same_key_other_member["data"]["transferPoints"]["transaction"]
        != gift_first["data"]["transferPoints"]["transaction"]
    )


NODE = """query($id: ID!) { node(id: $id) { id ... on SettlementRun { status } } }"""


async def test_the_largest_settlement_run_id_is_no_run_not_an_internal_error(
    db: Database, api: httpx.AsyncClient
) -> None:
    """Found: ``node`` with the id of settlement run 2^63 - 1 (a well-formed id) looked
    for runs older than 2^63, which does not fit a bigint: a masked "Unexpected error"."""
    operator = await new_operator(db, api)
    partner = await new_partner(db, api, "settlement:read")
    largest = ids.encode("SettlementRun", 2**63 - 1)

    for caller in (operator, partner):
        result = await caller.gql(NODE, id=largest)

        assert _no_internal_error(result) == []
        assert result["data"] == {"node": None}


SIMULATE = """mutation($id: ID!, $from: DateTime!, $to: DateTime!) {
  simulateCampaign(input: {campaignId: $id, from: $from, to: $to}) {
    userErrors { code field } } }"""
CAMPAIGN = """mutation { createCampaign(input: {name: "replay",
  startsAt: "2026-01-01T00:00:00+00:00",
  effect: {kind: FIXED, value: "10"}}) { campaign { id } userErrors { code } } }"""


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-01-01T00:00:00", "2036-01-01T00:00:00+00:00", "from"),
        ("2026-01-01T00:00:00+00:00", "2036-01-01T00:00:00", "to"),
    ],
)
async def test_a_simulation_window_without_a_utc_offset_is_refused(
    db: Database, api: httpx.AsyncClient, start: str, end: str, field: str
) -> None:
    """Found: ``simulateCampaign`` took a ``from`` or ``to`` without a UTC offset and
    compared it with the other, aware one: a masked "Unexpected error"."""
    partner = await new_partner(db, api)
    created = await partner.gql(CAMPAIGN)
    campaign = created["data"]["createCampaign"]["campaign"]["id"]

    result = await partner.gql(SIMULATE, id=campaign, **{"from": start, "to": end})

    assert _no_internal_error(result) == []
    assert result["data"]["simulateCampaign"]["userErrors"] == [
        {"code": "INVALID_INPUT", "field": ["input", field]}
    ]


NUL_CAMPAIGN = (
    'mutation {{ createCampaign(input: {{name: "{name}", condition: "{condition}",'
    ' startsAt: "2026-01-01T00:00:00+00:00", effect: {{kind: FIXED, value: "10"}}}}) {{'
    " campaign {{ id }} userErrors {{ code field }} }} }}"
)
NUL_PURCHASE = (
    'mutation($ref: String!) {{ recordPurchase(input: {{idempotencyKey: "nul-1",'
    ' memberRef: $ref, amount: "10.00", currency: "USD", storeRef: "{store}",'
    ' items: [{{category: "{category}", amount: "10.00"}}]}}) {{'
    " purchase {{ id }} userErrors {{ code field }} }} }}"
)
NUL = "\\u0000"  # a GraphQL escape inside the document: no NUL in the JSON body itself


@pytest.mark.parametrize(
    ("name", "condition", "field"),
    [
        (f"a{NUL}b", "true", ["input", "name"]),
        ("fine", f"purchase.category == 'a{NUL}'", ["input", "condition"]),
    ],
)
async def test_a_campaign_string_with_a_nul_is_refused(
    db: Database, api: httpx.AsyncClient, name: str, condition: str, field: list[str]
) -> None:
    """Found: a campaign ``name`` holding a NUL (written as a GraphQL escape, so no
    check of the JSON body sees it) reached PostgreSQL: a masked "Unexpected error"."""
    partner = await new_partner(db, api)

    result = await partner.gql(NUL_CAMPAIGN.format(name=name, condition=condition))

    assert _no_internal_error(result) == []
    payload = result["data"]["createCampaign"]
    assert payload["campaign"] is None
    assert payload["userErrors"] == [{"code": "INVALID_INPUT", "field": field}]


@pytest.mark.parametrize(
    ("store", "category", "field"),
    [
        (f"s{NUL}", "coffee", ["input", "storeRef"]),
        ("downtown", f"c{NUL}", ["input", "items", "0", "category"]),
    ],
)
async def test_a_purchase_label_with_a_nul_is_refused(
    db: Database, api: httpx.AsyncClient, store: str, category: str, field: list[str]
) -> None:
    """The same for a purchase's labels (``storeRef``, an item's ``category``)."""
    partner = await new_partner(db, api)
    ref, _ = await _linked(partner)

    result = await partner.gql(NUL_PURCHASE.format(store=store, category=category), ref=ref)

    assert _no_internal_error(result) == []
    payload = result["data"]["recordPurchase"]
    assert payload["purchase"] is None
    assert payload["userErrors"] == [{"code": "INVALID_INPUT", "field": field}]


async def test_a_lone_surrogate_echoed_in_an_error_is_json_not_a_500(
    db: Database, api: httpx.AsyncClient
) -> None:
    """Found: a Decimal variable "\\ud800" is refused by graphql-core with a message that
    quotes the value; orjson cannot encode a lone surrogate, so the answer was a 500."""
    partner = await new_partner(db, api, "points:reverse")

    response = await api.post(
        "/graphql",
        headers={
            "Authorization": f"Bearer {partner.token}",
            "Accept": "application/graphql-response+json",
            "Content-Type": "application/json",
        },
        content=json.dumps(  # ASCII JSON: the surrogate travels as an escape
            {
                "query": 'mutation($v: Decimal) { refundPurchase(input: {idempotencyKey: "k",'
                ' purchaseId: "UHVyY2hhc2U6MQ", amount: $v}) { userErrors { code } } }',
                "variables": {"v": "\ud800"},
            }
        ),
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]
