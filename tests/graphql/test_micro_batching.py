"""Micro-batching of earnPoints over HTTP: concurrent earns of one caller share a
transaction, yet each request gets its own transaction or its own userErrors, a failing
earn moves nothing, and keys hash alike whether an earn was batched or not."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from exchange.usecases import points as point_cases
from exchange.usecases.core import BATCH_FROM
from partners.principal import Principal, PrincipalKind
from tests.graphql.conftest import Caller, email, new_partner

EARN = """mutation($k: String!, $r: String!, $p: Int!) {
  earnPoints(input: {idempotencyKey: $k, memberRef: $r, points: $p}) {
    transaction { id kind points } userErrors { field code message } } }"""
LINK = """mutation($ref: String!, $email: String) {
  linkMember(input: {memberRef: $ref, email: $email}) { userErrors { code } } }"""
BALANCE = "query($ref: String!) { member(memberRef: $ref) { wallet { balance } } }"


async def _earn(partner: Caller, key: str, ref: str, points: int) -> dict[str, Any]:
    result = await partner.gql(EARN, k=key, r=ref, p=points)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["earnPoints"]
    return payload


async def test_concurrent_earns_are_batched_and_each_keeps_its_own_outcome(
    db: Database, api: httpx.AsyncClient
) -> None:
    runner = api._transport.app.state.runner  # type: ignore[attr-defined]
    coalescer = runner.coalescer(point_cases.earn_points)
    partner = await new_partner(db, api)
    refs = []
    for _ in range(3):
        ref = f"mb-{secrets.token_hex(4)}"
        await partner.gql(LINK, ref=ref, email=email())
        refs.append(ref)
    good = [(f"good-{n}", refs[n % 3], 10 + n) for n in range(12)]
    unlinked = ("bad-ref", "nobody-" + secrets.token_hex(4), 5)
    zero = ("bad-points", refs[0], 0)
    largest_before = coalescer.stats.largest
    batches_before = coalescer.stats.batches

    calls = [*good[:6], unlinked, *good[6:], zero]
    payloads = await asyncio.gather(*(_earn(partner, *call) for call in calls))

    by_key = {call[0]: payload for call, payload in zip(calls, payloads, strict=True)}
    assert coalescer.stats.batches - batches_before < len(calls)
    assert coalescer.stats.largest >= max(BATCH_FROM, largest_before)
    ids = set()
    for key, _, points in good:
        assert by_key[key]["userErrors"] == []
        transaction = by_key[key]["transaction"]
        assert (transaction["kind"], transaction["points"]) == ("EARN", str(points))
        ids.add(transaction["id"])
    assert len(ids) == len(good)
    assert by_key["bad-ref"]["transaction"] is None
    assert [(e["code"], e["field"]) for e in by_key["bad-ref"]["userErrors"]] == [
        ("MEMBER_NOT_LINKED", ["input", "memberRef"])
    ]
    assert by_key["bad-points"]["transaction"] is None
    assert [e["code"] for e in by_key["bad-points"]["userErrors"]] == ["INVALID_INPUT"]
    assert by_key["bad-points"]["userErrors"][0]["field"] == ["input", "points"]
    for index, ref in enumerate(refs):
        expected = sum(points for _, r, points in good if r == ref)
        balance = await partner.gql(BALANCE, ref=ref)
        assert balance["data"]["member"]["wallet"]["balance"] == str(expected), index

    # A key written in a batch replays alone, and is refused for another request.
    replay = await _earn(partner, *good[0])
    assert replay["transaction"] == by_key[good[0][0]]["transaction"]
    reused = await _earn(partner, good[0][0], good[0][1], 999)
    assert [e["code"] for e in reused["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    async with db.transaction(SYSTEM) as conn:
        assert (await ledger.verify(conn)).ok


async def test_one_key_sent_twice_at_once_is_written_once(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)
    ref = f"mb-{secrets.token_hex(4)}"
    await partner.gql(LINK, ref=ref, email=email())
    calls = [("same", ref, 40)] * 6 + [(f"other-{n}", ref, 1) for n in range(4)]

    payloads = await asyncio.gather(*(_earn(partner, *call) for call in calls))

    same = {payload["transaction"]["id"] for payload in payloads[:6]}
    assert len(same) == 1
    assert all(payload["userErrors"] == [] for payload in payloads)
    balance = await partner.gql(BALANCE, ref=ref)
    assert balance["data"]["member"]["wallet"]["balance"] == "44"


POISON = (
    """CREATE FUNCTION test_poison_entry() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'poisoned reference';
    END $$""",
    """CREATE TRIGGER test_poison_entry BEFORE INSERT ON ledger_entry
    FOR EACH ROW WHEN (NEW.reference = 'poison') EXECUTE FUNCTION test_poison_entry()""",
)
EARN_WITH_REFERENCE = """mutation($k: String!, $r: String!, $ref: String!) {
  earnPoints(input: {idempotencyKey: $k, memberRef: $r, points: 3, reference: $ref}) {
    transaction { id points } userErrors { code } } }"""


async def test_a_database_failure_in_a_batch_fails_only_the_earn_that_caused_it(
    db: Database, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    partner = await new_partner(db, api)
    ref = f"mb-{secrets.token_hex(4)}"
    await partner.gql(LINK, ref=ref, email=email())
    references = [f"ok-{n}" for n in range(8)] + ["poison"]
    async with db.transaction(SYSTEM) as conn:
        for statement in POISON:
            await conn.execute(statement)
    try:
        with caplog.at_level(logging.WARNING, logger="exchange.usecases.runner"):
            results = await asyncio.gather(
                *(
                    partner.gql(EARN_WITH_REFERENCE, k=reference, r=ref, ref=reference)
                    for reference in references
                )
            )
    finally:
        async with db.transaction(SYSTEM) as conn:
            await conn.execute("DROP TRIGGER test_poison_entry ON ledger_entry")
            await conn.execute("DROP FUNCTION test_poison_entry()")

    assert "retrying each" in caplog.text  # the poisoned batch was rolled back and retried
    for result in results[:-1]:
        assert "errors" not in result, result
        assert result["data"]["earnPoints"]["transaction"]["points"] == "3"
    poisoned = results[-1]
    assert poisoned["data"] is None  # earnPoints is non-null: the error reaches the root
    [error] = poisoned["errors"]
    assert error["message"].startswith("Unexpected error")
    assert "poison" not in error["message"]  # masked: the database's words stay in the log
    balance = await partner.gql(BALANCE, ref=ref)
    assert balance["data"]["member"]["wallet"]["balance"] == str(3 * 8)
    async with db.transaction(SYSTEM) as conn:
        assert (await ledger.verify(conn)).ok


REDEEM = """mutation($k: String!, $r: String!, $p: Int!) {
  redeemPoints(input: {idempotencyKey: $k, memberRef: $r, points: $p}) {
    transaction { id kind points } userErrors { field code message } } }"""
HOLD = """mutation($k: String!, $r: String!, $p: Int!) {
  holdPoints(input: {idempotencyKey: $k, memberRef: $r, points: $p, ttlSeconds: 600}) {
    hold { id points status } userErrors { field code } } }"""
RELEASE = """mutation($h: ID!) { releaseHold(input: {holdId: $h}) {
  hold { status } userErrors { code } } }"""


async def _members_with(partner: Caller, points: list[int]) -> list[str]:
    """A member per amount, each holding that many points."""
    refs = []
    for n, amount in enumerate(points):
        ref = f"mb-{secrets.token_hex(4)}"
        await partner.gql(LINK, ref=ref, email=email())
        await _earn(partner, f"seed-{ref}-{n}", ref, amount)
        refs.append(ref)
    return refs


async def test_concurrent_redemptions_are_batched_and_a_short_wallet_fails_alone(
    db: Database, api: httpx.AsyncClient
) -> None:
    runner = api._transport.app.state.runner  # type: ignore[attr-defined]
    coalescer = runner.coalescer(point_cases.redeem_points)
    partner = await new_partner(db, api)
    refs = await _members_with(partner, [100, 100, 100])
    batches_before = coalescer.stats.batches
    # Member 0 spends 30 + 50 (both fit), then 40 more (does not: 20 left).
    calls = [(f"r-{n}", refs[n % 3], 10) for n in range(9)]
    calls += [("a", refs[0], 50), ("short", refs[0], 40), ("nobody", "nobody-x", 5)]

    payloads = await asyncio.gather(*(partner.gql(REDEEM, k=k, r=r, p=p) for k, r, p in calls))

    assert coalescer.stats.batches > batches_before
    assert coalescer.stats.largest >= BATCH_FROM
    by_key = {call[0]: p["data"]["redeemPoints"] for call, p in zip(calls, payloads, strict=True)}
    for key, _, points in calls[:10]:
        assert by_key[key]["userErrors"] == [], by_key[key]
        assert (by_key[key]["transaction"]["kind"], by_key[key]["transaction"]["points"]) == (
            "REDEEM", str(points),
        )  # fmt: skip
    assert [e["code"] for e in by_key["short"]["userErrors"]] == ["INSUFFICIENT_POINTS"]
    assert by_key["short"]["transaction"] is None
    assert [e["code"] for e in by_key["nobody"]["userErrors"]] == ["MEMBER_NOT_LINKED"]
    balances = [
        (await partner.gql(BALANCE, ref=ref))["data"]["member"]["wallet"]["balance"] for ref in refs
    ]
    assert balances == ["20", "70", "70"]
    async with db.transaction(SYSTEM) as conn:
        assert (await ledger.verify(conn)).ok


@pytest.mark.parametrize("use_case", ["redeem_points", "hold_points"])
async def test_two_waiting_spends_share_one_transaction(
    db: Database, api: httpx.AsyncClient, use_case: str
) -> None:
    # A batch of spends costs the statements of one (the refs, the wallets' locks and
    # lots, the write), so two waiting calls are already batched: one transaction, whose
    # id both entries carry.
    runner = api._transport.app.state.runner  # type: ignore[attr-defined]
    partner = await new_partner(db, api)
    refs = await _members_with(partner, [30, 30])
    principal = Principal(
        kind=PrincipalKind.PARTNER,
        client_id=partner.client_id,
        scopes=frozenset({"points:redeem"}),
        token_id="test",
        expires_at=utc_now() + timedelta(hours=1),
        partner_id=partner.partner_id,
    )
    case = getattr(point_cases, use_case)
    requests = [
        point_cases.RedeemPoints(idempotency_key=f"two-{ref}", member_ref=ref, points=10)
        if use_case == "redeem_points"
        else point_cases.HoldPoints(
            idempotency_key=f"two-{ref}", member_ref=ref, points=10, ttl_seconds=600
        )
        for ref in refs
    ]

    outcomes = await runner.coalescer(case)._run(principal, requests)

    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    async with db.transaction(SYSTEM) as conn:
        written = await conn.execute(
            sql("SELECT DISTINCT xmin::text FROM ledger_entry WHERE idempotency_key = ANY(:keys)"),
            {"keys": [r.idempotency_key for r in requests]},
        )
        assert len(written.all()) == 1


async def test_concurrent_holds_are_batched_and_each_is_its_own_hold(
    db: Database, api: httpx.AsyncClient
) -> None:
    runner = api._transport.app.state.runner  # type: ignore[attr-defined]
    coalescer = runner.coalescer(point_cases.hold_points)
    partner = await new_partner(db, api)
    refs = await _members_with(partner, [50, 50])
    calls = [(f"h-{n}", refs[n % 2], 5 + n) for n in range(8)]
    calls.append(("too-much", refs[0], 1000))

    payloads = await asyncio.gather(*(partner.gql(HOLD, k=k, r=r, p=p) for k, r, p in calls))

    assert coalescer.stats.largest >= BATCH_FROM
    held = {call[0]: p["data"]["holdPoints"] for call, p in zip(calls, payloads, strict=True)}
    ids = {held[key]["hold"]["id"] for key, _, _ in calls[:8]}
    assert len(ids) == 8
    for key, _, points in calls[:8]:
        assert held[key]["hold"]["points"] == str(points)
        assert held[key]["hold"]["status"] == "ACTIVE"
    assert [e["code"] for e in held["too-much"]["userErrors"]] == ["INSUFFICIENT_POINTS"]
    wallet = await partner.gql(
        "query($ref: String!) { member(memberRef: $ref) { wallet { available held } } }",
        ref=refs[0],
    )
    mine = sum(p for _, r, p in calls[:8] if r == refs[0])
    assert wallet["data"]["member"]["wallet"] == {"available": str(50 - mine), "held": str(mine)}
    released = await partner.gql(RELEASE, h=held["h-0"]["hold"]["id"])
    assert released["data"]["releaseHold"]["hold"]["status"] == "RELEASED"
    replay = await partner.gql(HOLD, k="h-1", r=refs[1], p=6)
    assert replay["data"]["holdPoints"]["hold"]["id"] == held["h-1"]["hold"]["id"]
    async with db.transaction(SYSTEM) as conn:
        assert (await ledger.verify(conn)).ok
