"""The Starlette application factory: the composition root.

It builds the process's parts once (the database, the use-case runner with its
micro-batching, the token verifier, the LISTEN fan-out), mounts the HTTP adapters
(``exchange.http``: GraphQL, OAuth, probes) behind the request ids of the log
(``exchange.http.request_ids``), CORS for the origins the settings name
(``exchange.http.cors``) and the body reader that holds every request body to its route's
limits (``exchange.http.body``), and runs the background work that has no caller (the
sweep: expiry, tier reviews, expiring-points notices, event retention and RFM
refreshes; the webhook deliverer) under the system scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from exchange import delivery, ledger
from exchange.http import bulk, graphql, oauth, throttle, unavailable
from exchange.http.auth import AuthRuntime
from exchange.http.body import BodyReader
from exchange.http.cors import cors
from exchange.http.request_ids import RequestIds
from exchange.http.throttle import FailedAuthentications
from exchange.insights import profiles
from exchange.kit.clock import Clock, utc_now
from exchange.kit.db import Database, resolve_database_url, sql
from exchange.kit.errors import DatabaseUnavailable
from exchange.kit.listener import Listener
from exchange.kit.notifications import Notifications
from exchange.kit.settings import Settings, Tunables
from exchange.kit.system import SYSTEM
from exchange.limits import Limit, SharedBuckets, forget_drained
from exchange.loyalty import tiers
from exchange.usecases import points as point_cases
from exchange.usecases.runner import Runner
from graphql_schema.cost import COST_LIMIT
from partners import registry
from partners.identity import IdentityKeys

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 60


async def sweep_once(database: Database, tunables: Tunables | None = None) -> tuple[int, int]:
    """Release expired holds, expire lots and review tiers, one committed batch at a time."""
    released = expired = 0
    now = utc_now()
    async with database.transaction(SYSTEM) as conn:
        await registry.sync_policies(conn, now=now)
    while True:
        async with database.transaction(SYSTEM) as conn:
            count = await ledger.release_holds_batch(conn, as_of=now)
        released += count
        if count == 0:
            break
    while True:
        async with database.transaction(SYSTEM) as conn:
            result = await ledger.expire_batch(conn, as_of=now)
        expired += result.points
        if result.members == 0:
            break
    await review_tiers(database, as_of=now, tunables=tunables or Tunables())
    await delivery.notices_and_retention(database, tunables=tunables or Tunables(), now=now)
    return released, expired


async def review_tiers(
    database: Database, *, as_of: datetime, tunables: Tunables
) -> tuple[int, int]:
    """Tier downgrades due at ``as_of`` (the last month end past its grace period), in
    committed batches; (members reviewed, members downgraded)."""
    reviewed = downgraded = last = 0
    while True:
        async with database.transaction(SYSTEM) as conn:
            batch = await tiers.review(conn, as_of=as_of, tunables=tunables, after_member=last)
        reviewed += batch.members
        downgraded += batch.downgraded
        last = batch.last_member
        if batch.members == 0:
            return reviewed, downgraded


async def refresh_insights(database: Database) -> tuple[int, int]:
    """Recompute RFM quintiles, set-based, in one transaction (system work)."""
    async with database.transaction(SYSTEM) as conn:
        return await profiles.refresh(conn, now=utc_now())


async def _sweep_forever(database: Database, tunables: Tunables, limits: list[Limit]) -> None:
    while True:
        try:
            await sweep_once(database, tunables)
            async with database.transaction(SYSTEM) as conn:
                every = timedelta(minutes=tunables.rfm_refresh_minutes)
                await profiles.refresh_if_due(conn, now=utc_now(), every=every)
            async with database.transaction(SYSTEM) as conn:
                for limit in limits:  # drained buckets are empty ones: forget them
                    await forget_drained(conn, limit)
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
                "bulkEarn": "/bulk/earn",
            },
            "graphql": "/graphql",
        }
    )


async def whoami(request: Request) -> JSONResponse:
    """The caller as the server sees it (the GraphQL ``viewer`` says the same)."""
    principal = await oauth.authenticate(request)
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
    """Ready when the database answers (503 with Retry-After otherwise)."""
    database: Database = request.app.state.database
    try:
        async with database.transaction(SYSTEM) as conn:
            await conn.execute(sql("SELECT 1"))
    except DatabaseUnavailable:
        raise
    except Exception:
        log.exception("readiness check failed")
        raise DatabaseUnavailable("work") from None
    return JSONResponse({"status": "ready"})


def _parts(app: Starlette, settings: Settings, database: Database, clock: Clock) -> None:
    """The process's parts, on ``app.state``: the use-case runner, the listener and what
    listens through it (notifications, the auth snapshot), the shared limits."""
    app.state.database = database
    app.state.runner = Runner(
        database,
        keys=IdentityKeys.from_secret(settings.secret_key()),
        micro_batching=settings.micro_batching,
        tunables=settings.tunables,
        clock=clock,
    )
    app.state.listener = listener = Listener(database.url)
    listener.on_state(_renew_pool_when_lost(database))
    app.state.notifications = Notifications(listener)
    app.state.cost_limits = SharedBuckets(database, COST_LIMIT)
    app.state.failed_authentications = FailedAuthentications(
        by_client=SharedBuckets(database, throttle.BY_CLIENT),
        by_address=SharedBuckets(database, throttle.BY_ADDRESS),
    )
    app.state.auth = AuthRuntime(
        database,
        listener=listener,
        secret=settings.secret_key(),
        public_url=settings.public_url,
        max_token_lifetime_seconds=settings.max_token_lifetime_seconds,
    )


def _renew_pool_when_lost(database: Database) -> Callable[[bool], Awaitable[None]]:
    """When the listening connection is lost the server has most likely gone (a restart):
    the pool's connections are replaced, in the background, rather than each failing a
    request once the server is back."""
    renewing: set[asyncio.Task[None]] = set()

    async def on_state(connected: bool) -> None:
        if not connected:
            task = asyncio.create_task(database.renew())
            renewing.add(task)
            task.add_done_callback(renewing.discard)

    return on_state


def create_app(
    settings: Settings | None = None, *, sweep: bool = True, clock: Clock = utc_now
) -> Starlette:
    """The application; ``clock`` is the time use cases run at (tests set their own)."""
    settings = settings or Settings.from_environment()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database(
            resolve_database_url(settings),
            pool_size=settings.pool.size,
            max_overflow=settings.pool.overflow,
            pool_timeout_seconds=settings.pool.timeout_seconds,
        )
        _parts(app, settings, database, clock)
        await app.state.auth.start()
        await app.state.listener.start()
        limits = [
            app.state.cost_limits.limit,
            *(buckets.limit for buckets in app.state.failed_authentications.limits),
            point_cases.FAILED_LOOKUPS,
        ]
        app.state.deliverer = delivery.Deliverer(
            database,
            keys=IdentityKeys.from_secret(settings.secret_key()),
            tunables=settings.tunables,
        )
        tasks: list[asyncio.Task[None]] = []
        if sweep:  # the background work of a server (tests build apps without it)
            tasks.append(asyncio.create_task(_sweep_forever(database, settings.tunables, limits)))
            if settings.serve_delivery:
                tasks.append(asyncio.create_task(app.state.deliverer.run_forever()))
        try:
            yield
        finally:
            await app.state.runner.close()
            await app.state.listener.close()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.deliverer.close()
            await database.dispose()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *oauth.routes,
        Route("/graphql", graphql.GraphQLEndpoint(settings.public_url), methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql.GraphQLEndpoint(settings.public_url)),
        Route("/api/whoami", whoami),
        Route("/bulk/earn", bulk.earn, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestIds), *cors(settings.cors_origins), Middleware(BodyReader)],
        exception_handlers={DatabaseUnavailable: unavailable.database_unavailable},
    )
