"""A partner's contract (prices, fee rate, credit limit, funding model, earn rate, the
most points per operation) is for that partner and for operators who administer
partners. A member token, or another partner, gets the partner's public name and a null
contract (not an error) through every field that reaches a Partner: ``node(id:)``,
``partners``, ``viewer`` and the partner of a wallet's balances, expiring points and
transactions. Each check is made over HTTP with real tokens; the positive controls show
the same documents do return a contract to those who may read it."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from exchange.kit.db import Database
from graphql_schema import ids
from tests.graphql.conftest import Caller, email, new_operator, new_partner

CONTRACT = """contract { version currency issuePrice redemptionPrice feeRate fundingModel
  pointsLifetimeDays creditLimitPoints effectiveFrom earnRate maxPointsPerOperation }"""
NODE = f"query($id: ID!) {{ node(id: $id) {{ id ... on Partner {{ name {CONTRACT} }} }} }}"
PARTNERS = f"""query($after: String) {{ partners(first: 100, after: $after) {{
  edges {{ node {{ id name {CONTRACT} }} }} }} }}"""
VIEWER = f"{{ viewer {{ kind partner {{ id {CONTRACT} }} }} }}"
WALLET = f"""{{ wallet {{
  byPartner {{ points partner {{ id name {CONTRACT} }} }}
  expiring(withinDays: 3660) {{ points partner {{ id {CONTRACT} }} }}
  transactions(first: 10) {{ edges {{ node {{ kind partner {{ id {CONTRACT} }} }} }} }} }} }}"""
TRANSACTIONS = f"""{{ transactions(first: 10) {{ edges {{ node {{ kind
  partner {{ id {CONTRACT} }} }} }} }} }}"""
MEMBER = f"""query($ref: String!) {{ member(memberRef: $ref) {{ wallet {{
  byPartner {{ partner {{ id {CONTRACT} }} }} }} }} }}"""


def _partners_seen(data: Any) -> list[dict[str, Any]]:
    """Every object with a ``contract`` key anywhere in a response."""
    found: list[dict[str, Any]] = []
    if isinstance(data, dict):
        if "contract" in data:
            found.append(data)
        for value in data.values():
            found.extend(_partners_seen(value))
    elif isinstance(data, list):
        for value in data:
            found.extend(_partners_seen(value))
    return found


def _before(partner: Caller) -> str | None:
    """A ``partners`` cursor just before this partner (the list is in id order)."""
    assert partner.partner_id is not None
    return ids.encode("Partner", partner.partner_id - 1) if partner.partner_id > 1 else None


def _contracts_of(result: dict[str, Any], partner_global_id: str) -> list[Any]:
    """The contracts a response shows for one partner (one per place it appears)."""
    assert "errors" not in result, result
    return [
        seen["contract"]
        for seen in _partners_seen(result["data"])
        if seen.get("id") == partner_global_id
    ]


@pytest.fixture(scope="module")
async def brand(db: Database, api: httpx.AsyncClient) -> tuple[Caller, str]:
    """A partner with a linked member who earned there (and so has the partner in every
    part of its wallet)."""
    partner = await new_partner(db, api)
    ref = f"m-{secrets.token_hex(4)}"
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    earned = await partner.gql(
        "mutation($r: String!) { earnPoints(input: {idempotencyKey: $r, memberRef: $r,"
        " points: 100}) { userErrors { code } } }",
        r=ref,
    )
    assert linked["data"]["linkMember"]["userErrors"] == []
    assert earned["data"]["earnPoints"]["userErrors"] == []
    return partner, ref


async def test_a_member_token_reads_no_contract_through_any_field(
    brand: tuple[Caller, str],
) -> None:
    partner, ref = brand
    assert partner.partner_id is not None
    partner_id = ids.encode("Partner", partner.partner_id)
    member = await partner.member_token(ref, "wallet:read wallet:transfer")

    node = await member.gql(NODE, id=partner_id)
    listed = await member.gql(PARTNERS, after=_before(partner))
    wallet = await member.gql(WALLET)
    history = await member.gql(TRANSACTIONS)
    viewer = await member.gql(VIEWER)

    assert node["data"]["node"]["name"]  # the name is public ...
    assert _contracts_of(node, partner_id) == [None]  # ... the contract is not
    assert _contracts_of(listed, partner_id) == [None]
    assert {str(seen["contract"]) for seen in _partners_seen(listed["data"])} == {"None"}
    # byPartner, expiring and the earn in the history: the partner thrice, no contract.
    assert _contracts_of(wallet, partner_id) == [None, None, None]
    assert _contracts_of(history, partner_id) == [None]
    assert viewer["data"]["viewer"] == {"kind": "MEMBER", "partner": None}


async def test_a_partner_reads_its_own_contract_and_no_other_partners(
    db: Database, api: httpx.AsyncClient, brand: tuple[Caller, str]
) -> None:
    partner, ref = brand
    other = await new_partner(db, api)
    assert partner.partner_id is not None
    assert other.partner_id is not None
    partner_id = ids.encode("Partner", partner.partner_id)
    other_id = ids.encode("Partner", other.partner_id)

    own_node = await partner.gql(NODE, id=partner_id)
    own_member = await partner.gql(MEMBER, ref=ref)
    own_history = await partner.gql(TRANSACTIONS)
    foreign_node = await other.gql(NODE, id=partner_id)
    foreign_list = await other.gql(PARTNERS, after=_before(partner))
    own_viewer = await other.gql(VIEWER)

    assert _contracts_of(own_node, partner_id)[0]["issuePrice"] == "0.01"
    assert [c["creditLimitPoints"] for c in _contracts_of(own_member, partner_id)] == ["1000000"]
    assert _contracts_of(own_history, partner_id)[0]["feeRate"] == "0.02"
    assert _contracts_of(foreign_node, partner_id) == [None]
    assert _contracts_of(foreign_list, partner_id) == [None]
    assert _contracts_of(foreign_list, other_id)[0]["currency"] == "USD"  # its own, yes
    assert _contracts_of(own_viewer, other_id)[0]["fundingModel"] == "ON_REDEMPTION"


async def test_an_operator_who_administers_partners_reads_every_contract(
    db: Database, api: httpx.AsyncClient, brand: tuple[Caller, str]
) -> None:
    partner, _ = brand
    assert partner.partner_id is not None
    partner_id = ids.encode("Partner", partner.partner_id)
    operator = await new_operator(db, api)

    node = await operator.gql(NODE, id=partner_id)
    listed = await operator.gql(PARTNERS, after=_before(partner))

    assert _contracts_of(node, partner_id)[0]["redemptionPrice"] == "0.008"
    assert all(seen["contract"] is not None for seen in _partners_seen(listed["data"]))
