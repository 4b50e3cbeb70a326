"""Limits: query cost (reported in every response, Shopify style), a per-client bucket
and aliases; each refused with a clear error and nothing executed. (The depth limit
guards future recursive types: no path in today's schema is deeper than six.)"""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx
from graphql import (
    GraphQLObjectType,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
)

from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.limits import MAX_EXPIRING_GROUPS
from graphql_schema.cost import PER_ITEM_LISTS, declared_list_size
from graphql_schema.schema import schema, validation_errors
from tests.graphql.conftest import Caller, email, new_partner

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
    # The validation cache is keyed by the document's text and the rules; limit rules
    # built per request would make every request a miss and validate the document again.
    partner = await new_partner(db, api)
    document = "query RepeatedForTheCache { viewer { kind } }"
    await partner.gql(document)
    before = validation_errors.cache_info()

    for _ in range(3):
        await partner.gql(document)

    after = validation_errors.cache_info()
    assert after.hits - before.hits == 3
    assert after.misses == before.misses


# -- What a list costs: the rows it can return ------------------------------------------

_EXPIRING = """query($ref: String!, $first: Int!) { member(memberRef: $ref) { wallet {
  expiring(withinDays: 3000, first: $first) { points expiresAt } } } }"""
_EXPIRING_DEFAULT = """query($ref: String!) { member(memberRef: $ref) { wallet {
  expiring(withinDays: 3000) { points expiresAt } } } }"""


async def _member_with_lots(partner: Caller, lots: int) -> str:
    """A member holding ``lots`` lots, each expiring on a different day."""
    ref = f"lots-{secrets.token_hex(4)}"
    linked = await partner.gql(
        "mutation($ref: String!, $email: String) {"
        " linkMember(input: {memberRef: $ref, email: $email}) { userErrors { code } } }",
        ref=ref,
        email=email(),
    )
    assert linked["data"]["linkMember"]["userErrors"] == []
    start = utc_now() + timedelta(days=1)
    items = [
        {
            "idempotencyKey": secrets.token_hex(8),
            "memberRef": ref,
            "points": 1,
            "expiresAt": (start + timedelta(days=n)).isoformat(),
        }
        for n in range(lots)
    ]
    issued = await partner.gql(
        "mutation($items: [EarnPointsInput!]!) { earnPointsBatch(input: {items: $items}) {"
        " results { userErrors { code } } userErrors { code } } }",
        items=items,
    )
    assert issued["data"]["earnPointsBatch"]["userErrors"] == []
    return ref


async def test_expiring_points_return_at_most_first_soonest_first(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)
    ref = await _member_with_lots(partner, MAX_EXPIRING_GROUPS + 20)

    everything = await partner.gql(_EXPIRING_DEFAULT, ref=ref)
    five = await partner.gql(_EXPIRING, ref=ref, first=5)

    listed = everything["data"]["member"]["wallet"]["expiring"]
    assert len(listed) == MAX_EXPIRING_GROUPS
    assert [e["expiresAt"] for e in listed] == sorted(e["expiresAt"] for e in listed)
    assert five["data"]["member"]["wallet"]["expiring"] == listed[:5]


async def test_expiring_points_refuse_a_first_out_of_range(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)
    ref = await _member_with_lots(partner, 1)

    for first in (0, MAX_EXPIRING_GROUPS + 1):
        result = await partner.gql(_EXPIRING, ref=ref, first=first)

        assert result["data"] == {"member": None}
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert "first" in result["errors"][0]["message"]


async def test_a_list_costs_one_point_per_item_it_can_return(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)
    ref = await _member_with_lots(partner, 1)

    by_default = await partner.gql(_EXPIRING_DEFAULT, ref=ref)
    five = await partner.gql(_EXPIRING, ref=ref, first=5)
    with_partner = await partner.gql(
        "query($ref: String!) { member(memberRef: $ref) { wallet {"
        " expiring(first: 10) { points partner { name } } } } }",
        ref=ref,
    )

    # member 1 + wallet 1 + items x (1 + their selection)
    assert by_default["extensions"]["cost"]["requestedQueryCost"] == 2 + MAX_EXPIRING_GROUPS
    assert five["extensions"]["cost"]["requestedQueryCost"] == 2 + 5
    assert with_partner["extensions"]["cost"]["requestedQueryCost"] == 2 + 10 * 2


async def test_a_bulk_issuance_costs_by_its_items(db: Database, api: httpx.AsyncClient) -> None:
    partner = await new_partner(db, api)
    query = (
        "mutation($items: [EarnPointsInput!]!) { earnPointsBatch(input: {items: $items}) {"
        " userErrors { code } } }"
    )
    items = [{"idempotencyKey": secrets.token_hex(8), "memberRef": "nobody", "points": 1}] * 95

    result = await partner.gql(query, items=items)

    # the mutation 10 + one point per ten items (rounded up) + payload 1 + userErrors 1
    assert result["extensions"]["cost"]["requestedQueryCost"] == 10 + 10 + 2


def test_every_list_of_objects_has_a_size_bound() -> None:
    """A list field costs by the items it can return: its ``first`` argument, the size its
    definition declares, or one per item of the connection or payload that holds it."""
    unbounded = []
    for type_name, graphql_type in schema._schema.type_map.items():
        if type_name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for name, definition in graphql_type.fields.items():
            named = get_named_type(definition.type)
            if not is_list_type(get_nullable_type(definition.type)) or is_leaf_type(named):
                continue
            if "first" in definition.args or name in PER_ITEM_LISTS:
                continue
            if declared_list_size(definition) is None:
                unbounded.append(f"{type_name}.{name}")

    assert unbounded == []
