"""The graphql-http audit (GraphQL over HTTP spec conformance) against a real server
process with a real token: every check passes, with no warnings."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from partners import clients
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import token_for

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_graphql_http_audit_passes_every_check(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for the graphql-http audit"
    assert (SCRIPTS / "node_modules" / "graphql-http").is_dir(), (
        "run scripts/test (it installs the graphql-http audit package)"
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(tmp_path),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
        "EXCHANGE_PUBLIC_URL": base,
    }
    server = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command; Popen returns at once)
        [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(300):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            async with db.transaction(SYSTEM) as conn:
                created = await _partner_client(conn)
            token = await token_for(http, created[0], created[1])
        audit = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPTS / "graphql-audit.mjs"),
            env={**os.environ, "AUDIT_URL": f"{base}/graphql", "AUDIT_TOKEN": token},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(audit.communicate(), timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = output.decode()
    assert audit.returncode == 0, report
    assert "0 failed or warned" in report, report


async def _partner_client(conn):  # type: ignore[no-untyped-def]
    from exchange.kit.clock import utc_now
    from partners import registry
    from tests.partners.test_registry import TERMS, unique_name

    partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
    created = await clients.create_client(conn, scopes=["transactions:read"], partner_id=partner.id)
    return created.client_id, str(created.client_secret)
