"""While PostgreSQL is down every route answers 503 with Retry-After in its own error
shape (never a 500, never a payload claiming an outcome), the app recovers by itself when
the server is back, and a token revoked around the outage stops working at once.

The app runs on a PostgreSQL server of its own (tests/outage.py), stopped and started as
an operator restarting it would."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from exchange import ledger
from exchange.app import create_app
from exchange.http.auth import REFRESH_SECONDS
from exchange.kit import listener as listener_module
from exchange.kit.db import Database, sql
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from partners import tokens as token_service
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, Caller, email, new_partner
from tests.outage import OutageServer, eventually, outage_server

EARN = """mutation($key: String!, $ref: String!) { earnPoints(input: {idempotencyKey: $key,
  memberRef: $ref, points: 100}) { transaction { id points } userErrors { code } } }"""
WALLET = "query($ref: String!) { member(memberRef: $ref) { wallet { balance } } }"


@dataclass
class Outage:
    server: OutageServer
    db: Database
    api: httpx.AsyncClient
    app: Any


@pytest.fixture(scope="module")
async def outage(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outage]:
    async with outage_server() as server:
        settings = Settings(
            home=tmp_path_factory.mktemp("outage-home"),
            database_url=server.url,
            secret_key_from_env=TEST_SECRET_KEY,
            public_url=BASE,
        )
        app = create_app(settings, sweep=False)
        db = Database(server.url, pool_size=2)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
                    yield Outage(server, db, api, app)
        finally:
            await db.dispose()


async def _linked_partner(outage: Outage) -> tuple[Caller, str]:
    await outage.db.dispose()  # its connections may have died with an earlier outage
    partner = await new_partner(outage.db, outage.api)
    ref = f"o-{secrets.token_hex(4)}"
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    assert linked["data"]["linkMember"]["userErrors"] == []
    return partner, ref


def _unavailable(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    body: dict[str, Any] = response.json()
    return body


async def _graphql(caller: Caller, query: str, **variables: Any) -> httpx.Response:
    return await caller.api.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {caller.token}"},
    )


async def _ready(api: httpx.AsyncClient) -> bool:
    return (await api.get("/readyz")).status_code == 200


async def _verified(outage: Outage) -> None:
    await outage.db.dispose()  # its connections died with the server
    async with outage.db.transaction(SYSTEM) as conn:
        report = await ledger.verify(conn)
    assert [c.name for c in report.checks if not c.ok] == []


async def test_every_route_answers_503_while_the_database_is_down_then_recovers(
    outage: Outage,
) -> None:
    partner, ref = await _linked_partner(outage)
    api, key = outage.api, f"earn-{secrets.token_hex(4)}"

    await outage.server.stop()
    try:
        query = _unavailable(await _graphql(partner, WALLET, ref=ref))
        mutation = _unavailable(await _graphql(partner, EARN, key=key, ref=ref))
        strict = await api.post(
            "/graphql",
            json={"query": WALLET, "variables": {"ref": ref}},
            headers={
                "Authorization": f"Bearer {partner.token}",
                "Accept": "application/graphql-response+json",
            },
        )
        token = _unavailable(
            await api.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(partner.client_id, partner.client_secret),
            )
        )
        credentials = (partner.client_id, partner.client_secret)
        bearer = {"Authorization": f"Bearer {partner.token}"}
        others = [
            await api.post("/oauth/introspect", data={"token": "x"}, auth=credentials),
            await api.post("/oauth/revoke", data={"token": "x"}, auth=credentials),
            await api.get("/.well-known/jwks.json"),
            await api.get("/api/whoami", headers=bearer),
        ]
        ready = _unavailable(await api.get("/readyz"))
        alive = await api.get("/healthz")
    finally:
        await outage.server.start()

    for body in (query, mutation, _unavailable(strict)):
        assert "data" not in body
        assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert strict.headers["content-type"].startswith("application/graphql-response+json")
    assert token["error"] == "temporarily_unavailable"
    assert [_unavailable(response)["error"] for response in others[:3]] == [
        "temporarily_unavailable"
    ] * 3
    assert _unavailable(others[3])["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert ready == {"status": "unavailable"}
    assert alive.status_code == 200  # the process itself is alive: no restart needed

    await eventually(lambda: _ready(api))
    earned = (await partner.gql(EARN, key=key, ref=ref))["data"]["earnPoints"]
    again = (await partner.gql(EARN, key=key, ref=ref))["data"]["earnPoints"]
    wallet = (await partner.gql(WALLET, ref=ref))["data"]["member"]["wallet"]
    assert earned["userErrors"] == []
    assert again["transaction"] == earned["transaction"]  # the refused attempt wrote nothing
    assert wallet["balance"] == "100"
    await _verified(outage)


async def test_a_token_revoked_around_a_restart_stops_working_at_once(
    outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner, ref = await _linked_partner(outage)
    other, _ = await _linked_partner(outage)
    listener = outage.app.state.listener
    assert (await _graphql(partner, WALLET, ref=ref)).status_code == 200
    # The listener waits 8 s before its first reconnection: long enough to act meanwhile,
    # even on a loaded machine.
    monkeypatch.setattr(listener_module, "FIRST_RETRY_SECONDS", 8.0)

    await outage.server.stop()
    await outage.server.start()
    await eventually(lambda: _ready(outage.api))  # the pool has let go of its dead connections
    answered = await _graphql(other, "{ viewer { kind } }")  # reloads the snapshot
    # Another process revokes the token while this one's listener is still down: the
    # NOTIFY is lost to this one.
    await _revoke_elsewhere(outage, partner.token)
    listening_then = listener.connected
    refused = await _graphql(partner, WALLET, ref=ref)

    assert answered.status_code == 200
    assert listening_then is False
    assert refused.status_code == 401
    assert "revoked" in refused.headers["www-authenticate"]

    await eventually(lambda: _connected(listener))
    # Back: a revocation elsewhere reaches this process by NOTIFY, well inside the
    # snapshot's 5-second refresh.
    assert (await _graphql(other, "{ viewer { kind } }")).status_code == 200
    await _revoke_elsewhere(outage, other.token)
    waited = await eventually(lambda: _refused(other), seconds=10)
    assert waited < REFRESH_SECONDS - 1  # by NOTIFY, not by the periodic reload


async def test_a_revocation_missed_while_the_listener_was_down_counts_once_it_is_back(
    outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner, ref = await _linked_partner(outage)
    listener = outage.app.state.listener
    monkeypatch.setattr(listener_module, "FIRST_RETRY_SECONDS", 6.0)

    await outage.server.stop()
    await outage.server.start()
    await eventually(lambda: _ready(outage.api))  # the pool has let go of its dead connections
    assert (await _graphql(partner, WALLET, ref=ref)).status_code == 200  # a fresh snapshot
    await _revoke_elsewhere(outage, partner.token)  # its NOTIFY is lost to this process
    await eventually(lambda: _connected(listener))  # no request meanwhile
    refused = await _graphql(partner, WALLET, ref=ref)

    assert refused.status_code == 401


async def test_a_field_that_meets_the_outage_fails_the_whole_document_with_503(
    outage: Outage,
) -> None:
    partner, ref = await _linked_partner(outage)
    key = f"earn-{secrets.token_hex(4)}"
    assert (await _graphql(partner, WALLET, ref=ref)).status_code == 200  # a fresh snapshot

    # The database refuses new connections and the app's pooled ones die; the listener's
    # stays, so the token is still checked without the database and the request reaches
    # its resolvers.
    await outage.server.execute(
        "ALTER DATABASE exchange ALLOW_CONNECTIONS false", database="postgres"
    )
    try:
        await outage.server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'exchange'",
            database="postgres",
        )
        query = await _graphql(partner, WALLET, ref=ref)
        mutation = await _graphql(partner, EARN, key=key, ref=ref)
    finally:
        await outage.server.execute(
            "ALTER DATABASE exchange ALLOW_CONNECTIONS true", database="postgres"
        )

    for response in (query, mutation):
        body = _unavailable(response)
        assert "data" not in body  # no payload, no userErrors: nothing is claimed
        assert body["errors"] == [
            {
                "message": "the database is unavailable; retry shortly",
                "extensions": {"code": "SERVICE_UNAVAILABLE"},
            }
        ]
    earned = (await partner.gql(EARN, key=key, ref=ref))["data"]["earnPoints"]
    assert earned["userErrors"] == []
    await _verified(outage)


async def test_a_unit_of_work_whose_connection_died_runs_again_on_a_fresh_one(
    outage: Outage,
) -> None:
    partner, ref = await _linked_partner(outage)
    assert (await _graphql(partner, WALLET, ref=ref)).status_code == 200

    # Every pooled connection of the app dies; its listener (and the snapshot) do not.
    await outage.server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'exchange' AND pid <> pg_backend_pid()"
    )
    response = await _graphql(partner, WALLET, ref=ref)

    assert response.status_code == 200, response.text
    assert "errors" not in response.json()


async def _revoke_elsewhere(outage: Outage, token: str) -> None:
    """What another server process does for /oauth/revoke: the denylist row and NOTIFY."""
    claims = _claims(token)
    await outage.db.dispose()  # its connections died with the server
    async with outage.db.transaction(SYSTEM) as conn:
        await token_service.revoke(
            conn,
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
        assert (await conn.execute(sql("SELECT count(*) FROM revoked_token"))).scalar()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


async def _connected(listener: Any) -> bool:
    return bool(listener.connected)


async def _refused(caller: Caller) -> bool:
    return (await _graphql(caller, "{ viewer { kind } }")).status_code == 401


async def test_a_bulk_earn_while_the_database_is_down_is_a_503_and_moves_nothing(
    outage: Outage,
) -> None:
    partner, ref = await _linked_partner(outage)
    line = json.dumps({"idempotencyKey": f"bulk-{secrets.token_hex(4)}", "memberRef": ref,
                       "points": 25}).encode() + b"\n"  # fmt: skip
    headers = {"Authorization": f"Bearer {partner.token}", "Content-Type": "application/x-ndjson"}

    await outage.server.stop()
    try:
        refused = _unavailable(await outage.api.post("/bulk/earn", content=line, headers=headers))
    finally:
        await outage.server.start()

    assert refused["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    await eventually(lambda: _ready(outage.api))
    written = await outage.api.post("/bulk/earn", content=line, headers=headers)
    assert json.loads(written.text)["replayed"] is False  # the refused attempt wrote nothing
    wallet = (await partner.gql(WALLET, ref=ref))["data"]["member"]["wallet"]
    assert wallet["balance"] == "25"
    await _verified(outage)
