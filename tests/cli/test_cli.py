"""The `exchange` command, run as a real process against the test database."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from partners import clients, registry
from tests.conftest import NOW, TEST_SECRET_KEY, Factory
from tests.partners.test_registry import TERMS, unique_name


def run(args: list[str], database_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(home),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
    }
    return subprocess.run(  # noqa: S603 (our own command, fixed arguments)
        [sys.executable, "-m", "exchange.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_verify_reports_every_invariant_and_exits_zero(
    database_url: str, tmp_path: Path
) -> None:
    result = run(["verify", "--json"], database_url, tmp_path)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert len(report["checks"]) >= 9
    assert all(check["ok"] for check in report["checks"])


async def test_an_error_names_objects_by_the_numbers_an_operator_reads(
    database_url: str, tmp_path: Path
) -> None:
    """The API quotes a global ID; the command speaks the operator's internal ids."""
    result = run(["member", "export", "987654321987"], database_url, tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip() == ("exchange: error: member 987654321987 has no identity record")


async def test_verify_fails_with_status_one_when_a_balance_is_tampered_with(
    scratch_database_url: str, tmp_path: Path
) -> None:
    engine = create_async_engine(scratch_database_url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO ledger_account (kind, member_id, sharded, balance)"
            " VALUES ('MEMBER_WALLET', 1, false, 500)"
        )
    await engine.dispose()

    result = run(["verify"], scratch_database_url, tmp_path)

    assert result.returncode == 1
    assert "FAIL  each stored balance equals the sum of its postings" in result.stdout
    assert "LEDGER INVARIANTS BROKEN" in result.stdout


async def test_expire_command_expires_lots_as_of_the_given_time(
    make: Factory, database_url: str, tmp_path: Path
) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 25, expires_at=NOW + timedelta(days=3))
    as_of = (NOW + timedelta(days=4)).isoformat()

    result = run(["expire", "--as-of", as_of, "--json"], database_url, tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pointsExpired"] >= 25
    assert (await make.wallet(alice)).balance == 0


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["expire", "--as-of", "yesterday"],
        ["expire", "--as-of", "2026-01-01T00:00:00"],
        ["serve", "--port", "eighty"],
        ["serve", "--loop", "trio"],
        ["serve", "--http", "h2"],
        ["db"],
    ],
)
def test_bad_arguments_get_one_line_and_status_two(args: list[str], tmp_path: Path) -> None:
    result = run(args, "postgresql://unused/none", tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("exchange: error: ")
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_and_status_one(tmp_path: Path) -> None:
    result = run(["verify"], "postgresql://nobody@127.0.0.1:1/none", tmp_path)

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_serve_demo_seeds_migrates_and_answers_health_probes(
    database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(tmp_path),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
    }
    server = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command; Popen returns at once)
        [sys.executable, "-m", "exchange.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    ready = await client.get("/readyz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            health = await client.get("/healthz")
        assert ready is not None
        assert ready.json() == {"status": "ready"}
        assert health.json() == {"status": "ok"}
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "demo coalition" in output
    assert "Traceback" not in output


def _mapped_libraries(pid: int) -> str:
    """What a process has loaded (Linux), to tell which event loop it runs."""
    maps = Path(f"/proc/{pid}/maps")
    return maps.read_text() if maps.exists() else ""


async def test_serve_runs_on_asyncio_and_h11_when_asked(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(tmp_path),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
    }
    command = ["serve", "--port", str(port), "--loop", "asyncio", "--http", "h11"]
    server = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command; Popen returns at once)
        [sys.executable, "-m", "exchange.cli", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                try:
                    ready = await client.get("/readyz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            loops = _mapped_libraries(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert ready is not None
    assert ready.json() == {"status": "ready"}
    assert "uvloop" not in loops  # asyncio's own loop, as asked


async def test_bench_drives_a_running_server_without_errors(
    database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(tmp_path),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
    }
    server = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command; Popen returns at once)
        [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        result = run(
            [
                "bench",
                "--url",
                f"http://127.0.0.1:{port}",
                "--concurrency",
                "2",
                "--duration",
                "1",
                "--members",
                "5",
                "--partners",
                "2",
                "--clients",
                "2",
                "--json",
            ],
            database_url,
            tmp_path,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == 0
    assert report["operations"] > 0
    assert set(report["by_operation"]) <= {"earn", "redeem", "wallet"}
    assert (report["partners"], report["clients"]) == (2, 4)  # two OAuth clients each
    # the server listens on this machine: its CPU per operation is measured
    assert report["server_cpu_ms_per_op"] > 0
    assert report["server_cpu_cores"] > 0


@dataclass
class Server:
    url: str
    log: str = ""  # its stderr, once it has stopped


@asynccontextmanager
async def serving(
    database_url: str, home: Path, *options: str, **environ: str
) -> AsyncIterator[Server]:
    """`exchange serve` on a free loopback port, ready for requests; stopped afterwards,
    with what it logged in ``log``."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(home),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
        **environ,
    }
    log_file = home / f"serve-{port}.log"
    with log_file.open("w") as log:
        process = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command; returns at once)
            [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port), *options],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    server = Server(f"http://127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(base_url=server.url) as api:
            await _wait_until_ready(api, process)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        server.log = log_file.read_text()


async def _wait_until_ready(api: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # a loaded 2-core machine took over 60 s once
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if (await api.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"the server did not become ready (exit status {process.poll()})")


async def test_serve_writes_json_log_lines_with_the_request_id_when_asked(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
        client = await clients.create_client(conn, scopes=["points:earn"], partner_id=partner.id)
    assert client.client_secret is not None

    async with (
        serving(database_url, tmp_path, "--workers", "2", EXCHANGE_LOG_FORMAT="json") as server,
        httpx.AsyncClient(base_url=server.url) as api,
    ):
        token = (
            await api.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(client.client_id, client.client_secret),
            )
        ).json()["access_token"]
        refused = await api.post(
            "/graphql",
            json={"query": "{ transactions(first: 101) { edges { cursor } } }"},
            headers={"Authorization": f"Bearer {token}"},
        )

    entries = [json.loads(line) for line in server.log.splitlines()]  # every line is JSON
    assert {"uvicorn.error"} <= {entry["logger"] for entry in entries}  # uvicorn's own too
    client_errors = [entry for entry in entries if entry["logger"] == "graphql_schema.schema"]
    assert client_errors == [
        {
            "time": client_errors[0]["time"],
            "level": "INFO",
            "logger": "graphql_schema.schema",
            "message": "client error INVALID_INPUT at transactions:"
            " first must be between 1 and 100",
            "request_id": refused.headers["x-request-id"],
        }
    ]
    assert client.client_secret not in server.log
    assert token not in server.log


async def test_serve_on_the_embedded_default_stops_its_postgresql_on_sigterm(
    tmp_path: Path,
) -> None:
    """A process manager stops `serve` with SIGTERM: the embedded PostgreSQL it started
    stops with it (it was left running: the process ended by the signal's default action
    before its exit handlers ran)."""
    port = _free_port()
    env = {**os.environ, "EXCHANGE_HOME": str(tmp_path), "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(  # noqa: S603, ASYNC220 (our own command; returns at once)
        [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = tmp_path / "pgdata" / "postmaster.pid"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            await _wait_until_ready(api, process)
        running_before = pid_file.exists()
        process.terminate()
        status = process.wait(timeout=60)
        for _ in range(150):  # PostgreSQL removes the file last as it stops: up to 30 s
            if not pid_file.exists():
                break
            await asyncio.sleep(0.2)
        running_after = pid_file.exists()
    finally:
        process.kill()
        if pid_file.exists():  # leave no server behind, whatever failed
            os.kill(int(pid_file.read_text().splitlines()[0]), 2)

    assert (running_before, status, running_after) == (True, 143, False)
