"""One PostgreSQL LISTEN connection per server process, which keeps itself alive.

The connection is opened by a supervisor task and opened again whenever it is lost (a
database restart, a terminated backend, a network cut found by a periodic probe), with
exponential backoff and jitter. Channels registered with :meth:`Listener.listen` are
listened to on every connection it opens. Whoever relies on notifications must know
when they may have missed some: :meth:`Listener.on_state` callbacks hear ``False`` when
the connection is lost and ``True`` once a new one listens on every channel (anything
committed before that is for them to re-read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from exchange.kit.db import libpq_url

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.1
LAST_RETRY_SECONDS = 5.0
#: How often an idle connection is checked: a cut that no packet reports is found then.
PROBE_EVERY_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 3.0
CONNECT_TIMEOUT_SECONDS = 5.0

Notify = Callable[[str], None]
StateChange = Callable[[bool], Awaitable[None]]


class Listener:
    def __init__(self, database_url: str) -> None:
        self._dsn = libpq_url(database_url)
        self._callbacks: dict[str, list[Notify]] = defaultdict(list)
        self._state_callbacks: list[StateChange] = []
        self._connection: Any = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False

    @property
    def connected(self) -> bool:
        """Listening on every channel right now (False also before the first connection)."""
        return self._connected.is_set()

    def on_state(self, callback: StateChange) -> None:
        self._state_callbacks.append(callback)

    async def listen(self, channel: str, callback: Notify) -> None:
        """Call ``callback(payload)`` for each ``NOTIFY channel`` from now on."""
        async with self._lock:
            first = channel not in self._callbacks
            self._callbacks[channel].append(callback)
            if first and self._connection is not None:
                try:
                    await self._connection.add_listener(channel, self._dispatch)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    # The connection is going; the next one listens on every channel.
                    log.info("LISTEN %s failed; it is renewed with the connection", channel)

    async def start(self, *, wait_seconds: float = CONNECT_TIMEOUT_SECONDS) -> None:
        """Start the supervisor and wait a little for the first connection (the process
        serves without one: its users treat that as missed notifications)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="exchange-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=wait_seconds)

    async def close(self) -> None:
        # Closed on purpose (shutdown): nothing is lost, so the state callbacks are not
        # told (they would renew the pool or drop caches in tasks nobody waits for).
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _dispatch(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        for callback in list(self._callbacks.get(channel, ())):
            try:
                callback(payload)
            except Exception:  # one bad subscriber must not stop the others
                log.exception("a notification callback on %s failed", channel)

    async def _supervise(self) -> None:
        retry_in = FIRST_RETRY_SECONDS
        failures = 0
        while True:
            try:
                await self._serve_one_connection()
                retry_in, failures = FIRST_RETRY_SECONDS, 0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                if failures == 1:  # once per outage, not once per attempt
                    name = type(error).__name__
                    log.warning("LISTEN connection unavailable (%s); retrying", name)
            jitter = 1 + random.random() / 5  # noqa: S311 (spreads retries; not a secret)
            await asyncio.sleep(retry_in * jitter)
            retry_in = min(retry_in * 2, LAST_RETRY_SECONDS)

    async def _serve_one_connection(self) -> None:
        """Connect, listen on every channel, and return once the connection is lost."""
        connection = await asyncpg.connect(
            self._dsn,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": "exchange-listener"},
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            async with self._lock:
                for channel in self._callbacks:
                    await connection.add_listener(channel, self._dispatch)
                self._connection = connection
            await self._changed(True)
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), timeout=PROBE_EVERY_SECONDS)
                except TimeoutError:
                    await connection.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_SECONDS)
        finally:
            self._connection = None
            await self._changed(False)
            connection.terminate()

    async def _changed(self, connected: bool) -> None:
        if connected == self._connected.is_set():
            return
        if connected:
            self._connected.set()
        else:
            self._connected.clear()
        if self._closing:
            log.info("LISTEN connection closed")
            return
        log.info("LISTEN connection %s", "up" if connected else "lost")
        for callback in self._state_callbacks:
            try:
                await callback(connected)
            except Exception:
                log.exception("a listener state callback failed")
