"""End to end over HTTP with real tokens: linking, earning, redeeming, holds, reversals,
transfers — each happy path and its userErrors."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.invariant import present
from exchange.kit.system import SYSTEM
from graphql_schema import ids
from partners import identity, repository
from tests.graphql.conftest import Caller, email, new_partner

LINK = """mutation($ref: String!, $email: String) {
  linkMember(input: {memberRef: $ref, email: $email}) {
    member { id wallet { balance } } userErrors { field code message } } }"""
EARN = """mutation($key: String!, $ref: String!, $points: Int!, $reference: String) {
  earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points,
                     reference: $reference}) {
    transaction { id kind points reference partner { name } }
    wallet { balance available held byPartner { points partner { name } } }
    userErrors { field code message } } }"""
REDEEM = """mutation($key: String!, $ref: String!, $points: Int!) {
  redeemPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points}) {
    transaction { id kind points } wallet { balance available held }
    userErrors { field code message } } }"""
HOLD = """mutation($key: String!, $ref: String!, $points: Int!) {
  holdPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points}) {
    hold { id points status expiresAt } wallet { balance available held }
    userErrors { field code message } } }"""
CAPTURE = """mutation($key: String!, $hold: ID!, $points: Int) {
  captureHold(input: {idempotencyKey: $key, holdId: $hold, points: $points}) {
    transaction { id kind points } wallet { balance available held }
    userErrors { field code message } } }"""
RELEASE = """mutation($hold: ID!) {
  releaseHold(input: {holdId: $hold}) {
    hold { status } wallet { available held } userErrors { field code message } } }"""
REVERSE = """mutation($key: String!, $tx: ID!, $points: Int) {
  reverseTransaction(input: {idempotencyKey: $key, transactionId: $tx, points: $points}) {
    transaction { kind points } wallet { balance } userErrors { field code message } } }"""


def key() -> str:
    return secrets.token_hex(8)


async def _linked(partner: Caller, points: int = 0) -> str:
    ref = f"cust-{secrets.token_hex(4)}"
    linked = await partner.gql(LINK, ref=ref, email=email())
    assert linked["data"]["linkMember"]["userErrors"] == []
    if points:
        earned = await partner.gql(EARN, key=key(), ref=ref, points=points)
        assert earned["data"]["earnPoints"]["userErrors"] == []
    return ref


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


async def test_earn_returns_the_transaction_and_the_wallet(partner: Caller) -> None:
    ref = await _linked(partner)

    result = await partner.gql(EARN, key=key(), ref=ref, points=250, reference="till-7")
    payload = result["data"]["earnPoints"]

    assert payload["userErrors"] == []
    assert payload["transaction"]["kind"] == "EARN"
    assert payload["transaction"]["points"] == "250"  # BigInt is a JSON string
    assert payload["transaction"]["reference"] == "till-7"
    assert payload["wallet"]["balance"] == "250"
    assert payload["wallet"]["byPartner"][0]["points"] == "250"


async def test_an_earn_replay_returns_the_same_transaction_and_moves_nothing(
    partner: Caller,
) -> None:
    ref = await _linked(partner)
    same = key()

    first = (await partner.gql(EARN, key=same, ref=ref, points=40))["data"]["earnPoints"]
    again = (await partner.gql(EARN, key=same, ref=ref, points=40))["data"]["earnPoints"]
    reused = (await partner.gql(EARN, key=same, ref=ref, points=41))["data"]["earnPoints"]

    assert again["transaction"]["id"] == first["transaction"]["id"]
    assert again["wallet"]["balance"] == "40"
    assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("points", "code", "field"),
    [(0, "INVALID_INPUT", ["input", "points"]), (-3, "INVALID_INPUT", ["input", "points"])],
)
async def test_bad_points_are_user_errors(
    partner: Caller, points: int, code: str, field: list[str]
) -> None:
    ref = await _linked(partner, 10)

    payload = (await partner.gql(EARN, key=key(), ref=ref, points=points))["data"]["earnPoints"]

    assert payload["transaction"] is None
    assert payload["userErrors"] == [
        {"field": field, "code": code, "message": payload["userErrors"][0]["message"]}
    ]


async def test_an_unknown_member_ref_is_member_not_linked(partner: Caller) -> None:
    payload = (await partner.gql(EARN, key=key(), ref="nobody", points=5))["data"]["earnPoints"]

    assert payload["userErrors"][0]["code"] == "MEMBER_NOT_LINKED"
    assert payload["userErrors"][0]["field"] == ["input", "memberRef"]


async def test_redeem_and_insufficient_points(partner: Caller) -> None:
    ref = await _linked(partner, 100)

    ok = (await partner.gql(REDEEM, key=key(), ref=ref, points=60))["data"]["redeemPoints"]
    short = (await partner.gql(REDEEM, key=key(), ref=ref, points=41))["data"]["redeemPoints"]

    assert ok["wallet"]["balance"] == "40"
    assert short["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    assert short["wallet"] is None


async def test_hold_capture_part_and_release(partner: Caller) -> None:
    ref = await _linked(partner, 100)

    held = (await partner.gql(HOLD, key=key(), ref=ref, points=70))["data"]["holdPoints"]
    hold_id = held["hold"]["id"]
    captured = (await partner.gql(CAPTURE, key=key(), hold=hold_id, points=50))["data"][
        "captureHold"
    ]
    again = (await partner.gql(RELEASE, hold=hold_id))["data"]["releaseHold"]
    second = (await partner.gql(HOLD, key=key(), ref=ref, points=30))["data"]["holdPoints"]
    released = (await partner.gql(RELEASE, hold=second["hold"]["id"]))["data"]["releaseHold"]

    assert (held["hold"]["status"], held["wallet"]["held"]) == ("ACTIVE", "70")
    assert captured["transaction"]["points"] == "50"
    assert captured["wallet"] == {"balance": "50", "available": "50", "held": "0"}
    assert again["userErrors"][0]["code"] == "HOLD_NOT_ACTIVE"
    assert released["hold"]["status"] == "RELEASED"
    assert released["wallet"] == {"available": "50", "held": "0"}


async def test_reverse_a_redemption_then_it_is_used_up(partner: Caller) -> None:
    ref = await _linked(partner, 100)
    redemption = (await partner.gql(REDEEM, key=key(), ref=ref, points=30))["data"]["redeemPoints"]
    tx = redemption["transaction"]["id"]

    reversed_ = (await partner.gql(REVERSE, key=key(), tx=tx))["data"]["reverseTransaction"]
    twice = (await partner.gql(REVERSE, key=key(), tx=tx))["data"]["reverseTransaction"]
    garbage = (await partner.gql(REVERSE, key=key(), tx="not-an-id"))["data"]["reverseTransaction"]

    assert (reversed_["transaction"]["kind"], reversed_["wallet"]["balance"]) == ("REVERSAL", "100")
    assert twice["userErrors"][0]["code"] == "ALREADY_REVERSED"
    assert garbage["userErrors"][0]["code"] == "NOT_FOUND"


async def test_another_partner_can_not_touch_my_transactions_or_members(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    ref = await _linked(partner, 100)
    redemption = (await partner.gql(REDEEM, key=key(), ref=ref, points=30))["data"]["redeemPoints"]
    other = await new_partner(db, api)

    reversal = await other.gql(REVERSE, key=key(), tx=redemption["transaction"]["id"])
    earn = await other.gql(EARN, key=key(), ref=ref, points=5)

    assert reversal["data"]["reverseTransaction"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert earn["data"]["earnPoints"]["userErrors"][0]["code"] == "MEMBER_NOT_LINKED"


async def test_a_missing_scope_is_a_forbidden_user_error(
    db: Database, api: httpx.AsyncClient
) -> None:
    reader = await new_partner(db, api, scopes="members:link transactions:read")
    ref = await _linked(reader)

    payload = (await reader.gql(EARN, key=key(), ref=ref, points=5))["data"]["earnPoints"]

    assert payload["userErrors"][0]["code"] == "FORBIDDEN"


async def test_a_member_transfers_points_to_another_member_by_email(partner: Caller) -> None:
    alice_ref = f"alice-{secrets.token_hex(3)}"
    bob_email = email()
    await partner.gql(LINK, ref=alice_ref, email=email())
    await partner.gql(LINK, ref=f"bob-{secrets.token_hex(3)}", email=bob_email)
    await partner.gql(EARN, key=key(), ref=alice_ref, points=80)
    alice = await partner.member_token(alice_ref, "wallet:read wallet:transfer")

    transfer = """mutation($key: String!, $to: String!) {
      transferPoints(input: {idempotencyKey: $key, points: 30, toEmail: $to}) {
        transaction { kind points } wallet { balance } userErrors { code } } }"""
    sent = (await alice.gql(transfer, key=key(), to=bob_email))["data"]["transferPoints"]
    unknown = (await alice.gql(transfer, key=key(), to=email()))["data"]["transferPoints"]

    assert sent["transaction"]["kind"] == "TRANSFER"
    assert sent["wallet"]["balance"] == "50"
    assert unknown["userErrors"][0]["code"] == "NOT_FOUND"


async def test_no_token_is_401_with_a_bearer_challenge(api: httpx.AsyncClient) -> None:
    response = await api.post("/graphql", json={"query": "{ viewer { kind } }"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_malformed_requests_get_clear_errors_not_500s(partner: Caller) -> None:
    headers: dict[str, Any] = {"Authorization": f"Bearer {partner.token}"}
    broken_json = await partner.api.post(
        "/graphql", content=b"{not json", headers=headers | {"content-type": "application/json"}
    )
    wrong_type = await partner.api.post(
        "/graphql",
        json={"query": EARN, "variables": {"key": "k", "ref": "r", "points": "ten"}},
        headers=headers,
    )
    syntax = await partner.api.post("/graphql", json={"query": "{ viewer { "}, headers=headers)

    assert broken_json.status_code == 400
    assert wrong_type.status_code in (200, 400)
    assert "errors" in wrong_type.json()
    assert syntax.status_code in (200, 400)
    assert "errors" in syntax.json()


HOSTILE = [
    {"query": EARN, "variables": {"key": "k", "ref": "r", "points": 2**40}},
    {"query": EARN, "variables": {"key": "k", "ref": "r", "points": 1.5}},
    {"query": EARN, "variables": {"key": "k" * 500, "ref": "r", "points": 1}},
    {"query": EARN, "variables": {"key": "k", "ref": "r" * 5000, "points": 1}},
    {"query": EARN, "variables": {"key": "", "ref": "", "points": 1}},
    {"query": EARN, "variables": None},
    {"query": "mutation { earnPoints(input: {}) { userErrors { code } } }"},
    {"query": '{ node(id: "\\u0000\\uffff") { id } }'},
    {"query": "{ transactions(first: -1) { edges { cursor } } }"},
    {"query": '{ transactions(first: 5, after: "garbage") { edges { cursor } } }'},
    {"query": '{ member(memberRef: "") { id } }'},
    {"query": 42},
    {"query": ["not", "a", "string"]},
    {"variables": {"a": 1}},
]


@pytest.mark.parametrize("body", HOSTILE)
async def test_hostile_input_never_gets_a_500_and_moves_nothing(
    partner: Caller, body: dict[str, Any]
) -> None:
    ref = await _linked(partner, 10)
    headers = {"Authorization": f"Bearer {partner.token}"}

    response = await partner.api.post("/graphql", json=body, headers=headers)

    assert response.status_code < 500, response.text
    wallet = await partner.gql(
        "query($r: String!) { member(memberRef: $r) { wallet { balance } } }", r=ref
    )
    assert wallet["data"]["member"]["wallet"]["balance"] == "10"


async def test_an_oversized_document_is_refused_with_413(partner: Caller) -> None:
    huge = "{ viewer { kind } }" + " " * (300 * 1024)

    response = await partner.api.post(
        "/graphql", json={"query": huge}, headers={"Authorization": f"Bearer {partner.token}"}
    )

    assert response.status_code == 413


async def test_a_partner_pages_through_its_own_linked_members(partner: Caller) -> None:
    refs = sorted([f"pg-{secrets.token_hex(3)}" for _ in range(3)])
    for ref in refs:
        await partner.gql(LINK, ref=ref, email=email())
    page = (
        "query($after: String) { members(first: 2, after: $after) { edges { cursor node {"
        " memberRef member { wallet { balance } } } } pageInfo { hasNextPage endCursor } } }"
    )

    first = (await partner.gql(page))["data"]["members"]
    second = (await partner.gql(page, after=first["pageInfo"]["endCursor"]))["data"]["members"]

    seen = [e["node"]["memberRef"] for e in first["edges"] + second["edges"]]
    assert seen == refs
    assert first["pageInfo"]["hasNextPage"] is True
    assert second["pageInfo"]["hasNextPage"] is False


async def test_concurrent_redemptions_over_http_never_overdraw(partner: Caller) -> None:
    import asyncio

    ref = await _linked(partner, 95)

    results = await asyncio.gather(
        *[partner.gql(REDEEM, key=key(), ref=ref, points=10) for _ in range(20)]
    )

    payloads = [r["data"]["redeemPoints"] for r in results]
    succeeded = [p for p in payloads if not p["userErrors"]]
    refused = [p["userErrors"][0]["code"] for p in payloads if p["userErrors"]]
    assert len(succeeded) == 9
    assert refused == ["INSUFFICIENT_POINTS"] * 11
    wallet = await partner.gql(
        "query($r: String!) { member(memberRef: $r) { wallet { balance } } }", r=ref
    )
    assert wallet["data"]["member"]["wallet"]["balance"] == "5"


async def test_an_operator_lists_ledger_accounts_with_balances(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    from tests.graphql.conftest import new_operator

    await _linked(partner, 40)
    operator = await new_operator(db, api)

    page = await operator.gql(
        "{ ledgerAccounts(first: 100, kind: PARTNER_ISSUED) { edges { node { kind balance"
        " partner { id } } } pageInfo { hasNextPage } } }"
    )

    nodes = [e["node"] for e in page["data"]["ledgerAccounts"]["edges"]]
    assert nodes
    assert {n["kind"] for n in nodes} == {"PARTNER_ISSUED"}
    assert all(int(n["balance"]) <= 0 for n in nodes)  # issuing runs an issued account negative


async def test_after_an_erasure_the_partner_gets_user_errors_and_the_system_still_releases(
    db: Database, partner: Caller
) -> None:
    """Erasure removes the member's links, so row-level security hides its wallet and lots
    from the partner: reversing, capturing or releasing is refused with a clear error (not
    a masked internal one) and moves nothing; the system scope still releases the hold."""
    ref = await _linked(partner, 100)
    earned = await partner.gql(EARN, key=key(), ref=ref, points=20)
    held = (await partner.gql(HOLD, key=key(), ref=ref, points=10))["data"]["holdPoints"]
    async with db.transaction(SYSTEM) as conn:
        member = present(
            await repository.link(conn, partner_id=partner.partner_id or 0, member_ref=ref),
            "linked",
        )
        await identity.erase_member(conn, member_id=member, now=utc_now())
        before = await ledger.wallet(conn, member_id=member)

    reversed_ = await partner.gql(
        REVERSE, key=key(), tx=earned["data"]["earnPoints"]["transaction"]["id"]
    )
    captured = await partner.gql(CAPTURE, key=key(), hold=held["hold"]["id"])
    released = await partner.gql(RELEASE, hold=held["hold"]["id"])
    hold_id = present(ids.decode_as(held["hold"]["id"], "Hold"), "a hold id")
    async with db.transaction(SYSTEM) as conn:
        after = await ledger.wallet(conn, member_id=member)
        await ledger.release(conn, partner_id=None, hold_id=hold_id, now=utc_now())
        hold = await ledger.get_hold(conn, hold_id=hold_id)

    for payload, name in (
        (reversed_, "reverseTransaction"),
        (captured, "captureHold"),
        (released, "releaseHold"),
    ):
        assert "errors" not in payload, payload
        assert [e["code"] for e in payload["data"][name]["userErrors"]] == ["NOT_FOUND"]
        assert "no longer linked" in payload["data"][name]["userErrors"][0]["message"]
    assert (after.balance, after.held) == (before.balance, before.held) == (120, 10)
    assert hold is not None
    assert hold.status == "RELEASED"
