"""POST /bulk/earn over HTTP with real tokens: NDJSON earn items in, one NDJSON result per
item out, in order; a bad line fails alone; a replayed key returns the first result; a
request refused as a whole moves nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from exchange.kit import limits
from exchange.kit.db import Database
from tests.graphql.conftest import Caller, new_partner
from tests.graphql.test_bulk_issuance import BALANCE, BATCH, _members

NDJSON = "application/x-ndjson"


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


def ndjson(*items: Any) -> bytes:
    return b"".join(
        (item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n" for item in items
    )


async def bulk(caller: Caller, body: bytes, media_type: str = NDJSON) -> httpx.Response:
    return await caller.api.post(
        "/bulk/earn",
        content=body,
        headers={"Authorization": f"Bearer {caller.token}", "Content-Type": media_type},
    )


def results(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NDJSON)
    return [json.loads(line) for line in response.text.splitlines()]


async def balance(partner: Caller, ref: str) -> str:
    read = await partner.gql(BALANCE, ref=ref)
    return str(read["data"]["member"]["wallet"]["balance"])


async def test_every_item_gets_its_result_in_order_and_points_move(partner: Caller) -> None:
    first, second = await _members(partner, 2)
    body = ndjson(
        {"idempotencyKey": "n1", "memberRef": first, "points": 40},
        {"idempotencyKey": "n2", "memberRef": second, "points": 15, "reference": "order 2"},
        {"idempotencyKey": "n3", "memberRef": first, "points": 5,
         "expiresAt": "2099-01-01T00:00:00Z"},
    )  # fmt: skip

    answer = results(await bulk(partner, body))

    assert [(r["line"], r["idempotencyKey"], r["transaction"]["points"]) for r in answer] == [
        (1, "n1", "40"),
        (2, "n2", "15"),
        (3, "n3", "5"),
    ]
    assert all(r["userErrors"] == [] and r["replayed"] is False for r in answer)
    assert all(r["transaction"]["id"] for r in answer)
    assert await balance(partner, first) == "45"
    assert await balance(partner, second) == "15"


async def test_a_replayed_key_returns_the_first_result_and_moves_nothing(
    partner: Caller,
) -> None:
    (ref,) = await _members(partner, 1)
    body = ndjson({"idempotencyKey": "r1", "memberRef": ref, "points": 30})

    first = results(await bulk(partner, body))
    again = results(await bulk(partner, body))

    assert again[0]["transaction"] == first[0]["transaction"]
    assert again[0]["replayed"] is True
    assert await balance(partner, ref) == "30"


async def test_a_key_shares_its_idempotency_with_earn_points_batch(partner: Caller) -> None:
    (ref,) = await _members(partner, 1)
    item = {"idempotencyKey": "shared-1", "memberRef": ref, "points": 12}
    by_graphql = await partner.gql(BATCH, items=[item])

    by_bulk = results(await bulk(partner, ndjson(item)))
    reused = results(await bulk(partner, ndjson({**item, "points": 13})))

    transaction = by_graphql["data"]["earnPointsBatch"]["results"][0]["transaction"]
    assert by_bulk[0]["transaction"]["id"] == transaction["id"]
    assert reused[0]["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await balance(partner, ref) == "12"


async def test_a_bad_line_fails_alone_with_its_code_and_field(partner: Caller) -> None:
    (ref,) = await _members(partner, 1)
    body = ndjson(
        {"idempotencyKey": "b1", "memberRef": ref, "points": 10},
        b"{not json",
        {"idempotencyKey": "b3", "memberRef": ref},
        {"idempotencyKey": "b4", "memberRef": ref, "points": "5"},
        {"idempotencyKey": "b5", "memberRef": ref, "points": 2.5},
        {"idempotencyKey": "b6", "memberRef": "nobody-here", "points": 5},
        {"idempotencyKey": "b7", "memberRef": ref, "points": -5},
        {"idempotencyKey": "b8\u0000", "memberRef": ref, "points": 5},
        {"idempotencyKey": "b9", "memberRef": ref, "points": 5, "colour": "red"},
        {"idempotencyKey": "b10", "memberRef": ref, "points": 5, "expiresAt": "2099-01-01"},
        [1, 2],
        {"idempotencyKey": "b12", "memberRef": ref, "points": 7},
    )

    answer = results(await bulk(partner, body))

    errors = {r["line"]: r["userErrors"][0] if r["userErrors"] else None for r in answer}
    assert errors[1] is None
    assert errors[12] is None
    assert errors[2]["code"] == "INVALID_INPUT"
    assert errors[3] == {"field": ["points"], "code": "INVALID_INPUT",
                         "message": "points is required"}  # fmt: skip
    assert errors[4]["field"] == ["points"]
    assert errors[5]["field"] == ["points"]
    assert errors[6]["code"] == "MEMBER_NOT_LINKED"
    assert errors[6]["field"] == ["memberRef"]
    assert errors[7]["code"] == "INVALID_INPUT"
    assert errors[7]["field"] == ["points"]
    assert errors[8]["code"] == "INVALID_INPUT"
    assert errors[8]["field"] == ["idempotencyKey"]
    assert errors[9]["field"] == ["colour"]
    assert errors[10]["field"] == ["expiresAt"]
    assert errors[11]["code"] == "INVALID_INPUT"
    assert len(answer) == 12
    assert await balance(partner, ref) == "17"


async def test_more_items_than_one_batch_are_all_written(partner: Caller) -> None:
    refs = await _members(partner, 3)
    items = [
        {"idempotencyKey": f"many-{n}", "memberRef": refs[n % 3], "points": 1} for n in range(2500)
    ]

    answer = results(await bulk(partner, ndjson(*items)))

    assert [r["line"] for r in answer] == list(range(1, 2501))
    assert all(r["userErrors"] == [] for r in answer)
    assert [await balance(partner, ref) for ref in refs] == ["834", "833", "833"]


async def test_without_a_token_it_is_401(api: httpx.AsyncClient) -> None:
    response = await api.post("/bulk/earn", content=b"{}\n", headers={"Content-Type": NDJSON})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_without_the_earn_scope_it_is_403_and_moves_nothing(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    (ref,) = await _members(partner, 1)
    reader = await new_partner(db, api, scopes="members:read")

    response = await bulk(reader, ndjson({"idempotencyKey": "s1", "memberRef": ref, "points": 5}))

    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await balance(partner, ref) == "0"


@pytest.mark.parametrize(
    ("body", "media_type", "status"),
    [
        (b"", NDJSON, 400),
        (b"\n\n", NDJSON, 400),
        (b'{"idempotencyKey": "x"}\n', "application/json", 415),
    ],
)
async def test_a_request_refused_as_a_whole_is_a_json_error(
    partner: Caller, body: bytes, media_type: str, status: int
) -> None:
    response = await bulk(partner, body, media_type)

    assert response.status_code == status
    assert response.json()["errors"][0]["message"]


async def test_a_declared_body_over_64_mib_is_413_before_it_is_read(partner: Caller) -> None:
    response = await partner.api.post(
        "/bulk/earn",
        content=b"x",
        headers={
            "Authorization": f"Bearer {partner.token}",
            "Content-Type": NDJSON,
            "Content-Length": str(limits.BULK_BODY_BYTES + 1),
        },
    )

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_chunked_body_over_64_mib_is_413_before_the_rest_is_read(
    partner: Caller,
) -> None:
    sent = 0
    chunk = b" " * (1024 * 1024)

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):  # 100 MiB offered
            sent += 1
            yield chunk

    response = await partner.api.post(
        "/bulk/earn",
        content=body(),
        headers={"Authorization": f"Bearer {partner.token}", "Content-Type": NDJSON},
    )

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert sent <= 66  # the limit is 64 MiB: the rest was never read
