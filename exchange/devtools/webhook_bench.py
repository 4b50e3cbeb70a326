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
import socket
import time
from dataclasses import dataclass, replace
from decimal import Decimal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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


@dataclass
class _Counter:
    received: int = 0
    ids: set[str] | None = None


async def _receiver(counter: _Counter) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    async def handle(request: Request) -> Response:
        await request.body()
        counter.received += 1
        if counter.ids is not None:
            counter.ids.add(request.headers.get("webhook-id", ""))
        return Response(status_code=204)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    app = Starlette(routes=[Route("/hook", handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    return server, task, port


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
    counter = _Counter(ids=set())
    server, task, port = await _receiver(counter)
    keys = IdentityKeys.from_secret(secret)
    try:
        await _book(database, url=f"http://127.0.0.1:{port}/hook", events=events, keys=keys)
        worker = delivery.Deliverer(
            database, keys=keys, tunables=replace(tunables, webhook_allow_private=True)
        )
        started = time.monotonic()
        try:
            while counter.received < events and time.monotonic() - started < 600:
                await worker.pause(await worker.round())
            await worker.settle()
        finally:
            await worker.close()
        seconds = time.monotonic() - started
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    return {
        "events": events,
        "received": counter.received,
        "distinct": len(counter.ids or ()),
        "seconds": round(seconds, 2),
        "events_per_s": round(counter.received / seconds, 1) if seconds else 0.0,
    }
