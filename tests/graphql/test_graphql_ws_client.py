"""Live wallet updates with the standard JavaScript client: ``graphql-ws`` under Node (the
client a partner's wallet app uses), against a real server on a loopback port. The
member's token comes by token exchange; the partner earns for the member over HTTP; the
Node client must receive the update with the new balance. graphql-ws reads text frames
only: a server that answers in binary frames fails it before ``connection_ack``."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from partners import clients, registry
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import email, token_for
from tests.partners.test_registry import TERMS, unique_name

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
#: Every wait of this test is bounded by this many seconds.
PATIENCE_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
async def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """``exchange serve`` (uvicorn) on a free loopback port."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(tmp_path_factory.mktemp("graphql-ws")),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
        "EXCHANGE_PUBLIC_URL": base,
    }
    process = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command; returns at once)
        [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _gql(http: httpx.AsyncClient, token: str, query: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), timeout=PATIENCE_SECONDS)
    assert raw, "the Node client exited without a word"
    event: dict[str, Any] = json.loads(raw)
    return event


async def _watching(db: Database, member_id: int) -> None:
    """Until the subscription has leased its wallet watch (it listens from then on)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        async with db.transaction(SYSTEM) as conn:
            watched = (
                await conn.execute(
                    sql("SELECT count(*) FROM wallet_watch WHERE member_id = :member"),
                    {"member": member_id},
                )
            ).scalar()
        if watched:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the subscription never started watching the wallet")


async def test_the_graphql_ws_client_receives_the_new_balance_when_the_partner_earns(
    db: Database, server: str
) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for the graphql-ws client"
    assert (SCRIPTS / "node_modules" / "graphql-ws").is_dir(), (
        "run scripts/test (it installs graphql-ws and ws)"
    )
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
        created = await clients.create_client(
            conn, scopes=["members:link", "members:read", "points:earn"], partner_id=partner.id
        )
    ref = f"ws-{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=server) as http:
        partner_token = await token_for(http, created.client_id, str(created.client_secret))
        linked = await _gql(
            http,
            partner_token,
            f'mutation {{ linkMember(input: {{memberRef: "{ref}", email: "{email()}"}})'
            " { member { id } userErrors { code } } }",
        )
        assert linked["data"]["linkMember"]["userErrors"] == []
        exchanged = await http.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": ref,
                "subject_token_type": MEMBER_REF_TOKEN_TYPE,
                "scope": "wallet:read",
            },
            auth=(created.client_id, str(created.client_secret)),
        )
        assert exchanged.status_code == 200, exchanged.text
        member_token = exchanged.json()["access_token"]
        whoami = await http.get("/api/whoami", headers={"Authorization": f"Bearer {member_token}"})
        member_id = whoami.json()["memberId"]

        client = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPTS / "wallet-updates.mjs"),
            env={
                **os.environ,
                "WS_URL": server.replace("http", "ws", 1) + "/graphql",
                "MEMBER_TOKEN": member_token,
                "TIMEOUT_MS": str(int(PATIENCE_SECONDS * 1000)),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert await _line(client) == {"event": "connected"}
            await _watching(db, member_id)
            earned = await _gql(
                http,
                partner_token,
                f'mutation {{ earnPoints(input: {{idempotencyKey: "{ref}-1", memberRef: "{ref}",'
                " points: 75}) { wallet { balance } userErrors { code } } }",
            )
            update = await _line(client)
            exit_code = await asyncio.wait_for(client.wait(), timeout=PATIENCE_SECONDS)
        finally:
            if client.returncode is None:
                client.kill()
                await client.wait()

    assert earned["data"]["earnPoints"] == {"wallet": {"balance": "75"}, "userErrors": []}
    assert update == {
        "event": "next",
        "data": {"walletUpdated": {"balance": "75", "available": "75", "held": "0"}},
        "errors": None,
    }
    assert exit_code == 0
