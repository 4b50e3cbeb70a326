"""Failed client authentications are throttled per remote address and per client id,
across server processes (two apps on one database here), with 429, Retry-After and an
RFC 6749 body; a successful authentication is never slowed or refused by them."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from exchange.app import create_app
from exchange.http.throttle import FAILURES_PER_MINUTE
from exchange.kit.db import Database, sql
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from partners import clients
from tests.conftest import TEST_SECRET_KEY

BASE = "http://127.0.0.1:8000"
#: The buckets refill one failure every 60 / FAILURES_PER_MINUTE seconds.
REFILL_SECONDS = 60 / FAILURES_PER_MINUTE


@pytest.fixture(scope="module")
async def apps(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[object]]:
    """Two apps on one database, as two workers."""
    started = []
    async with contextlib.AsyncExitStack() as stack:
        for n in range(2):
            settings = Settings(
                home=tmp_path_factory.mktemp(f"worker{n}"),
                database_url=database_url,
                secret_key_from_env=TEST_SECRET_KEY,
                public_url=BASE,
            )
            app = create_app(settings, sweep=False)
            await stack.enter_async_context(app.router.lifespan_context(app))
            started.append(app)
        yield started


def _address() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


@contextlib.asynccontextmanager
async def _from(app: object, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def _client(db: Database) -> tuple[str, str]:
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(conn, scopes=["ledger:read:all"])
    assert created.client_secret is not None
    return created.client_id, created.client_secret


async def _token(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )


def _throttled(response: httpx.Response) -> bool:
    if response.status_code != 429:
        return False
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert "too many failed client authentications" in body["error_description"]
    assert 1 <= int(response.headers["retry-after"]) <= REFILL_SECONDS
    return True


async def test_an_address_that_keeps_failing_gets_429_and_then_nothing_is_checked(
    db: Database, apps: list[object]
) -> None:
    victim, _ = await _client(db)
    other_id, other_secret = await _client(db)
    address = _address()

    started = time.monotonic()
    statuses = []
    async with _from(apps[0], address) as http:
        for _ in range(FAILURES_PER_MINUTE + 5):
            response = await _token(http, victim, "wrong")
            statuses.append(response.status_code)
            if _throttled(response):
                break
        # right credentials from the same address: refused before they are read
        same_address = await _token(http, other_id, other_secret)
    allowed = statuses.index(429)
    async with _from(apps[0], _address()) as elsewhere:
        other_address = await _token(elsewhere, other_id, other_secret)

    assert set(statuses[:allowed]) == {401}
    refilled = int((time.monotonic() - started) / REFILL_SECONDS)
    assert FAILURES_PER_MINUTE <= allowed <= FAILURES_PER_MINUTE + refilled
    assert _throttled(same_address)
    assert other_address.status_code == 200


async def test_failures_for_one_client_count_across_addresses_but_never_lock_it_out(
    db: Database, apps: list[object]
) -> None:
    client_id, secret = await _client(db)

    started = time.monotonic()
    statuses = []
    for _ in range(FAILURES_PER_MINUTE + 5):  # each failure from a new address
        async with _from(apps[0], _address()) as http:
            response = await _token(http, client_id, "wrong")
        statuses.append(response.status_code)
        if _throttled(response):
            break
    async with _from(apps[0], _address()) as http:
        owner = await _token(http, client_id, secret)

    allowed = statuses.index(429)
    refilled = int((time.monotonic() - started) / REFILL_SECONDS)
    assert FAILURES_PER_MINUTE <= allowed <= FAILURES_PER_MINUTE + refilled
    assert owner.status_code == 200  # the owner's right secret still gets its token


async def test_the_limit_holds_across_workers_and_oauth_endpoints(
    db: Database, apps: list[object]
) -> None:
    client_id, _ = await _client(db)
    address = _address()

    started = time.monotonic()
    statuses = []
    async with _from(apps[0], address) as first, _from(apps[1], address) as second:
        for n in range(FAILURES_PER_MINUTE + 5):  # alternate workers and endpoints
            http = (first, second)[n % 2]
            path = ("/oauth/token", "/oauth/introspect", "/oauth/revoke")[n % 3]
            response = await http.post(
                path,
                data={"grant_type": "client_credentials", "token": "x"},
                auth=(client_id, "wrong"),
            )
            statuses.append(response.status_code)
            if _throttled(response):
                break

    allowed = statuses.index(429)
    refilled = int((time.monotonic() - started) / REFILL_SECONDS)
    assert set(statuses[:allowed]) == {401}
    # each worker alone would have allowed FAILURES_PER_MINUTE
    assert FAILURES_PER_MINUTE <= allowed <= FAILURES_PER_MINUTE + refilled


async def test_a_successful_authentication_counts_nothing(db: Database, apps: list[object]) -> None:
    client_id, secret = await _client(db)
    address = _address()

    async with _from(apps[1], address) as http:
        for _ in range(3 * FAILURES_PER_MINUTE):
            assert (await _token(http, client_id, secret)).status_code == 200

    async with db.transaction(SYSTEM) as conn:
        rows = (
            await conn.execute(
                sql("SELECT name FROM limit_bucket WHERE name IN (:client, :address)"),
                {"client": f"auth-client:{client_id}", "address": f"auth-address:{address}"},
            )
        ).all()
    assert rows == []
