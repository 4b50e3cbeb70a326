"""Statements per request: relations load in batches, so a page costs as many statements
as a smaller one (no N+1), and a member read with its wallet is one unit of work."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from exchange.kit.db import Database
from tests.graphql.conftest import Caller, email, new_partner

PAGE = """query($first: Int!) { transactions(first: $first) { edges { node {
  id kind points partner { id name contract { issuePrice } } } } } }"""


EARN = """mutation($k: String!, $r: String!, $p: Int!) {
  earnPoints(input: {idempotencyKey: $k, memberRef: $r, points: $p}) { userErrors { code } } }"""


async def _linked_member(db: Database, api: httpx.AsyncClient) -> tuple[Caller, str]:
    partner = await new_partner(db, api)
    ref = f"m-{secrets.token_hex(4)}"
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    assert linked["data"]["linkMember"]["userErrors"] == []
    return partner, ref


async def _counted(
    api: httpx.AsyncClient, caller: Caller, query: str, **variables: Any
) -> tuple[dict[str, Any], int]:
    """A request's result and how many SQL statements it ran (a binding sent with BEGIN
    included)."""
    database = api._transport.app.state.database  # type: ignore[attr-defined]
    with database.watching() as sent:
        result = await caller.gql(query, **variables)
    # The caller's binding rides with a transaction's BEGIN: it counts as a statement.
    seen = [statement for statement in sent if statement != "BEGIN"]
    return result, len(seen)


async def _statements(api: httpx.AsyncClient, caller: Caller, first: int) -> int:
    result, statements = await _counted(api, caller, PAGE, first=first)
    assert len(result["data"]["transactions"]["edges"]) == first
    return statements


async def test_a_page_of_50_costs_as_many_statements_as_a_page_of_5(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner, ref = await _linked_member(db, api)
    for number in range(50):
        await partner.gql(EARN, k=f"k{number}", r=ref, p=1)

    small = await _statements(api, partner, 5)
    large = await _statements(api, partner, 50)

    assert large == small


WALLET_BY_REF = (
    "query($r: String!) { member(memberRef: $r) { id wallet { balance available"
    " byPartner { points } } } }"
)
WALLET_BY_FRAGMENT = (
    "query($r: String!) { member(memberRef: $r) { ...W } }"
    " fragment W on Member { ... on Member { wallet { balance } } }"
)


async def test_a_member_and_its_wallet_are_read_in_one_unit_of_work(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner, ref = await _linked_member(db, api)
    await partner.gql(EARN, k="w1", r=ref, p=70)
    plain, plain_statements = await _counted(api, partner, WALLET_BY_REF, r=ref)
    fragment, fragment_statements = await _counted(api, partner, WALLET_BY_FRAGMENT, r=ref)

    wallet = plain["data"]["member"]["wallet"]
    assert wallet["balance"] == wallet["available"] == "70"  # BigInt travels as a string
    assert [b["points"] for b in wallet["byPartner"]] == ["70"]
    assert fragment["data"]["member"]["wallet"]["balance"] == "70"
    # binding the caller's row scope, resolving the ref, reading the wallet
    assert plain_statements == 3
    assert fragment_statements == 3


PROFILE_BY_REF = (
    "query($r: String!) { member(memberRef: $r) { id segments"
    " profile { purchasesHere consentCrossPartner } wallet { balance } } }"
)


async def test_a_member_its_wallet_and_its_profile_are_read_in_one_unit_of_work(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner, ref = await _linked_member(db, api)
    await partner.gql(EARN, k="p1", r=ref, p=70)

    found, statements = await _counted(api, partner, PROFILE_BY_REF, r=ref)

    member = found["data"]["member"]
    assert member["segments"] == []  # no purchase yet
    assert member["profile"] == {"purchasesHere": 0, "consentCrossPartner": False}
    assert member["wallet"]["balance"] == "70"
    # binding the caller's row scope, resolving the ref, the wallet, the profile and
    # the caller's custom segments: one unit of work (two before, with a link check)
    assert statements == 5


async def test_without_insights_read_the_member_is_found_and_its_profile_refused(
    db: Database, api: httpx.AsyncClient
) -> None:
    narrow = await new_partner(db, api, scopes="members:link members:read")
    ref = f"m-{secrets.token_hex(4)}"
    linked = await narrow.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    assert linked["data"]["linkMember"]["userErrors"] == []

    found = await narrow.gql(
        "query($r: String!) { member(memberRef: $r) { id profile { purchasesHere } } }", r=ref
    )

    assert found["data"]["member"]["id"]  # the member, without its profile
    assert found["data"]["member"]["profile"] is None
    [error] = found["errors"]
    assert error["path"] == ["member", "profile"]
    assert error["extensions"]["code"] == "FORBIDDEN"
