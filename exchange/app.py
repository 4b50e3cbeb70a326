"""The Starlette application factory (composition root).

Today it serves health and readiness probes and a description of itself, and runs the
expiry sweep in the background; the GraphQL API and the OAuth endpoints mount here as
they land (issues 3 and 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, resolve_database_url
from exchange.kit.settings import Settings

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 60


async def sweep_once(database: Database) -> tuple[int, int]:
    """Release expired holds and expire lots, one committed batch at a time."""
    released = expired = 0
    now = utc_now()
    while True:
        async with database.transaction() as conn:
            count = await ledger.release_holds_batch(conn, as_of=now)
        released += count
        if count == 0:
            break
    while True:
        async with database.transaction() as conn:
            result = await ledger.expire_batch(conn, as_of=now)
        expired += result.points
        if result.members == 0:
            break
    return released, expired


async def _sweep_forever(database: Database) -> None:
    while True:
        try:
            await sweep_once(database)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("expiry sweep failed")
        await asyncio.sleep(SWEEP_INTERVAL_SECONDS)


async def index(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "service": "coalition points exchange",
            "endpoints": {"health": "/healthz", "readiness": "/readyz"},
            "coming": ["/graphql", "/oauth/token", "/.well-known/jwks.json"],
        }
    )


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    try:
        async with database.transaction() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        log.exception("readiness check failed")
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings | None = None, *, sweep: bool = True) -> Starlette:
    settings = settings or Settings.from_environment()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database.connect(resolve_database_url(settings))
        app.state.database = database
        task = asyncio.create_task(_sweep_forever(database)) if sweep else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await database.dispose()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
