"""Bulk issuance over HTTP: each item has its own idempotency key and its own result; an
item that fails moves nothing and does not stop the others; the ledger stays balanced."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from exchange import ledger
from exchange.kit.db import Database
from tests.graphql.conftest import Caller, email, new_partner

BATCH = """mutation($items: [EarnPointsInput!]!) {
  earnPointsBatch(input: {items: $items}) {
    results { idempotencyKey transaction { id kind points } userErrors { field code message } }
    userErrors { field code message } } }"""
LINK = """mutation($ref: String!, $email: String) {
  linkMember(input: {memberRef: $ref, email: $email}) { userErrors { code } } }"""
BALANCE = "query($ref: String!) { member(memberRef: $ref) { wallet { balance } } }"


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


async def _members(partner: Caller, count: int) -> list[str]:
    refs = []
    for _ in range(count):
        ref = f"bulk-{secrets.token_hex(4)}"
        assert (await partner.gql(LINK, ref=ref, email=email()))["data"]["linkMember"][
            "userErrors"
        ] == []
        refs.append(ref)
    return refs


async def _balance(partner: Caller, ref: str) -> int:
    return int((await partner.gql(BALANCE, ref=ref))["data"]["member"]["wallet"]["balance"])


async def _batch(partner: Caller, items: list[dict[str, Any]]) -> dict[str, Any]:
    result = await partner.gql(BATCH, items=items)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["earnPointsBatch"]
    return payload


def _item(ref: str, points: int, key: str | None = None) -> dict[str, Any]:
    return {"idempotencyKey": key or secrets.token_hex(8), "memberRef": ref, "points": points}


async def test_a_batch_issues_every_item_with_its_own_result(partner: Caller) -> None:
    first, second = await _members(partner, 2)
    items = [_item(first, 100), _item(second, 250), _item(first, 50)]

    payload = await _batch(partner, items)

    assert payload["userErrors"] == []
    assert [r["idempotencyKey"] for r in payload["results"]] == [i["idempotencyKey"] for i in items]
    assert [int(r["transaction"]["points"]) for r in payload["results"]] == [100, 250, 50]
    assert {r["transaction"]["kind"] for r in payload["results"]} == {"EARN"}
    assert len({r["transaction"]["id"] for r in payload["results"]}) == 3
    assert await _balance(partner, first) == 150
    assert await _balance(partner, second) == 250


async def test_a_failing_item_moves_nothing_and_the_others_go_through(partner: Caller) -> None:
    (ref,) = await _members(partner, 1)
    items = [
        _item(ref, 100),
        _item(ref, 0),
        _item("nobody-has-this-ref", 10),
        _item(ref, 40),
        {**_item(ref, 5), "idempotencyKey": ""},
    ]

    payload = await _batch(partner, items)
    errors = [r["userErrors"] for r in payload["results"]]

    assert errors[0] == []
    assert errors[3] == []
    assert errors[1][0]["code"] == "INVALID_INPUT"
    assert errors[1][0]["field"] == ["input", "items", "1", "points"]
    assert errors[2][0]["code"] == "MEMBER_NOT_LINKED"
    assert errors[2][0]["field"] == ["input", "items", "2", "memberRef"]
    assert errors[4][0]["code"] == "INVALID_INPUT"
    assert [r["transaction"] is None for r in payload["results"]] == [
        False,
        True,
        True,
        False,
        True,
    ]
    assert await _balance(partner, ref) == 140


async def test_a_replayed_batch_moves_nothing_and_returns_the_same_transactions(
    partner: Caller,
) -> None:
    (ref,) = await _members(partner, 1)
    items = [_item(ref, 30), _item(ref, 70)]
    original = await _batch(partner, items)

    again = await _batch(partner, [*items, _item(ref, 1)])

    ids = [r["transaction"]["id"] for r in original["results"]]
    assert [r["transaction"]["id"] for r in again["results"][:2]] == ids
    assert again["results"][2]["userErrors"] == []
    assert await _balance(partner, ref) == 101


async def test_a_key_reused_for_another_request_is_refused_per_item(partner: Caller) -> None:
    (ref,) = await _members(partner, 1)
    used = secrets.token_hex(8)
    await _batch(partner, [_item(ref, 30, key=used)])

    payload = await _batch(partner, [_item(ref, 31, key=used), _item(ref, 5, key=used)])

    codes = [r["userErrors"][0]["code"] for r in payload["results"]]
    assert codes == ["IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_KEY_REUSED"]
    assert await _balance(partner, ref) == 30


async def test_a_key_twice_in_one_batch_is_issued_once(partner: Caller) -> None:
    (ref,) = await _members(partner, 1)
    twice = _item(ref, 25)

    payload = await _batch(partner, [twice, dict(twice), {**twice, "points": 26}])

    first, repeat, changed = payload["results"]
    assert repeat["transaction"]["id"] == first["transaction"]["id"]
    assert changed["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await _balance(partner, ref) == 25


async def test_a_single_earn_key_replays_in_a_batch(partner: Caller) -> None:
    (ref,) = await _members(partner, 1)
    single = """mutation($key: String!, $ref: String!) { earnPoints(input: {
      idempotencyKey: $key, memberRef: $ref, points: 12}) { transaction { id } } }"""
    key = secrets.token_hex(8)
    earned = await partner.gql(single, key=key, ref=ref)

    payload = await _batch(partner, [_item(ref, 12, key=key)])

    assert (
        payload["results"][0]["transaction"]["id"]
        == (earned["data"]["earnPoints"]["transaction"]["id"])
    )
    assert await _balance(partner, ref) == 12


async def test_a_batch_over_the_limit_is_refused_whole(partner: Caller) -> None:
    (ref,) = await _members(partner, 1)

    payload = await _batch(partner, [_item(ref, 1) for _ in range(ledger.MAX_BATCH + 1)])

    assert payload["results"] == []
    assert payload["userErrors"][0]["code"] == "INVALID_INPUT"
    assert payload["userErrors"][0]["field"] == ["input", "items"]
    assert await _balance(partner, ref) == 0


async def test_a_full_batch_of_a_thousand_items_lands_in_one_call(partner: Caller) -> None:
    refs = await _members(partner, 10)
    items = [_item(refs[n % 10], 1 + n % 7) for n in range(ledger.MAX_BATCH)]

    payload = await _batch(partner, items)

    assert all(r["userErrors"] == [] for r in payload["results"])
    expected = {ref: 0 for ref in refs}
    for item in items:
        expected[item["memberRef"]] += item["points"]
    assert {ref: await _balance(partner, ref) for ref in refs} == expected


async def test_without_the_earn_scope_a_batch_is_refused(
    db: Database, api: httpx.AsyncClient
) -> None:
    reader = await new_partner(db, api, scopes="members:read")

    payload = await _batch(reader, [_item("anyone", 1)])

    assert payload["userErrors"][0]["code"] == "FORBIDDEN"


async def test_concurrent_batches_over_the_same_wallets_all_land(partner: Caller) -> None:
    # Each batch names the wallets in another order; wallets are locked by member id, so
    # the batches queue instead of deadlocking.
    refs = await _members(partner, 5)
    batches = [
        [_item(refs[(start + n) % 5], 10) for n in range(50)] for start in (0, 2, 4, 1, 3, 0)
    ]

    payloads = await asyncio.gather(*(_batch(partner, items) for items in batches))

    assert all(r["userErrors"] == [] for p in payloads for r in p["results"])
    assert [await _balance(partner, ref) for ref in refs] == [600] * 5
