"""A real HTTP receiver on loopback, an app that lets webhooks reach it
(EXCHANGE_WEBHOOK_ALLOW_PRIVATE), a deliverer with a clock the test moves, and helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exchange.app import create_app
from exchange.delivery import Deliverer
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.settings import Settings, Tunables
from exchange.kit.system import SYSTEM
from partners import clients, registry
from partners.identity import IdentityKeys
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, Caller, token_for
from tests.graphql.conftest import api as api  # the ordinary app, for these tests too
from tests.partners.test_registry import TERMS, unique_name

LOOSE = Tunables(webhook_allow_private=True)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Records every request by path; ``answers[path]`` is a list of statuses to give in
    turn (then 200), or "hang" to never answer."""

    port: int = 0
    got: list[Received] = field(default_factory=list)
    answers: dict[str, list[int | str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.got if r.path == path]

    async def handle(self, request: Request) -> Response:
        path = request.path_params["path"]
        self.got.append(Received(path, dict(request.headers), await request.body()))
        planned = self.answers.get(path) or []
        answer = planned.pop(0) if planned else 200
        if answer == "hang":
            await asyncio.sleep(3600)
        return Response(status_code=int(answer))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(port=_free_port())
    app = Starlette(routes=[Route("/{path}", found.handle, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=found.port, log_level="warning",
                            lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    yield found
    server.should_exit = True
    server.force_exit = True
    await asyncio.wait_for(task, 5)


@pytest.fixture(scope="module")
async def hooks_api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    home: Path = tmp_path_factory.mktemp("hooks")
    settings = Settings(
        home=home, database_url=database_url, secret_key_from_env=TEST_SECRET_KEY,
        public_url=BASE, tunables=LOOSE,
    )  # fmt: skip
    app = create_app(settings, sweep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


@dataclass
class Clock:
    now: datetime = field(default_factory=utc_now)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **by: float) -> None:
        self.now += timedelta(**by)


def deliverer(db: Database, clock: Callable[[], datetime] = utc_now, **kw: Any) -> Deliverer:
    return Deliverer(db, keys=IdentityKeys.from_secret(TEST_SECRET_KEY.encode()),
                     tunables=kw.pop("tunables", LOOSE), clock=clock, **kw)  # fmt: skip


CREATE = """mutation($url: String!, $types: [String!]!) {
  createWebhookEndpoint(input: {url: $url, eventTypes: $types}) {
    endpoint { id url eventTypes status } secret userErrors { code field message } } }"""


async def endpoint(partner: Caller, url: str, types: list[str] | None = None) -> tuple[str, str]:
    """A new endpoint of the partner: (its id, its secret)."""
    made = await partner.gql(CREATE, url=url, types=types or ["*"])
    payload = made["data"]["createWebhookEndpoint"]
    assert payload["userErrors"] == [], payload
    return payload["endpoint"]["id"], payload["secret"]


async def events_of(db: Database, member_id: int) -> list[str]:
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql("SELECT type FROM event_outbox WHERE member_id = :m ORDER BY id"),
            {"m": member_id},
        )
        return list(result.scalars())


SCOPES = (
    "points:earn points:redeem points:reverse members:link members:read transactions:read"
    " wallet:read wallet:transfer campaigns:read campaigns:write webhooks:write"
)


async def hook_partner(db: Database, api: httpx.AsyncClient, scopes: str = SCOPES) -> Caller:
    """A partner whose client may manage webhooks (and do everything else)."""
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
        created = await clients.create_client(conn, scopes=scopes.split(), partner_id=partner.id)
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret, partner.id)


async def link(partner: Caller, ref: str, email: str) -> None:
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email,
    )
    assert linked["data"]["linkMember"]["userErrors"] == [], linked


async def earn(partner: Caller, ref: str, points: int, key: str) -> dict[str, Any]:
    result = await partner.gql(
        "mutation($k: String!, $r: String!, $p: Int!) { earnPoints(input: {idempotencyKey: $k,"
        " memberRef: $r, points: $p}) { transaction { id } wallet { balance }"
        " userErrors { code } } }",
        k=key,
        r=ref,
        p=points,
    )
    payload: dict[str, Any] = result["data"]["earnPoints"]
    assert payload["userErrors"] == [], payload
    return payload


async def deliver_all(db: Database, **kw: Any) -> None:
    """Deliver everything due now, then let go of the HTTP client."""
    worker = deliverer(db, **kw)
    try:
        await worker.drain()
    finally:
        await worker.close()


async def hook_operator(db: Database, api: httpx.AsyncClient) -> Caller:
    """An operator client that may manage the operators' webhooks."""
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(conn, scopes=["webhooks:write", "partners:admin"])
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret)
