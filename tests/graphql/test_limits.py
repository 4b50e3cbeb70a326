"""Limits: query cost (reported in every response, Shopify style), a per-client bucket
and aliases; each refused with a clear error and nothing executed. (The depth limit
guards future recursive types: no path in today's schema is deeper than six.)"""

from __future__ import annotations

import httpx
from strawberry.extensions.validation_cache import _get_validate_cache

from exchange.kit.db import Database
from graphql_schema.schema import CACHE_SIZE
from tests.graphql.conftest import new_partner

_EXPENSIVE = """{ transactions(first: 100) { edges { node { id
  partner { id contract { issuePrice } } } } } }"""


async def test_every_response_reports_its_cost(db: Database, api: httpx.AsyncClient) -> None:
    partner = await new_partner(db, api)

    result = await partner.gql("{ viewer { kind partner { name } } }")

    cost = result["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2  # viewer 1 + partner 1
    assert cost["actualQueryCost"] == 2
    assert cost["throttleStatus"]["maximumAvailable"] >= 1000
    assert cost["throttleStatus"]["restoreRate"] > 0


async def test_a_query_above_the_cost_limit_is_refused(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)
    # 302 + 302 + 402: three paginated fields at 100 each, above the limit of 1000
    huge = """{ transactions(first: 100) { edges { node { id partner { id } } } }
      partners(first: 100) { edges { node { id contract { issuePrice } } } }
      t2: transactions(first: 100) { edges { node { partner { contract { version } } } } } }"""

    result = await partner.gql(huge)

    assert result["data"] is None
    assert result["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert result["extensions"]["cost"]["actualQueryCost"] == 0


async def test_a_client_that_spends_too_fast_is_throttled(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)
    # Each paginated field: 2 + 100 x (edges 1 + node 1 + partner 1 + contract 1) = 402.
    page = "transactions(first: 100) { edges { node { id partner { id contract { version } } } } }"
    costly = "{ " + page + " again: " + page + " }"  # 804 points

    codes = []
    for _ in range(60):  # 804 points each against a bucket of 20,000 refilled at 5,000/s
        result = await partner.gql(costly)
        codes.append((result.get("errors") or [{}])[0].get("extensions", {}).get("code"))
        if codes[-1] == "THROTTLED":
            break

    assert codes[0] is None
    assert codes[-1] == "THROTTLED"


async def test_too_many_aliases_are_refused(db: Database, api: httpx.AsyncClient) -> None:
    partner = await new_partner(db, api)
    many = "{ " + "".join(f"a{i}: viewer {{ kind }} " for i in range(40)) + "}"

    result = await partner.gql(many)

    assert result["data"] is None
    assert "aliases" in result["errors"][0]["message"].lower()


async def test_a_paginated_field_without_arguments_costs_its_default_page(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)

    result = await partner.gql("{ transactions { edges { node { id } } } }")

    assert "errors" not in result
    assert result["extensions"]["cost"]["requestedQueryCost"] == 2 + 20 * 2


async def test_a_repeated_document_is_validated_once(db: Database, api: httpx.AsyncClient) -> None:
    # The validation cache is keyed by the document and the rules; limit rules built per
    # request would make every request a miss and validate the document again.
    partner = await new_partner(db, api)
    document = "query RepeatedForTheCache { viewer { kind } }"
    cached = _get_validate_cache(CACHE_SIZE)
    await partner.gql(document)
    before = cached.cache_info()

    for _ in range(3):
        await partner.gql(document)

    after = cached.cache_info()
    assert after.hits - before.hits == 3
    assert after.misses == before.misses
