"""`exchange bench webhooks`: delivery throughput to a local receiver.

It books ``events`` earns (each an outbox event, as in production) for MEMBERS members of
one bench partner
whose endpoint, subscribed to every type, is a receiver on loopback that answers 200 at
once; then one delivery worker (as `serve` runs it) delivers them all, and the command
reports events per second, with the receiver's count as the check that each arrived
once. Loopback is a private address, so the worker runs with private addresses allowed,
as development does."""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal

from exchange import delivery, ledger
from exchange.events import endpoints
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.settings import Tunables
from exchange.kit.system import SYSTEM
from partners import registry
from partners.identity import IdentityKeys
from partners.models import ContractTerms

BATCH = 500
#: Events are in order per endpoint and member: spread over members, as real traffic is.
MEMBERS = 500


async def _serve(port: int, counts: dict[str, int]) -> asyncio.Server:
    """A receiver that answers every POST with 204 over keep-alive connections and
    counts them (GET answers the count): as little work per request as a receiver can do,
    so the figure is the deliverer's."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET"):
                    body = str(counts["received"]).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(body), body))  # fmt: skip
                else:
                    counts["received"] += 1
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            writer.close()

    return await asyncio.start_server(connection, "127.0.0.1", port)


def receive(port: int) -> None:
    """Run the receiver in its own process (python -m exchange.devtools.webhook_bench PORT)."""

    async def main() -> None:
        server = await _serve(port, {"received": 0})
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def _received(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /count HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    count = int(await reader.readexactly(length))
    writer.close()
    return count


async def _book(database: Database, *, url: str, events: int, keys: IdentityKeys) -> None:
    now = utc_now()
    price = Decimal("0.01")
    terms = ContractTerms(currency="USD", issue_price=price, redemption_price=price)
    async with database.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=f"webhook-bench-{time.time_ns()}",
                                             terms=terms, now=now)  # fmt: skip
        await endpoints.create(conn, owner=partner.id, url=url, types=["*"], keys=keys,
                               allow_private=True, created_by="bench", now=now)  # fmt: skip
        members = [await ledger.open_member(conn) for _ in range(MEMBERS)]
    for start in range(0, events, BATCH):
        requests = [
            ledger.EarnRequest(f"wh-bench-{partner.id}-{n}", members[n % MEMBERS], 1)
            for n in range(start, min(events, start + BATCH))
        ]
        async with database.transaction(SYSTEM) as conn:
            await ledger.earn_many(conn, client_id="webhook-bench", partner_id=partner.id,
                                   requests=requests, now=now)  # fmt: skip


async def run(
    database: Database, *, events: int, secret: bytes, tunables: Tunables
) -> dict[str, float]:
    """Events per second, and the CPU the deliverer (this process, while it delivers)
    and the receiver (its process, the whole run) spent per event; PostgreSQL's is not
    counted (it may be another machine's)."""
    port = _free_port()
    children_before = _children_cpu()
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exchange.devtools.webhook_bench", str(port)
    )
    keys = IdentityKeys.from_secret(secret)
    try:
        await _wait_for(port)
        await _book(database, url=f"http://127.0.0.1:{port}/hook", events=events, keys=keys)
        worker = delivery.Deliverer(
            database, keys=keys, tunables=replace(tunables, webhook_allow_private=True)
        )
        started, cpu = time.monotonic(), time.process_time()
        try:
            await worker.drain(rounds=1_000_000)
        finally:
            await worker.close()
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        received = await _received(port)
    finally:
        receiver.terminate()
        await receiver.wait()
    per_event = 1000 / max(received, 1)
    return {
        "events": events,
        "received": received,
        "seconds": round(seconds, 2),
        "events_per_s": round(received / seconds, 1) if seconds else 0.0,
        "deliverer_cpu_ms_per_event": round(cpu * per_event, 3),
        "receiver_cpu_ms_per_event": round((_children_cpu() - children_before) * per_event, 3),
    }


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the receiver, once
    waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


@asynccontextmanager
async def receiving(database: Database, *, secret: bytes) -> AsyncIterator[dict[str, int]]:
    """For `exchange bench --webhook`: while the load runs, an operator endpoint subscribed
    to every event type (so every event of every partner is delivered) whose receiver is
    a process on loopback; deleted afterwards. Yields a dict whose "received" is filled
    with what the receiver counted once the block ends. The server delivering must allow
    private addresses (EXCHANGE_WEBHOOK_ALLOW_PRIVATE=true), or nothing arrives."""
    port = _free_port()
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exchange.devtools.webhook_bench", str(port)
    )
    counts = {"received": 0}
    try:
        await _wait_for(port)
        async with database.transaction(SYSTEM) as conn:
            made = await endpoints.create(
                conn, owner=None, url=f"http://127.0.0.1:{port}/hook", types=["*"],
                keys=IdentityKeys.from_secret(secret), allow_private=True,
                created_by="bench", now=utc_now(),
            )  # fmt: skip
        try:
            yield counts
        finally:
            counts["received"] = await _received(port)
            async with database.transaction(SYSTEM) as conn:
                await endpoints.delete(conn, endpoint_id=made.endpoint.id, now=utc_now())
    finally:
        receiver.terminate()
        await receiver.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_for(port: int) -> None:
    for _ in range(200):
        try:
            await _received(port)
            return
        except OSError:
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    receive(int(sys.argv[1]))
