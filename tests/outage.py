"""A PostgreSQL server of its own that a test can stop and start again: the embedded
server (pgserver) in a temporary directory, migrated, so that an outage never touches
the session's shared database."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy

from exchange.kit.db import libpq_url
from exchange.kit.embedded import _server, start_embedded
from exchange.migrations import upgrade


class OutageServer:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.url = ""
        self.running = False
        self._server: Any = None

    async def start(self) -> str:
        """Start the server (the first time: make it and migrate its database)."""
        if self._server is None:
            self.url = await asyncio.to_thread(start_embedded, self.home)
            self._server = _server(self.home / "pgdata")
            await upgrade(self.url)
        else:
            await asyncio.to_thread(self._server.ensure_postgres_running)
        self.running = True
        return self.url

    async def stop(self) -> None:
        """Stop the server the way an operator restarting it does (fast shutdown: every
        session is terminated)."""
        from pgserver._commands import pg_ctl  # type: ignore[import-untyped]

        server = self._server
        await asyncio.to_thread(
            pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
        )
        self.running = False

    async def execute(self, statement: str, *arguments: object, database: str = "") -> None:
        """One statement on a fresh connection of its own (to ``database``, if given)."""
        url = libpq_url(self.url)
        if database:
            url = sqlalchemy.engine.make_url(url).set(database=database).render_as_string(False)
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(statement, *arguments)
        finally:
            await connection.close()


@asynccontextmanager
async def outage_server() -> AsyncIterator[OutageServer]:
    """A running server in a temporary directory of its own (not pytest's: a concurrent
    test run may prune those), stopped and removed at the end."""
    with tempfile.TemporaryDirectory(prefix="exchange-outage-") as home:
        server = OutageServer(Path(home))
        await server.start()
        try:
            yield server
        finally:
            if server.running:
                await server.stop()


async def eventually(check: Any, *, seconds: float = 15.0) -> float:
    """Wait until ``await check()`` is true; how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true after {seconds} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started
