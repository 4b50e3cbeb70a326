"""Callers of the loyalty engine over real HTTP with real tokens, and the documents they
send. Each test makes its own partners and members; tiers are coalition-wide, so the tier
tests run on a database of their own (tests/loyalty/test_tiers.py)."""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx

from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from partners import clients, registry
from tests.graphql.conftest import ALL_PARTNER_SCOPES, Caller, email, token_for
from tests.graphql.conftest import api as api  # the fixture, for these tests
from tests.partners.test_registry import TERMS, unique_name

PURCHASE_FIELDS = """
  purchase { id amount refundedAmount currency points occurredAt
             awards { points rule campaign { id name } fundedBy { id } } }
  transactions { id kind points }
  wallet { balance }
  userErrors { code field message }
"""
RECORD = (
    "mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {"
    + PURCHASE_FIELDS
    + "} }"
)
REFUND = (
    "mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) {"
    + PURCHASE_FIELDS
    + "} }"
)
PREVIEW = """mutation($input: PreviewPurchaseInput!) { previewPurchase(input: $input) {
  points awards { points rule campaign { id } fundedBy { id } } userErrors { code field message }
} }"""
CAMPAIGN_FIELDS = """campaign { id name status budgetPoints spentPoints perMemberLimit condition
  owner { id } funding { partner { id } share accepted } }
  userErrors { code field message }"""
CREATE = (
    "mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {"
    + CAMPAIGN_FIELDS
    + "} }"
)


async def partner_with(
    db: Database, api: httpx.AsyncClient, *, since: datetime | None = None, **terms: Any
) -> Caller:
    """A partner on the test contract changed by ``terms`` (in force from ``since``), and
    a caller with every partner scope."""
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(
            conn, name=unique_name(), terms=replace(TERMS, **terms), now=since or utc_now()
        )
        created = await clients.create_client(
            conn, scopes=ALL_PARTNER_SCOPES.split(), partner_id=partner.id
        )
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret, partner.id)


def gid(kind: str, number: int) -> str:
    return base64.b64encode(f"{kind}:{number}".encode()).decode().rstrip("=")


def move(verb: str) -> str:
    """The document of a campaign's lifecycle mutation (activateCampaign, ...)."""
    return f"mutation($id: ID!) {{ {verb}(input: {{campaignId: $id}}) {{" + CAMPAIGN_FIELDS + "} }"


async def link(partner: Caller) -> str:
    """A new member linked by the partner; its ref."""
    ref = f"m-{secrets.token_hex(5)}"
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    assert linked["data"]["linkMember"]["userErrors"] == []
    return ref


async def record(
    partner: Caller, ref: str, amount: str, *, key: str | None = None, **extra: Any
) -> dict[str, Any]:
    """recordPurchase's payload (USD unless ``currency`` is given)."""
    given = {
        "idempotencyKey": key or f"p-{secrets.token_hex(6)}",
        "memberRef": ref,
        "amount": amount,
        "currency": "USD",
        **extra,
    }
    result = await partner.gql(RECORD, input=given)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["recordPurchase"]
    return payload


def awards(payload: dict[str, Any]) -> list[tuple[str, int]]:
    """(rule, points) of a purchase's awards, in order."""
    return [(a["rule"], int(a["points"])) for a in payload["purchase"]["awards"]]


async def campaign(
    owner: Caller,
    effect: dict[str, Any],
    *,
    condition: str = "true",
    activate: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A campaign of ``owner``, started yesterday, active unless told otherwise."""
    given = {
        "name": f"campaign {secrets.token_hex(3)}",
        "startsAt": "2020-01-01T00:00:00+00:00",
        "condition": condition,
        "effect": effect,
        **extra,
    }
    created = await owner.gql(CREATE, input=given)
    assert "errors" not in created, created
    payload: dict[str, Any] = created["data"]["createCampaign"]
    assert payload["userErrors"] == [], payload
    if activate:
        moved = await owner.gql(move("activateCampaign"), id=payload["campaign"]["id"])
        assert moved["data"]["activateCampaign"]["userErrors"] == [], moved
        campaign_now: dict[str, Any] = moved["data"]["activateCampaign"]["campaign"]
        return campaign_now
    created_campaign: dict[str, Any] = payload["campaign"]
    return created_campaign


async def balance(partner: Caller, ref: str) -> int:
    result = await partner.gql(
        "query($r: String!) { member(memberRef: $r) { wallet { balance } } }", r=ref
    )
    return int(result["data"]["member"]["wallet"]["balance"])
