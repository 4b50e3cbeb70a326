"""Limits hold across server processes: two apps on one database (two workers, each with
its own lifespan and its own memory) together spend no more of a client's cost budget
than one would, and a request costs no database write."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from exchange.app import create_app
from exchange.kit.db import Database, sql
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from graphql_schema.cost import COST_LIMIT, MAXIMUM_AVAILABLE, RESTORE_RATE
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, Caller, new_partner

PAGE = "transactions(first: 100) { edges { node { id partner { id contract { version } } } } }"
COSTLY = "{ " + PAGE + " again: " + PAGE + " }"  # 804 points


@pytest.fixture(scope="module")
async def workers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two apps, as two uvicorn workers would run them."""
    clients = []
    async with contextlib.AsyncExitStack() as stack:
        for n in range(2):
            settings = Settings(
                home=tmp_path_factory.mktemp(f"worker{n}"),
                database_url=database_url,
                secret_key_from_env=TEST_SECRET_KEY,
                public_url=BASE,
            )
            app = create_app(settings, sweep=False)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
            clients.append(await stack.enter_async_context(client))
        yield clients


async def _ask(worker: httpx.AsyncClient, caller: Caller, query: str) -> dict[str, Any]:
    response = await worker.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {caller.token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_two_workers_together_spend_no_more_than_one_clients_budget(
    db: Database, workers: list[httpx.AsyncClient]
) -> None:
    caller = await new_partner(db, workers[0])
    spent = [0, 0]
    throttled = [False, False]

    started = time.monotonic()
    while not all(throttled):  # each worker alone would allow the whole budget again
        rounds = await asyncio.gather(*(_ask(workers[n % 2], caller, COSTLY) for n in range(8)))
        for n, result in enumerate(rounds):
            spent[n % 2] += result["extensions"]["cost"]["actualQueryCost"]
            if (result.get("errors") or [{}])[0].get("extensions", {}).get("code") == "THROTTLED":
                throttled[n % 2] = True
    elapsed = time.monotonic() - started

    # every point spent was leased from the one bucket: its capacity and its refill
    assert sum(spent) <= MAXIMUM_AVAILABLE + RESTORE_RATE * elapsed
    assert spent[0] > 0
    assert spent[1] > 0


async def test_cheap_requests_spend_a_lease_without_writing_the_bucket(
    db: Database, workers: list[httpx.AsyncClient]
) -> None:
    caller = await new_partner(db, workers[0])
    await _ask(workers[1], caller, "{ viewer { kind } }")  # leases a chunk
    before = await _bucket(db, caller.client_id)

    for _ in range(20):
        assert "errors" not in await _ask(workers[1], caller, "{ viewer { kind partner { id } } }")

    assert await _bucket(db, caller.client_id) == before


async def _bucket(db: Database, client_id: str) -> tuple[object, ...]:
    async with db.transaction(SYSTEM) as conn:
        row = (
            await conn.execute(
                sql("SELECT level, granted, updated_at FROM limit_bucket WHERE name = :name"),
                {"name": f"{COST_LIMIT.name}:{client_id}"},
            )
        ).one()
    return tuple(row)
