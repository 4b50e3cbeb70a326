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
from starlette.routing import Route, WebSocketRoute

from exchange import graphql_http, ledger, oauth_routes
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, resolve_database_url
from exchange.kit.notifications import Notifications
from exchange.kit.settings import Settings
from graphql_schema.coalescing import earn_coalescer
from partners import registry
from partners.runtime import AuthRuntime

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 60


async def sweep_once(database: Database) -> tuple[int, int]:
    """Release expired holds and expire lots, one committed batch at a time."""
    released = expired = 0
    now = utc_now()
    async with database.transaction() as conn:
        await registry.sync_policies(conn, now=now)
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
            "endpoints": {
                "health": "/healthz",
                "readiness": "/readyz",
                "token": "/oauth/token",
                "jwks": "/.well-known/jwks.json",
                "metadata": "/.well-known/oauth-authorization-server",
                "whoami": "/api/whoami",
            },
            "graphql": "/graphql",
        }
    )


async def whoami(request: Request) -> JSONResponse:
    """The caller as the server sees it; the GraphQL `viewer` replaces this (issue 4)."""
    principal = await oauth_routes.authenticate(request)
    if isinstance(principal, JSONResponse):
        return principal
    return JSONResponse(
        {
            "kind": str(principal.kind),
            "clientId": principal.client_id,
            "partnerId": principal.partner_id,
            "memberId": principal.member_id,
            "scopes": sorted(principal.scopes),
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
        app.state.identity_keys = graphql_http.identity_keys(settings.secret_key())
        app.state.notifications = Notifications(database.engine.url.render_as_string(False))
        app.state.auth = AuthRuntime(
            database, secret=settings.secret_key(), public_url=settings.public_url
        )
        await app.state.auth.start()
        app.state.earns = earn_coalescer(database, utc_now) if settings.micro_batching else None
        task = asyncio.create_task(_sweep_forever(database)) if sweep else None
        try:
            yield
        finally:
            if app.state.earns is not None:
                await app.state.earns.close()
            await app.state.auth.stop()
            await app.state.notifications.close()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await database.dispose()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *oauth_routes.routes,
        Route("/graphql", graphql_http.GraphQLEndpoint(), methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_http.GraphQLEndpoint()),
        Route("/api/whoami", whoami),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
