"""The operator's events commands: a delivery worker run on its own (--once), the figures,
the delivery log, the endpoints, a redelivery; against a real receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from exchange import ledger
from exchange.events import endpoints
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from partners import registry
from partners.identity import IdentityKeys
from tests.cli.test_cli import serving
from tests.cli.test_loyalty_cli import cli  # noqa: F401  (the fixture)
from tests.conftest import TEST_SECRET_KEY
from tests.partners.test_registry import TERMS, unique_name


class _Recorder(BaseHTTPRequestHandler):
    got: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        type(self).got.append(self.headers["webhook-id"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    _Recorder.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Recorder.got
    server.shutdown()
    server.server_close()


async def _an_endpoint_and_an_earn(url: str, hook: str) -> None:
    database = Database(url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS,
                                                 now=utc_now())  # fmt: skip
            await endpoints.create(
                conn, owner=partner.id, url=hook, types=["points.earned"],
                keys=IdentityKeys.from_secret(TEST_SECRET_KEY.encode()), allow_private=True,
                created_by="test", now=utc_now(),
            )  # fmt: skip
            member = await ledger.open_member(conn)
            await ledger.earn(conn, client_id="cli", partner_id=partner.id, now=utc_now(),
                              request=ledger.EarnRequest("cli-earn", member, 10))  # fmt: skip
    finally:
        await database.dispose()


def test_an_operator_delivers_reads_the_log_and_redelivers(
    scratch_database_url: str,
    cli,  # type: ignore[no-untyped-def]  # noqa: F811
    recorder: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook, got = recorder
    asyncio.run(_an_endpoint_and_an_earn(scratch_database_url, hook))
    monkeypatch.setenv("EXCHANGE_WEBHOOK_ALLOW_PRIVATE", "true")

    delivered = cli(["events", "deliver", "--once"], scratch_database_url)
    stats = cli(["events", "stats", "--json"], scratch_database_url)
    log = cli(["events", "list", "--json"], scratch_database_url)
    [entry] = json.loads(log.stdout)
    listed = cli(["events", "endpoints", "--json"], scratch_database_url)
    again = cli(["events", "redeliver", str(entry["id"])], scratch_database_url)
    cli(["events", "deliver", "--once"], scratch_database_url)
    missing = cli(["events", "redeliver", "999999"], scratch_database_url)

    assert delivered.returncode == 0, delivered.stderr
    assert json.loads(stats.stdout)["delivered"] == 1
    assert entry["eventType"] == "points.earned"
    assert (entry["status"], entry["attempts"]) == ("DELIVERED", 1)
    assert [e["url"] for e in json.loads(listed.stdout)] == [hook]
    assert again.returncode == 0
    assert got == [entry["eventId"], entry["eventId"]]
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


async def test_serve_leaves_deliveries_to_workers_of_their_own_when_told(
    scratch_database_url: str, recorder: tuple[str, list[str]], tmp_path: Path
) -> None:
    """EXCHANGE_SERVE_DELIVERY=off: `serve` runs no deliverer (the events wait for
    `exchange events deliver`, on another machine if need be); by default it delivers."""
    hook, got = recorder
    await _an_endpoint_and_an_earn(scratch_database_url, hook)

    async with serving(scratch_database_url, tmp_path, EXCHANGE_SERVE_DELIVERY="off",
                       EXCHANGE_WEBHOOK_ALLOW_PRIVATE="true"):  # fmt: skip
        await asyncio.sleep(3)  # an idle deliverer looks every 0.5 s
        left_waiting = list(got)
    async with serving(scratch_database_url, tmp_path, EXCHANGE_WEBHOOK_ALLOW_PRIVATE="true"):
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.1)

    assert left_waiting == []
    assert len(got) == 1
