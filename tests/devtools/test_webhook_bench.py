"""`exchange bench webhooks`, small: every booked event reaches the bench's receiver (a
process on loopback) once, and the report says what the deliverer and the receiver
spent per event."""

from __future__ import annotations

from exchange.devtools import webhook_bench
from exchange.kit.db import Database
from exchange.kit.settings import Tunables
from tests.conftest import TEST_SECRET_KEY


async def test_the_webhook_bench_delivers_every_event_once_and_reports_its_cpu(
    db: Database,
) -> None:
    result = await webhook_bench.run(
        db, events=60, secret=TEST_SECRET_KEY.encode(), tunables=Tunables()
    )

    assert (result["events"], result["received"]) == (60, 60)
    assert result["events_per_s"] > 0
    assert result["deliverer_cpu_ms_per_event"] > 0
    assert result["receiver_cpu_ms_per_event"] > 0
