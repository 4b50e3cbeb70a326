"""Every error a client can provoke names objects the way the client knows them: by the
global ID it sent or was given, never by an internal number. Each row provokes one error
over HTTP with real tokens and says which object its message must name (or none)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from exchange import ledger
from exchange.kit.db import Database
from exchange.kit.invariant import present
from exchange.kit.system import SYSTEM
from graphql_schema import ids
from partners import clients
from tests.graphql.conftest import Caller, email, new_partner, token_for
from tests.loyalty.conftest import campaign, link, move, partner_with, record

HOLD = """mutation($key: String!, $ref: String!, $ttl: Int!) {
  holdPoints(input: {idempotencyKey: $key, memberRef: $ref, points: 10, ttlSeconds: $ttl}) {
    hold { id } userErrors { code message } } }"""
CAPTURE = """mutation($key: String!, $hold: ID!) {
  captureHold(input: {idempotencyKey: $key, holdId: $hold}) { userErrors { code message } } }"""
RELEASE = """mutation($hold: ID!) {
  releaseHold(input: {holdId: $hold}) { userErrors { code message } } }"""
EARN = """mutation($key: String!, $ref: String!) {
  earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: 100}) {
    transaction { id } userErrors { code message } } }"""
REVERSE = """mutation($key: String!, $tx: ID!) {
  reverseTransaction(input: {idempotencyKey: $key, transactionId: $tx}) {
    userErrors { code message } } }"""
UNLINK = """mutation($ref: String!) { unlinkMember(input: {memberRef: $ref}) {
  userErrors { code message } } }"""
RUN = """mutation($from: DateTime!, $to: DateTime!) { runSettlement(input: {from: $from, to: $to})
  { run { id } userErrors { code message } } }"""
FINALIZE = """mutation($id: ID!) { finalizeSettlement(input: {runId: $id}) {
  userErrors { code message } } }"""
CHANGE = """mutation($id: ID!) { changeContract(input: {partnerId: $id,
  effectiveFrom: "2999-01-01T00:00:00+00:00", earnRate: "2"}) { userErrors { code message } } }"""
REFUND = """mutation($key: String!, $id: ID!) { refundPurchase(input: {idempotencyKey: $key,
  purchaseId: $id}) { userErrors { code message } } }"""


def key() -> str:
    return secrets.token_hex(8)


@dataclass
class World:
    db: Database
    api: httpx.AsyncClient
    a: Caller
    b: Caller
    operator: Caller


@dataclass(frozen=True)
class Seen:
    """What the client got: the error's code and message, and the global ID the message
    must quote (None: it names no object)."""

    code: str
    message: str
    names: str | None


def _error(result: dict[str, Any], field: str) -> tuple[str, str]:
    assert "errors" not in result, result
    errors = result["data"][field]["userErrors"]
    assert len(errors) == 1, result
    return errors[0]["code"], errors[0]["message"]


async def _linked(partner: Caller) -> str:
    ref = f"cust-{secrets.token_hex(4)}"
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    assert linked["data"]["linkMember"]["userErrors"] == []
    earned = await partner.gql(EARN, key=key(), ref=ref)
    assert earned["data"]["earnPoints"]["userErrors"] == []
    return ref


async def _hold(partner: Caller, ttl: int = 900) -> tuple[str, str]:
    """A member of the partner with an active hold: (ref, hold id)."""
    ref = await _linked(partner)
    held = await partner.gql(HOLD, key=key(), ref=ref, ttl=ttl)
    return ref, held["data"]["holdPoints"]["hold"]["id"]


async def _earned(partner: Caller) -> tuple[str, str]:
    """A member of the partner and an earn of 100 points: (ref, transaction id)."""
    ref = await _linked(partner)
    earned = await partner.gql(EARN, key=key(), ref=ref)
    return ref, earned["data"]["earnPoints"]["transaction"]["id"]


def _period() -> dict[str, str]:
    """A past month no other test settles."""
    start = datetime(1200 + secrets.randbelow(500), 1 + secrets.randbelow(12), 1, tzinfo=UTC)
    return {"from": start.isoformat(), "to": (start + timedelta(days=28)).isoformat()}


# --- the rows: each provokes one error -------------------------------------------------


async def capture_a_released_hold(w: World) -> Seen:
    _, hold = await _hold(w.a)
    await w.a.gql(RELEASE, hold=hold)
    return Seen(*_error(await w.a.gql(CAPTURE, key=key(), hold=hold), "captureHold"), hold)


async def release_a_released_hold(w: World) -> Seen:
    _, hold = await _hold(w.a)
    await w.a.gql(RELEASE, hold=hold)
    return Seen(*_error(await w.a.gql(RELEASE, hold=hold), "releaseHold"), hold)


async def capture_an_expired_hold(w: World) -> Seen:
    _, hold = await _hold(w.a, ttl=1)
    await asyncio.sleep(1.2)
    return Seen(*_error(await w.a.gql(CAPTURE, key=key(), hold=hold), "captureHold"), hold)


async def capture_another_partners_hold(w: World) -> Seen:
    _, hold = await _hold(w.a)
    return Seen(*_error(await w.b.gql(CAPTURE, key=key(), hold=hold), "captureHold"), hold)


async def release_another_partners_hold(w: World) -> Seen:
    _, hold = await _hold(w.a)
    return Seen(*_error(await w.b.gql(RELEASE, hold=hold), "releaseHold"), hold)


async def capture_a_hold_of_an_unlinked_member(w: World) -> Seen:
    ref, hold = await _hold(w.a)
    await w.a.gql(UNLINK, ref=ref)
    return Seen(*_error(await w.a.gql(CAPTURE, key=key(), hold=hold), "captureHold"), hold)


async def reverse_a_fully_reversed_transaction(w: World) -> Seen:
    _, earn = await _earned(w.a)
    await w.a.gql(REVERSE, key=key(), tx=earn)
    reversed_ = await w.a.gql(REVERSE, key=key(), tx=earn)
    return Seen(*_error(reversed_, "reverseTransaction"), earn)


async def reverse_another_partners_transaction(w: World) -> Seen:
    _, earn = await _earned(w.a)
    reversed_ = await w.b.gql(REVERSE, key=key(), tx=earn)
    return Seen(*_error(reversed_, "reverseTransaction"), earn)


async def reverse_a_transaction_of_an_unlinked_member(w: World) -> Seen:
    ref, earn = await _earned(w.a)
    await w.a.gql(UNLINK, ref=ref)
    reversed_ = await w.a.gql(REVERSE, key=key(), tx=earn)
    return Seen(*_error(reversed_, "reverseTransaction"), earn)


async def finalize_a_finalized_run(w: World) -> Seen:
    ran = await w.operator.gql(RUN, **_period())
    run = ran["data"]["runSettlement"]["run"]["id"]
    await w.operator.gql(FINALIZE, id=run)
    return Seen(*_error(await w.operator.gql(FINALIZE, id=run), "finalizeSettlement"), run)


async def finalize_a_run_that_does_not_exist(w: World) -> Seen:
    run = ids.encode("SettlementRun", 2**62 + secrets.randbelow(2**40))
    return Seen(*_error(await w.operator.gql(FINALIZE, id=run), "finalizeSettlement"), run)


async def settle_a_finalized_period_again(w: World) -> Seen:
    period = _period()
    run = (await w.operator.gql(RUN, **period))["data"]["runSettlement"]["run"]["id"]
    await w.operator.gql(FINALIZE, id=run)
    return Seen(*_error(await w.operator.gql(RUN, **period), "runSettlement"), run)


async def settle_points_booked_before_a_contract(w: World) -> Seen:
    """Partner A's contract starts today; an entry of A's in a past month has none."""
    period = _period()
    async with w.db.transaction(SYSTEM) as conn:
        member = await ledger.open_member(conn)
        await ledger.earn(
            conn,
            client_id="error-ids",
            partner_id=present(w.a.partner_id, "a partner"),
            request=ledger.EarnRequest(idempotency_key=key(), member_id=member, points=5),
            now=datetime.fromisoformat(period["from"]) + timedelta(days=1),
        )
    partner = ids.encode("Partner", present(w.a.partner_id, "a partner"))
    return Seen(*_error(await w.operator.gql(RUN, **period), "runSettlement"), partner)


async def change_the_contract_of_nobody(w: World) -> Seen:
    partner = ids.encode("Partner", 2**62 + secrets.randbelow(2**40))
    return Seen(*_error(await w.operator.gql(CHANGE, id=partner), "changeContract"), partner)


async def a_co_funder_past_its_credit_limit(w: World) -> Seen:
    owner = await partner_with(w.db, w.api)
    funder = await partner_with(w.db, w.api, credit_limit_points=3)
    shares = [
        {"partnerId": ids.encode("Partner", present(p.partner_id, "a partner")), "share": "0.5"}
        for p in (owner, funder)
    ]
    created = await campaign(
        owner, {"kind": "FIXED", "value": "10"}, activate=False, funding=shares
    )
    await funder.gql(move("acceptCampaignFunding"), id=created["id"])
    await owner.gql(move("activateCampaign"), id=created["id"])
    payload = await record(owner, await link(owner), "10.00")
    (error,) = payload["userErrors"]
    return Seen(error["code"], error["message"], shares[1]["partnerId"])


async def activate_another_partners_campaign(w: World) -> Seen:
    owned = await campaign(w.a, {"kind": "FIXED", "value": "5"}, activate=False)
    moved = await w.b.gql(move("activateCampaign"), id=owned["id"])
    return Seen(*_error(moved, "activateCampaign"), None)


async def refund_another_partners_purchase(w: World) -> Seen:
    recorded = await record(w.a, await link(w.a), "10.00")
    refunded = await w.b.gql(REFUND, key=key(), id=recorded["purchase"]["id"])
    return Seen(*_error(refunded, "refundPurchase"), None)


ROWS: list[tuple[Callable[[World], Awaitable[Seen]], str]] = [
    (capture_a_released_hold, "HOLD_NOT_ACTIVE"),
    (release_a_released_hold, "HOLD_NOT_ACTIVE"),
    (capture_an_expired_hold, "HOLD_NOT_ACTIVE"),
    (capture_another_partners_hold, "NOT_FOUND"),
    (release_another_partners_hold, "NOT_FOUND"),
    (capture_a_hold_of_an_unlinked_member, "NOT_FOUND"),
    (reverse_a_fully_reversed_transaction, "ALREADY_REVERSED"),
    (reverse_another_partners_transaction, "NOT_FOUND"),
    (reverse_a_transaction_of_an_unlinked_member, "NOT_FOUND"),
    (finalize_a_finalized_run, "PERIOD_CLOSED"),
    (finalize_a_run_that_does_not_exist, "NOT_FOUND"),
    (settle_a_finalized_period_again, "PERIOD_CLOSED"),
    (settle_points_booked_before_a_contract, "INVALID_INPUT"),
    (change_the_contract_of_nobody, "NOT_FOUND"),
    (a_co_funder_past_its_credit_limit, "LIMIT_EXCEEDED"),
    (activate_another_partners_campaign, "NOT_FOUND"),
    (refund_another_partners_purchase, "NOT_FOUND"),
]


@pytest.fixture
async def world(db: Database, api: httpx.AsyncClient) -> World:
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(
            conn, scopes=["settlement:run", "settlement:read:all", "partners:admin"]
        )
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    operator = Caller(api, token, created.client_id, created.client_secret)
    return World(db, api, await new_partner(db, api), await new_partner(db, api), operator)


def _without_names(message: str, global_id: str | None) -> str:
    """The message without the ID it may quote, times and quoted names (a campaign's)."""
    if global_id is not None:
        message = message.replace(global_id, "<id>")
    message = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(\+\d\d:\d\d)?", "<time>", message)
    return re.sub(r"'[^']*'", "<name>", message)


@pytest.mark.parametrize(("provoke", "code"), ROWS, ids=[row[0].__name__ for row in ROWS])
async def test_an_error_names_objects_by_their_global_id(
    world: World, provoke: Callable[[World], Awaitable[Seen]], code: str
) -> None:
    seen = await provoke(world)

    assert seen.code == code, seen
    if seen.names is not None:
        assert seen.names in seen.message, seen
    rest = _without_names(seen.message, seen.names)
    assert re.search(r"\d", rest) is None, f"an internal number in {seen.message!r}"
