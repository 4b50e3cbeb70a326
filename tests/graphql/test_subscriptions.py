"""walletUpdated over graphql-transport-ws, against a real server process: the token goes
in connection_init; a change committed by another process (here: the test's own
connection) reaches the subscriber through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from partners import clients, identity, registry
from partners.identity import IdentityKeys
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import email
from tests.partners.test_registry import TERMS, unique_name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
async def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(tmp_path_factory.mktemp("ws")),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
        "EXCHANGE_PUBLIC_URL": base,
    }
    process = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command)
        [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(300):
            try:
                if (await http.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=30)


async def _member_token(db: Database, base: str) -> tuple[str, int, int]:
    """A partner with a linked member; the member's token by token exchange."""
    ref = f"m-{secrets.token_hex(4)}"
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
        created = await clients.create_client(
            conn, scopes=["members:read", "points:earn"], partner_id=partner.id
        )
        linked = await identity.link_member(
            conn,
            keys=IdentityKeys.from_secret(TEST_SECRET_KEY.encode()),
            partner_id=partner.id,
            member_ref=ref,
            email=email(),
            now=utc_now(),
        )
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": ref,
                "subject_token_type": MEMBER_REF_TOKEN_TYPE,
            },
            auth=(created.client_id, str(created.client_secret)),
        )
    return response.json()["access_token"], partner.id, linked.member_id


async def _receive(socket_: websockets.ClientConnection) -> dict[str, object]:
    message: dict[str, object] = json.loads(await asyncio.wait_for(socket_.recv(), timeout=10))
    return message


async def test_a_member_hears_about_every_change_to_its_wallet(db: Database, server: str) -> None:
    token, partner_id, member_id = await _member_token(db, server)
    url = server.replace("http", "ws") + "/graphql"

    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert (await _receive(ws))["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": "subscription { walletUpdated { balance available held } }"
                    },
                }
            )
        )
        await asyncio.sleep(0.5)  # the subscription registers its watch
        async with db.transaction(SYSTEM) as conn:
            await ledger.earn(
                conn,
                client_id="ws-test",
                partner_id=partner_id,
                request=ledger.EarnRequest(
                    idempotency_key=secrets.token_hex(6), member_id=member_id, points=42
                ),
                now=utc_now(),
            )
        update = await _receive(ws)

    assert update["type"] == "next"
    assert update["payload"]["data"] == {  # type: ignore[index]
        "walletUpdated": {"balance": "42", "available": "42", "held": "0"}
    }


async def test_a_websocket_without_a_valid_token_is_closed(server: str) -> None:
    url = server.replace("http", "ws") + "/graphql"

    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer nonsense"}})
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _receive(ws)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_partner_token_can_not_subscribe_to_a_wallet(db: Database, server: str) -> None:
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
        created = await clients.create_client(conn, scopes=["members:read"], partner_id=partner.id)
    async with httpx.AsyncClient(base_url=server) as http:
        token = (
            await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(created.client_id, str(created.client_secret)),
            )
        ).json()["access_token"]
    url = server.replace("http", "ws") + "/graphql"

    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        await _receive(ws)
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { walletUpdated { balance } }"},
                }
            )
        )
        reply = await _receive(ws)

    assert reply["type"] in ("error", "next")
    assert "FORBIDDEN" in json.dumps(reply)
