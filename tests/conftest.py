"""Shared fixtures: one real PostgreSQL per test session (the embedded pgserver, or
TEST_DATABASE_URL), a fresh database migrated with Alembic, and small factories.

Tests share the database and never truncate it (the ledger refuses deletes): each test
makes its own partners and members, and every test ends by checking every ledger
invariant over the whole database.
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import settings
from sqlalchemy.ext.asyncio import create_async_engine

from exchange import ledger
from exchange.kit.db import Database
from exchange.kit.embedded import start_embedded, to_async_url
from exchange.kit.system import SYSTEM
from exchange.ledger.models import EntryResult, PartnerPolicy
from exchange.migrations import upgrade

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

# CI runs a fixed, reproducible set of examples; a developer's run explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: Every process sharing the test database must share the pepper its keys are sealed under.
TEST_SECRET_KEY = "test-secret-key-" + "x" * 32


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server's maintenance database."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield to_async_url(given)
        return
    with tempfile.TemporaryDirectory(prefix="exchange-test-") as home:
        yield start_embedded(Path(home), database="postgres")


def _with_database(url: str, name: str) -> str:
    return sqlalchemy.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    name = f"exchange_test_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    await upgrade(url)
    yield url
    await _verify_whole_suite(url)
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.dispose()


async def _verify_whole_suite(url: str) -> None:
    """`exchange verify` over everything the whole suite left behind."""
    database = Database(url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            report = await ledger.verify(conn)
    finally:
        await database.dispose()
    broken = [(c.name, c.examples) for c in report.checks if not c.ok]
    assert not broken, f"ledger invariants broken after the suite: {broken}"


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=20)
    yield database
    await database.dispose()


@pytest.fixture(autouse=True)
async def _ledger_invariants_hold_after_each_test(
    request: pytest.FixtureRequest,
) -> AsyncIterator[None]:
    yield
    if "db" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("db")
    async with database.transaction(SYSTEM) as conn:
        report = await ledger.verify(conn)
    broken = [(c.name, c.examples) for c in report.checks if not c.ok]
    assert not broken, f"ledger invariants broken after the test: {broken}"


_ids = itertools.count(1)


class Factory:
    """Makes partners and members for one test, through the ledger's own use cases."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._keys = itertools.count(1)
        self.client_id = f"client-{secrets.token_hex(4)}"

    def key(self) -> str:
        return f"key-{next(self._keys)}-{secrets.token_hex(3)}"

    async def partner(self, policy: PartnerPolicy | None = None) -> int:
        partner_id = next(_ids) + 10_000 * os.getpid() % 1_000_000_000
        async with self.db.transaction(SYSTEM) as conn:
            await ledger.open_partner(conn, partner_id=partner_id, policy=policy)
        return partner_id

    async def member(self) -> int:
        async with self.db.transaction(SYSTEM) as conn:
            return await ledger.open_member(conn)

    async def earn(self, partner_id: int, member_id: int, points: int, **kw: Any) -> EntryResult:
        now = kw.pop("now", NOW)
        key = str(kw.pop("key", self.key()))
        async with self.db.transaction(SYSTEM) as conn:
            return await ledger.earn(
                conn,
                client_id=self.client_id,
                partner_id=partner_id,
                request=ledger.EarnRequest(key, member_id, points, **kw),
                now=now,
            )

    async def redeem(self, partner_id: int, member_id: int, points: int, **kw: Any) -> EntryResult:
        now = kw.pop("now", NOW)
        key = str(kw.pop("key", self.key()))
        async with self.db.transaction(SYSTEM) as conn:
            return await ledger.redeem(
                conn,
                client_id=self.client_id,
                partner_id=partner_id,
                request=ledger.RedeemRequest(key, member_id, points, **kw),
                now=now,
            )

    async def wallet(self, member_id: int) -> ledger.Wallet:
        async with self.db.transaction(SYSTEM) as conn:
            return await ledger.wallet(conn, member_id=member_id)


@pytest.fixture
def make(db: Database) -> Factory:
    return Factory(db)
