"""PostgreSQL LISTEN/NOTIFY fan-out for one server process: the process's one listening
connection (:class:`~exchange.kit.listener.Listener`, which reopens itself), many
in-process subscribers, each with its own bounded queue.

While that connection was down notifications may have been missed: when it is back,
every subscriber receives its own key once, so it reads afresh whatever it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

from exchange.kit.listener import Listener

log = logging.getLogger(__name__)

QUEUE_SIZE = 16


class Notifications:
    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._channels: set[str] = set()
        self._subscribers: dict[tuple[str, str], set[asyncio.Queue[str]]] = defaultdict(set)
        self._lock = asyncio.Lock()
        listener.on_state(self._on_listener)

    async def _ensure(self, channel: str) -> None:
        async with self._lock:
            if channel not in self._channels:
                self._channels.add(channel)
                await self._listener.listen(channel, lambda key: self._deliver(channel, key))

    def _deliver(self, channel: str, key: str) -> None:
        for queue in self._subscribers.get((channel, key), ()):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader gets the latest
                queue.put_nowait(key)

    async def _on_listener(self, connected: bool) -> None:
        if connected:  # back after a loss (or first up): whatever was missed, read again
            for channel, key in list(self._subscribers):
                self._deliver(channel, key)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, key: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue that receives ``key`` each time ``NOTIFY channel, key`` commits (and
        once more after the listening connection was lost and is back)."""
        await self._ensure(channel)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._subscribers[(channel, key)].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[(channel, key)].discard(queue)
            if not self._subscribers[(channel, key)]:
                del self._subscribers[(channel, key)]
