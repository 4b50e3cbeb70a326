"""An app whose use cases run on a clock the test sets (segments are judged at a moment),
with k-anonymity at 3 so tests can show a row appear at k members and not at k - 1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from exchange.app import create_app
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.settings import Settings, Tunables
from exchange.kit.system import SYSTEM
from partners import clients
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, Caller, token_for
from tests.loyalty.conftest import RECORD

K = 3
#: The moment the examples are judged at, unless a test moves the clock.
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
#: Partners of these tests have contracts from here on.
SINCE = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = field(default=NOW)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
async def api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        home=Path(tmp_path_factory.mktemp("home")),
        database_url=database_url,
        secret_key_from_env=TEST_SECRET_KEY,
        public_url=BASE,
        tunables=Tunables(k_anonymity=K),
    )
    app = create_app(settings, sweep=False, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def bought(partner: Caller, ref: str, amount: str, at: str, **extra: Any) -> None:
    """A purchase of ``amount`` USD at ``at`` (ISO 8601)."""
    import secrets

    result = await partner.gql(
        RECORD,
        input={
            "idempotencyKey": f"p-{secrets.token_hex(6)}",
            "memberRef": ref,
            "amount": amount,
            "currency": "USD",
            "occurredAt": at,
            **extra,
        },
    )
    assert "errors" not in result, result
    assert result["data"]["recordPurchase"]["userErrors"] == [], result


PROFILE = """query($r: String!) { member(memberRef: $r) { segments profile {
  firstPurchaseAt lastPurchaseAt purchasesHere spendHere meanDaysBetweenPurchases
  rfm { recency frequency monetary } consentCrossPartner } } }"""


async def profile_of(partner: Caller, ref: str) -> dict[str, Any]:
    result = await partner.gql(PROFILE, r=ref)
    assert "errors" not in result, result
    member: dict[str, Any] = result["data"]["member"]
    return member


async def refresh(db: Database) -> None:
    """What `exchange insights refresh` does (and `serve` every hour)."""
    from exchange.insights import profiles

    async with db.transaction(SYSTEM) as conn:
        await profiles.refresh(conn, now=utc_now())


async def consent(db: Database, partner: Caller, ref: str, given: bool) -> None:
    """Record a member's consent directly (the API's own tests are in test_consent.py)."""
    async with db.transaction(SYSTEM) as conn:
        await conn.execute(
            sql(
                "INSERT INTO member_profile (member_id, consent_cross_partner)"
                " SELECT member_id, :given FROM member_link"
                " WHERE partner_id = :partner AND member_ref = :ref"
                " ON CONFLICT (member_id) DO UPDATE SET consent_cross_partner = :given"
            ),
            {"given": given, "partner": partner.partner_id, "ref": ref},
        )


async def insights_operator(db: Database, api: httpx.AsyncClient) -> Caller:
    """An operator client with insights:read (the coalition's view)."""
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(conn, scopes=["insights:read"])
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret)
