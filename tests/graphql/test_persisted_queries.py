"""Automatic persisted queries (Apollo's protocol) over HTTP with real tokens: a hash the
server does not know is PersistedQueryNotFound, a query sent with its hash is checked and
remembered, then the hash alone runs it, by POST or GET."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import httpx
import pytest

from exchange.http.persisted import PersistedQueries
from exchange.kit.db import Database
from tests.graphql.conftest import Caller, new_partner
from tests.graphql.test_points_mutations import _linked

EARN = """mutation($key: String!, $ref: String!, $points: Int!) {
  earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points}) {
    transaction { points } userErrors { code } } }"""


def _wallet_query() -> str:
    # a document of its own per test: the server's cache outlives a test
    name = f"W{secrets.token_hex(4)}"
    return f"query {name}($r: String!) {{ member(memberRef: $r) {{ wallet {{ balance }} }} }}"


def sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def persisted(digest: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def post(caller: Caller, body: dict[str, Any]) -> httpx.Response:
    return await caller.api.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {caller.token}"}
    )


async def balance(caller: Caller, ref: str) -> str:
    read = await caller.gql(
        "query($r: String!) { member(memberRef: $r) { wallet { balance } } }", r=ref
    )
    return str(read["data"]["member"]["wallet"]["balance"])


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


async def test_an_unknown_hash_is_persisted_query_not_found_and_runs_nothing(
    partner: Caller,
) -> None:
    ref = await _linked(partner)
    query = EARN + f" # {secrets.token_hex(4)}"

    response = await post(
        partner,
        {"variables": {"key": "k1", "ref": ref, "points": 5}, "extensions": persisted(sha(query))},
    )

    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    assert await balance(partner, ref) == "0"


async def test_a_query_sent_with_its_hash_is_remembered_and_the_hash_alone_runs_it(
    partner: Caller,
) -> None:
    ref = await _linked(partner)
    query = EARN + f" # {secrets.token_hex(4)}"
    extensions = persisted(sha(query))

    first = await post(
        partner,
        {
            "query": query,
            "variables": {"key": "a", "ref": ref, "points": 5},
            "extensions": extensions,
        },
    )
    second = await post(
        partner, {"variables": {"key": "b", "ref": ref, "points": 7}, "extensions": extensions}
    )

    assert first.json()["data"]["earnPoints"] == {"transaction": {"points": "5"}, "userErrors": []}
    assert second.json()["data"]["earnPoints"] == {"transaction": {"points": "7"}, "userErrors": []}
    assert await balance(partner, ref) == "12"


async def test_a_persisted_query_runs_by_get(partner: Caller) -> None:
    ref = await _linked(partner, points=40)
    query = _wallet_query()
    registered = await post(partner, {"query": query, "variables": {"r": ref},
                                      "extensions": persisted(sha(query))})  # fmt: skip

    response = await partner.api.get(
        "/graphql",
        params={
            "variables": json.dumps({"r": ref}),
            "extensions": json.dumps(persisted(sha(query))),
        },
        headers={"Authorization": f"Bearer {partner.token}", "Accept": "*/*"},
    )

    assert registered.status_code == 200
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"member": {"wallet": {"balance": "40"}}}


async def test_a_hash_that_does_not_match_the_query_is_refused_and_not_remembered(
    partner: Caller,
) -> None:
    ref = await _linked(partner)
    query = EARN + f" # {secrets.token_hex(4)}"
    wrong = sha(query + " ")

    refused = await post(
        partner,
        {"query": query, "variables": {"key": "c", "ref": ref, "points": 5},
         "extensions": persisted(wrong)},
    )  # fmt: skip
    later = await post(
        partner,
        {"variables": {"key": "d", "ref": ref, "points": 5}, "extensions": persisted(wrong)},
    )

    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert later.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert await balance(partner, ref) == "0"


@pytest.mark.parametrize(
    ("extensions", "code"),
    [
        (persisted("ab" * 32, version=2), "PERSISTED_QUERY_NOT_SUPPORTED"),
        (persisted("not a hash"), "BAD_REQUEST"),
        (persisted("AB" * 32), "BAD_REQUEST"),
        ({"persistedQuery": "yes"}, "BAD_REQUEST"),
    ],
)
async def test_a_malformed_persisted_query_is_a_clear_400(
    partner: Caller, extensions: dict[str, Any], code: str
) -> None:
    response = await post(partner, {"query": "{ viewer { kind } }", "extensions": extensions})

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == code


async def test_a_persisted_query_still_needs_a_token(api: httpx.AsyncClient) -> None:
    response = await api.post("/graphql", json={"extensions": persisted("ab" * 32)})

    assert response.status_code == 401


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    cache = PersistedQueries(capacity=2)
    first, second, third = "{ a }", "{ b }", "{ c }"
    for query in (first, second):
        cache.resolve(query, persisted(sha(query)))
    cache.resolve(None, persisted(sha(first)))  # used again: the second is now the oldest
    cache.resolve(third, persisted(sha(third)))

    assert len(cache) == 2
    assert cache.resolve(None, persisted(sha(first))) == first
    assert cache.resolve(None, persisted(sha(third))) == third
    with pytest.raises(Exception, match="PersistedQueryNotFound"):
        cache.resolve(None, persisted(sha(second)))
