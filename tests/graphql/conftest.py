"""An app over the test database, and callers with real OAuth tokens."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exchange.app import create_app
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from partners import clients, registry
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.conftest import TEST_SECRET_KEY
from tests.partners.test_registry import TERMS, unique_name

BASE = "http://127.0.0.1:8000"
ALL_PARTNER_SCOPES = (
    "points:earn points:redeem points:reverse members:link members:read transactions:read"
    " wallet:read wallet:transfer campaigns:read campaigns:write webhooks:write insights:read"
    " offers:write"
)


@pytest.fixture(scope="module")
async def api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    home: Path = tmp_path_factory.mktemp("home")
    settings = Settings(
        home=home,
        database_url=database_url,
        secret_key_from_env=TEST_SECRET_KEY,
        public_url=BASE,
    )
    app = create_app(settings, sweep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


@dataclass
class Caller:
    api: httpx.AsyncClient
    token: str
    client_id: str
    client_secret: str
    partner_id: int | None = None

    async def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.api.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def member_token(self, member_ref: str, scope: str = "wallet:read") -> Caller:
        response = await self.api.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": member_ref,
                "subject_token_type": MEMBER_REF_TOKEN_TYPE,
                "scope": scope,
            },
            auth=(self.client_id, self.client_secret),
        )
        assert response.status_code == 200, response.text
        return Caller(self.api, response.json()["access_token"], self.client_id, self.client_secret)


async def token_for(api: httpx.AsyncClient, client_id: str, secret: str) -> str:
    response = await api.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def new_partner(
    db: Database, api: httpx.AsyncClient, scopes: str = ALL_PARTNER_SCOPES
) -> Caller:
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
        created = await clients.create_client(conn, scopes=scopes.split(), partner_id=partner.id)
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret, partner.id)


async def new_operator(db: Database, api: httpx.AsyncClient) -> Caller:
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(
            conn, scopes=["partners:admin", "ledger:read:all", "settlement:read:all"]
        )
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret)


def email() -> str:
    return f"member-{secrets.token_hex(5)}@example.com"
