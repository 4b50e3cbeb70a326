"""PostgreSQL LISTEN/NOTIFY fan-out for one server process: one listening connection,
many in-process subscribers, each with its own bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import sqlalchemy

log = logging.getLogger(__name__)

QUEUE_SIZE = 16


class Notifications:
    def __init__(self, database_url: str) -> None:
        url = sqlalchemy.engine.make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._connection: Any = None
        self._channels: set[str] = set()
        self._subscribers: dict[tuple[str, str], set[asyncio.Queue[str]]] = defaultdict(set)
        self._lock = asyncio.Lock()

    async def _ensure(self, channel: str) -> None:
        async with self._lock:
            if self._connection is None:
                self._connection = await asyncpg.connect(self._dsn)
            if channel not in self._channels:
                await self._connection.add_listener(channel, self._deliver)
                self._channels.add(channel)

    def _deliver(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        for queue in self._subscribers.get((channel, payload), ()):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader gets the latest
                queue.put_nowait(payload)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, key: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue that receives ``key`` each time ``NOTIFY channel, key`` commits."""
        await self._ensure(channel)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._subscribers[(channel, key)].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[(channel, key)].discard(queue)
            if not self._subscribers[(channel, key)]:
                del self._subscribers[(channel, key)]

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
