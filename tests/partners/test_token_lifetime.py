"""The longest token lifetime (EXCHANGE_MAX_TOKEN_LIFETIME_S): a token whose ``exp - iat``
is longer is refused even when our own signing key signed it, and the token endpoint
never issues one longer than verification accepts."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt

from exchange.app import create_app
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from partners import clients
from partners import keys as key_store
from partners import tokens as token_service
from tests.conftest import TEST_SECRET_KEY

BASE = "http://127.0.0.1:8000"
SHORT_MAXIMUM_SECONDS = 300


async def _serve(
    database_url: str, home: Path, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(
            home=home,
            database_url=database_url,
            secret_key_from_env=TEST_SECRET_KEY,
            public_url=BASE,
            **settings,
        ),
        sweep=False,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


@pytest.fixture(scope="module")
async def api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _serve(database_url, tmp_path_factory.mktemp("home")):
        yield client


@pytest.fixture(scope="module")
async def strict_api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    home = tmp_path_factory.mktemp("strict")
    async for client in _serve(
        database_url, home, max_token_lifetime_seconds=SHORT_MAXIMUM_SECONDS
    ):
        yield client


async def _signed_by_the_real_key(db: Database, client_id: str, lifetime: timedelta) -> str:
    """A token signed with the active key the server itself loads from the database."""
    now = utc_now()
    async with db.transaction(SYSTEM) as conn:
        keys = await key_store.load(conn, secret=TEST_SECRET_KEY.encode(), now=now)
    token, _ = token_service.issue(
        keys,
        token_service.TokenSettings(issuer=BASE, audience=f"{BASE}/graphql"),
        client_id=client_id,
        subject=client_id,
        scopes=["points:earn"],
        now=now,
        lifetime=lifetime,
        extra={"kind": "OPERATOR"},
    )
    return token


async def _operator_client(db: Database) -> tuple[str, str]:
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(conn, scopes=["ledger:read:all"])
    assert created.client_secret is not None
    return created.client_id, created.client_secret


async def _whoami(api: httpx.AsyncClient, token: str) -> httpx.Response:
    return await api.get("/api/whoami", headers={"Authorization": f"Bearer {token}"})


async def test_a_validly_signed_ten_year_token_is_refused(
    db: Database, api: httpx.AsyncClient
) -> None:
    client_id, _ = await _operator_client(db)
    ten_years = await _signed_by_the_real_key(db, client_id, timedelta(days=3650))

    response = await _whoami(api, ten_years)

    assert response.status_code == 401
    assert "lifetime" in response.headers["www-authenticate"]
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_token_as_long_as_the_default_maximum_is_accepted(
    db: Database, api: httpx.AsyncClient
) -> None:
    client_id, _ = await _operator_client(db)
    one_hour = await _signed_by_the_real_key(db, client_id, timedelta(seconds=3600))
    one_hour_and_a_second = await _signed_by_the_real_key(db, client_id, timedelta(seconds=3601))

    assert (await _whoami(api, one_hour)).status_code == 200
    assert (await _whoami(api, one_hour_and_a_second)).status_code == 401


async def test_a_token_issued_in_the_future_cannot_stretch_its_lifetime(
    db: Database, api: httpx.AsyncClient
) -> None:
    # exp - iat is short, but iat lies years ahead: the cap must not be dodged that way.
    client_id, _ = await _operator_client(db)
    now = utc_now()
    async with db.transaction(SYSTEM) as conn:
        keys = await key_store.load(conn, secret=TEST_SECRET_KEY.encode(), now=now)
    token, _ = token_service.issue(
        keys,
        token_service.TokenSettings(issuer=BASE, audience=f"{BASE}/graphql"),
        client_id=client_id,
        subject=client_id,
        scopes=["ledger:read:all"],
        now=now + timedelta(days=3650),
        extra={"kind": "OPERATOR"},
    )

    response = await _whoami(api, token)

    assert response.status_code == 401


async def test_a_token_without_iat_cannot_reach_further_ahead_than_the_maximum(
    db: Database, api: httpx.AsyncClient
) -> None:
    client_id, _ = await _operator_client(db)
    now = utc_now()
    async with db.transaction(SYSTEM) as conn:
        keys = await key_store.load(conn, secret=TEST_SECRET_KEY.encode(), now=now)

    def signed(ahead: timedelta) -> str:
        claims = {
            "iss": BASE,
            "aud": f"{BASE}/graphql",
            "sub": client_id,
            "client_id": client_id,
            "kind": "OPERATOR",
            "jti": secrets.token_hex(8),
            "exp": int((now + ahead).timestamp()),
        }
        header = {"typ": "at+jwt", "alg": "ES256", "kid": keys.active_kid}
        return jwt.encode(header, claims, keys.active, algorithms=["ES256"])

    assert (await _whoami(api, signed(timedelta(days=3650)))).status_code == 401
    assert (await _whoami(api, signed(timedelta(minutes=10)))).status_code == 200


async def test_a_shorter_maximum_refuses_longer_tokens_and_issues_none_longer(
    db: Database, strict_api: httpx.AsyncClient
) -> None:
    client_id, secret = await _operator_client(db)
    ten_minutes = await _signed_by_the_real_key(db, client_id, timedelta(minutes=10))

    issued = await strict_api.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )

    assert (await _whoami(strict_api, ten_minutes)).status_code == 401
    assert issued.status_code == 200, issued.text
    assert issued.json()["expires_in"] == SHORT_MAXIMUM_SECONDS
    assert (await _whoami(strict_api, issued.json()["access_token"])).status_code == 200


def test_the_maximum_comes_from_the_environment_and_must_be_positive_seconds(
    tmp_path: Path,
) -> None:
    home = str(tmp_path)
    default = Settings.from_environment({"EXCHANGE_HOME": home})
    given = Settings.from_environment(
        {"EXCHANGE_HOME": home, "EXCHANGE_MAX_TOKEN_LIFETIME_S": "900"}
    )

    assert default.max_token_lifetime_seconds == 3600
    assert given.max_token_lifetime_seconds == 900
    for bad in ("0", "-5", "1h", "1.5", "²"):
        with pytest.raises(ValueError, match="EXCHANGE_MAX_TOKEN_LIFETIME_S"):
            Settings.from_environment({"EXCHANGE_HOME": home, "EXCHANGE_MAX_TOKEN_LIFETIME_S": bad})
