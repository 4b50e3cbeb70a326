"""The process's LISTEN connection reopens itself: after a PostgreSQL restart and after its
backend is terminated, it listens again on every channel by itself, says when it lost
and regained the connection, and subscribers are told to read afresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from exchange.kit.listener import Listener
from exchange.kit.notifications import Notifications
from tests.outage import OutageServer, eventually, outage_server


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[OutageServer]:
    async with outage_server() as running:
        yield running


@pytest.fixture
async def listener(server: OutageServer) -> AsyncIterator[Listener]:
    started = Listener(server.url)
    await started.start()
    yield started
    await started.close()


async def _delivered(server: OutageServer, heard: list[str], payload: str) -> bool:
    await server.execute("SELECT pg_notify('test_channel', $1)", payload)
    await asyncio.sleep(0.05)
    return payload in heard


async def test_the_listener_listens_again_after_a_restart(
    server: OutageServer, listener: Listener
) -> None:
    heard: list[str] = []
    states: list[bool] = []
    await listener.listen("test_channel", heard.append)

    async def record(connected: bool) -> None:
        states.append(connected)

    listener.on_state(record)
    await eventually(lambda: _delivered(server, heard, "before"))

    await server.stop()
    await eventually(lambda: _false(listener.connected), seconds=5)
    await server.start()
    await eventually(lambda: _true(listener.connected))

    await eventually(lambda: _delivered(server, heard, "after"), seconds=5)
    assert states == [False, True]


async def test_a_listener_closed_on_purpose_reports_no_outage(
    server: OutageServer, listener: Listener
) -> None:
    """Shutdown closes the listener: its state callbacks are not told the connection was
    lost (the server's would renew the pool in a task the closing loop then cancels)."""
    states: list[bool] = []

    async def record(connected: bool) -> None:
        states.append(connected)

    await eventually(lambda: _true(listener.connected))
    listener.on_state(record)

    await listener.close()

    assert (states, listener.connected) == ([], False)


async def test_the_listener_comes_back_after_its_backend_is_terminated(
    server: OutageServer, listener: Listener
) -> None:
    heard: list[str] = []
    await listener.listen("test_channel", heard.append)

    await server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'exchange-listener'"
    )

    await eventually(lambda: _delivered(server, heard, "terminated"), seconds=10)
    assert listener.connected


async def test_subscribers_read_afresh_when_the_listener_is_back(
    server: OutageServer, listener: Listener
) -> None:
    notifications = Notifications(listener)

    async with notifications.subscribe("wallet_updated", "42") as queue:
        await server.stop()
        await eventually(lambda: _false(listener.connected), seconds=5)
        await server.start()

        # Nothing was notified: the wake-up says "whatever you watch may have changed".
        woken = await asyncio.wait_for(queue.get(), timeout=15)

    assert woken == "42"
    assert listener.connected


async def _true(value: bool) -> bool:
    return value


async def _false(value: bool) -> bool:
    return not value
