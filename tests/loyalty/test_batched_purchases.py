"""recordPurchase micro-batched: concurrent purchases of one partner share a unit of work
(one statement per step for all of them), yet each gets its own purchase or its own
userErrors, a member's second purchase in a batch sees its first, a budget is shared in
order and never overspent, and a purchase refused after its rows were written (a
co-funder past its credit limit) fails alone."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal
from typing import Any

import httpx

from exchange import ledger
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from exchange.usecases import loyalty as loyalty_cases
from tests.loyalty.conftest import balance, campaign, gid, link, move, partner_with, record

PROFILE = "query($r: String!) { member(memberRef: $r) { profile { purchasesHere spendHere } } }"


def _coalescer(api: httpx.AsyncClient) -> Any:
    runner = api._transport.app.state.runner  # type: ignore[attr-defined]
    return runner.coalescer(loyalty_cases.record_purchase)


async def _verified(db: Database) -> bool:
    async with db.transaction(SYSTEM) as conn:
        return (await ledger.verify(conn)).ok


async def test_concurrent_purchases_are_batched_and_each_keeps_its_own_outcome(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)  # earn rate 1 point per USD
    await campaign(shop, {"kind": "FIXED", "value": "100"}, condition="member.purchases_here == 0")
    refs = [await link(shop) for _ in range(3)]
    coalescer = _coalescer(api)
    largest_before, batches_before = coalescer.stats.largest, coalescer.stats.batches
    good = [(f"g-{n}-{secrets.token_hex(3)}", refs[n % 3], f"{10 + n}.00") for n in range(12)]
    calls: list[tuple[str, str, str, dict[str, Any]]] = [(*call, {}) for call in good[:6]]
    calls.append(("bad-currency", refs[0], "5.00", {"currency": "EUR"}))
    calls.append(("bad-ref", "nobody-" + secrets.token_hex(3), "5.00", {}))
    calls += [(*call, {}) for call in good[6:]]

    payloads = await asyncio.gather(
        *(record(shop, ref, amount, key=key, **extra) for key, ref, amount, extra in calls)
    )

    assert coalescer.stats.batches - batches_before < len(calls)
    assert coalescer.stats.largest >= max(loyalty_cases.record_purchase.batch_from, largest_before)
    by_key = {call[0]: payload for call, payload in zip(calls, payloads, strict=True)}
    assert by_key["bad-currency"]["purchase"] is None
    assert [(e["code"], e["field"]) for e in by_key["bad-currency"]["userErrors"]] == [
        ("INVALID_INPUT", ["input", "currency"])
    ]
    assert [(e["code"], e["field"]) for e in by_key["bad-ref"]["userErrors"]] == [
        ("MEMBER_NOT_LINKED", ["input", "memberRef"])
    ]
    for key, _, amount in good:
        assert by_key[key]["userErrors"] == [], by_key[key]
        assert by_key[key]["purchase"]["amount"] == amount
    for ref in refs:  # 4 purchases each: base points, and the first-purchase bonus once
        mine = [(key, amount) for key, r, amount in good if r == ref]
        bonuses = [
            a
            for key, _ in mine
            for a in by_key[key]["purchase"]["awards"]
            if a["rule"] == "CAMPAIGN"
        ]
        assert [int(a["points"]) for a in bonuses] == [100]
        base = sum(int(Decimal(amount)) for _, amount in mine)
        assert await balance(shop, ref) == base + 100
        profile = (await shop.gql(PROFILE, r=ref))["data"]["member"]["profile"]
        assert (profile["purchasesHere"], Decimal(profile["spendHere"])) == (4, base)
    replay = await record(shop, good[0][1], good[0][2], key=good[0][0])
    assert replay["purchase"]["id"] == by_key[good[0][0]]["purchase"]["id"]
    reused = await record(shop, good[0][1], "999.00", key=good[0][0])
    assert [e["code"] for e in reused["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    assert await _verified(db)


async def test_a_budget_is_shared_across_a_batch_and_never_overspent(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    created = await campaign(shop, {"kind": "FIXED", "value": "100"}, budgetPoints=250)
    refs = [await link(shop) for _ in range(8)]

    payloads = await asyncio.gather(*(record(shop, ref, "1.00") for ref in refs))

    bonuses = sorted(
        int(a["points"])
        for p in payloads
        for a in p["purchase"]["awards"]
        if a["rule"] == "CAMPAIGN"
    )
    assert sum(bonuses) == 250
    assert all(points <= 100 for points in bonuses)
    state = await shop.gql(
        "query($id: ID!) { node(id: $id) { ... on Campaign { spentPoints } } }", id=created["id"]
    )
    assert int(state["data"]["node"]["spentPoints"]) == 250
    assert await _verified(db)


async def test_one_key_sent_twice_at_once_records_one_purchase(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    calls = [("same", "40.00")] * 5 + [(f"other-{n}", "1.00") for n in range(4)]

    payloads = await asyncio.gather(
        *(record(shop, ref, amount, key=f"{key}-{ref}") for key, amount in calls)
    )

    assert len({p["purchase"]["id"] for p in payloads[:5]}) == 1
    assert all(p["userErrors"] == [] for p in payloads)
    assert await balance(shop, ref) == 44
    profile = (await shop.gql(PROFILE, r=ref))["data"]["member"]["profile"]
    assert profile["purchasesHere"] == 5
    assert await _verified(db)


async def test_a_co_funder_past_its_credit_limit_fails_only_the_purchases_it_cannot_fund(
    db: Database, api: httpx.AsyncClient
) -> None:
    owner = await partner_with(db, api)
    funder = await partner_with(db, api, credit_limit_points=3)  # funds 2 points a purchase
    funding = [
        {"partnerId": gid("Partner", owner.partner_id), "share": "0.5"},
        {"partnerId": gid("Partner", funder.partner_id), "share": "0.5"},
    ]
    created = await campaign(owner, {"kind": "FIXED", "value": "4"}, activate=False,
                             funding=funding)  # fmt: skip
    await funder.gql(move("acceptCampaignFunding"), id=created["id"])
    await owner.gql(move("activateCampaign"), id=created["id"])
    refs = [await link(owner) for _ in range(6)]

    payloads = await asyncio.gather(*(record(owner, ref, "10.00") for ref in refs))

    recorded = [p for p in payloads if p["purchase"] is not None]
    refused = [p for p in payloads if p["purchase"] is None]
    assert len(recorded) == 1
    assert [int(a["points"]) for a in recorded[0]["purchase"]["awards"]] == [10, 2, 2]
    for payload in refused:
        assert [e["code"] for e in payload["userErrors"]] == ["LIMIT_EXCEEDED"]
        assert "credit limit" in payload["userErrors"][0]["message"]
    assert sorted([await balance(owner, ref) for ref in refs]) == [0, 0, 0, 0, 0, 14]
    state = await owner.gql(
        "query($id: ID!) { node(id: $id) { ... on Campaign { spentPoints } } }", id=created["id"]
    )
    assert int(state["data"]["node"]["spentPoints"]) == 4
    assert await _verified(db)
