"""The connection pool of a server process: sized by EXCHANGE_DB_POOL_*, its connections
reused from one transaction to the next, no overflow by default."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from exchange.app import create_app
from exchange.kit.db import Database, is_disconnect, is_transient, sql
from exchange.kit.errors import DatabaseUnavailable
from exchange.kit.settings import Pool, Settings
from exchange.kit.system import SYSTEM
from tests.conftest import TEST_SECRET_KEY


def test_the_pool_is_twenty_kept_connections_and_no_overflow_by_default(tmp_path: Path) -> None:
    default = Settings.from_environment({"EXCHANGE_HOME": str(tmp_path)})
    given = Settings.from_environment(
        {
            "EXCHANGE_HOME": str(tmp_path),
            "EXCHANGE_DB_POOL_SIZE": "8",
            "EXCHANGE_DB_POOL_OVERFLOW": "2",
            "EXCHANGE_DB_POOL_TIMEOUT_S": "3",
        }
    )

    assert default.pool == Pool(size=20, overflow=0, timeout_seconds=10)
    assert given.pool == Pool(size=8, overflow=2, timeout_seconds=3)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("EXCHANGE_DB_POOL_SIZE", "0"),
        ("EXCHANGE_DB_POOL_SIZE", "ten"),
        ("EXCHANGE_DB_POOL_OVERFLOW", "-1"),
        ("EXCHANGE_DB_POOL_TIMEOUT_S", "1.5"),
    ],
)
def test_a_pool_setting_that_is_not_a_count_is_refused_by_name(
    tmp_path: Path, name: str, bad: str
) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_environment({"EXCHANGE_HOME": str(tmp_path), name: bad})


async def _backends(database: Database, concurrent: int) -> set[int]:
    async def one() -> int:
        async with database.transaction(SYSTEM) as conn:
            pid = (await conn.execute(sql("SELECT pg_backend_pid()"))).scalar_one()
            await asyncio.sleep(0.05)  # held: the others need connections meanwhile
            return int(pid)

    return set(await asyncio.gather(*(one() for _ in range(concurrent))))


async def test_more_concurrent_work_than_the_pool_reuses_its_connections(
    database_url: str,
) -> None:
    database = Database(database_url, pool_size=3, max_overflow=0)
    try:
        first = await _backends(database, 9)
        second = await _backends(database, 9)
    finally:
        await database.dispose()

    # nine at once waited for three connections, and the next nine found the same three
    assert len(first) == 3
    assert second == first


async def test_the_server_builds_its_pool_from_the_settings(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=database_url,
        secret_key_from_env=TEST_SECRET_KEY,
        pool=Pool(size=4, overflow=1, timeout_seconds=7),
    )
    app = create_app(settings, sweep=False)
    async with app.router.lifespan_context(app):
        database = app.state.database
        size, overflow = database.pool_size, database.max_overflow
        timeout = database.pool_timeout_seconds

    assert (size, overflow, timeout) == (4, 1, 7)


def test_a_protocol_out_of_step_counts_as_a_lost_connection() -> None:
    # What asyncpg raises when a backend that was terminated is used before its goodbye
    # was read (seen in the outage test): a lost connection, so the unit of work runs
    # again on a fresh one and the pool replaces the rest, not an unexpected error.
    out_of_step = asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )

    assert is_disconnect(out_of_step)
    assert is_transient(DatabaseUnavailable("work"))
