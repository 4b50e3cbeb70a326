"""The webhook delivery worker: it runs inside ``exchange serve`` and as its own process
(``exchange events deliver``); several may run at once against one database.

Each round fans new outbox events out to the endpoints that want them, then leases the
deliveries that are due (FOR UPDATE SKIP LOCKED: no two workers hold one) and sends them
concurrently, each in its own task with its own 10-second limit, at most
``per_endpoint`` at a time to one endpoint and ``max_in_flight`` in all, so a slow or
dead receiver never holds up another partner's deliveries. A round leases up to
LEASES_PER_SLOT times what may be sent at once (the rest waits its turn in this worker),
so the round's transaction is shared by more deliveries; a delivery whose lease would
run out before its send could end is not sent (the lease lapses and it is leased again),
so no other worker can be sending it too. The next round starts once half of what is in
flight has come back (or after BUSY_SECONDS), and records those outcomes in its one
transaction (exchange.events.dispatch says what they mean). It has no caller, so it
works under the system scope. Time comes from ``clock`` (tests drive backoff and expiry
notices through days with it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from exchange.events import dispatch, repository, safety, sender
from exchange.events.connections import Connections
from exchange.kit.clock import utc_now
from exchange.kit.db import Connection, Database
from exchange.kit.settings import Tunables
from exchange.kit.system import SYSTEM
from partners.identity import IdentityKeys

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
#: A worker leases up to this many times what it may send at once (per endpoint and in
#: all); with the 10-second limit, 4 waves of sends end well within LEASE.
LEASES_PER_SLOT = 4
FAN_OUT_BATCH = 1000
#: At most this many events are fanned out in one round's transaction. A larger backlog
#: (the deliverer was stopped, or a seed wrote events with no server running) goes on in
#: the next rounds, each committed, with no idle pause between them. Before, one round
#: fanned out the whole backlog in one transaction, and each batch of it re-read the
#: index entries its earlier batches had updated (dead only once committed): 400,000
#: events took 15.8 s in one transaction (its 2nd batch 19 ms, its 400th 67 ms) against
#: 10.6 s committed batch by batch (23-30 ms each); the 10,404,118 a seed left would have
#: taken about two hours, leasing nothing meanwhile, against about five minutes.
FAN_OUT_PER_ROUND = 8 * FAN_OUT_BATCH
IDLE_SECONDS = 0.5
#: How long a busy worker waits for sends to come back before its next round.
BUSY_SECONDS = 0.05


class Deliverer:
    def __init__(
        self,
        database: Database,
        *,
        keys: IdentityKeys,
        tunables: Tunables,
        clock: Callable[[], datetime] = utc_now,
        max_in_flight: int = 128,
        per_endpoint: int = 16,
        timeout: float = sender.TIMEOUT_SECONDS,
        fan_out_batch: int = FAN_OUT_BATCH,
        fan_out_per_round: int = FAN_OUT_PER_ROUND,
    ) -> None:
        self.database = database
        self.keys = keys
        self.tunables = tunables
        self.clock = clock
        self.max_in_flight = max_in_flight
        self.per_endpoint = per_endpoint
        self.timeout = timeout
        self.fan_out_batch = fan_out_batch
        self.fan_out_per_round = fan_out_per_round
        #: Whether the last round left events to fan out (the next one comes at once).
        self.backlog = False
        #: endpoint -> deliveries leased by this worker and not finished yet.
        self.leased: Counter[int] = Counter()
        self.sending: dict[int, asyncio.Semaphore] = {}
        self.slots = asyncio.Semaphore(max_in_flight)
        self.tasks: set[asyncio.Task[None]] = set()
        self.done: list[tuple[dispatch.Request, sender.Outcome]] = []
        self.resolutions = safety.Resolutions()
        self._connections: Connections | None = None
        self._finished = 0
        self._wake_at = 0
        self._wake = asyncio.Event()

    @property
    def connections(self) -> Connections:
        if self._connections is None:
            self._connections = sender.connections()
        return self._connections

    async def round(self) -> int:
        """One round, one transaction: record what came back, fan out, lease what is
        due (as many as there is room for); then start sending it. How many deliveries
        were started. (If the transaction fails, the outcomes it held are not recorded:
        those deliveries are sent again once their leases run out.)"""
        done, self.done = self.done, []
        now = self.clock()
        free = self.max_in_flight * LEASES_PER_SLOT - sum(self.leased.values())
        async with self.database.transaction(SYSTEM) as conn:
            if done:
                await dispatch.record(conn, done, now=now)
            fanned = await _fan_out(
                conn, now=now, batch=self.fan_out_batch, most=self.fan_out_per_round
            )
            self.backlog = fanned == self.fan_out_per_round
            if free <= 0:
                return 0
            claimed = await repository.claim(
                conn, now=now, lease=LEASE, limit=free,
                per_endpoint=self.per_endpoint * LEASES_PER_SLOT, held=dict(self.leased),
            )  # fmt: skip
        made = dispatch.requests(claimed, keys=self.keys, now=now, leased_until=now + LEASE)
        for request in made:
            self.leased[request.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(request))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(made)

    async def _deliver(self, request: dispatch.Request) -> None:
        outcome: sender.Outcome | None = None
        try:
            if not request.signers:  # nothing to sign with: fails alone, sends nothing
                outcome = sender.Outcome(None, dispatch.CANNOT_SIGN)
            else:
                async with self._endpoint_slots(request.endpoint_id), self.slots:
                    if self.clock() + timedelta(seconds=self.timeout) <= request.leased_until:
                        outcome = await self._send(request)
        finally:
            self._finished_one(request.endpoint_id)
        if outcome is not None:  # None: left for its lease to lapse
            self.done.append((request, outcome))

    def _endpoint_slots(self, endpoint_id: int) -> asyncio.Semaphore:
        slots = self.sending.get(endpoint_id)
        if slots is None:
            slots = self.sending[endpoint_id] = asyncio.Semaphore(self.per_endpoint)
        return slots

    def _finished_one(self, endpoint_id: int) -> None:
        self.leased[endpoint_id] -= 1
        if self.leased[endpoint_id] <= 0:  # no task of this endpoint is left
            del self.leased[endpoint_id]
            self.sending.pop(endpoint_id, None)
        self._finished += 1
        if self._finished >= self._wake_at:
            self._wake.set()

    async def _send(self, request: dispatch.Request) -> sender.Outcome:
        try:
            async with asyncio.timeout(self.timeout):
                return await sender.send(
                    self.connections, url=request.url, message_id=request.message_id,
                    body=request.body, signers=request.signers,
                    allow_private=self.tunables.webhook_allow_private, now=self.clock(),
                    resolutions=self.resolutions,
                )  # fmt: skip
        except TimeoutError:
            return sender.Outcome(None, f"no answer within {self.timeout:g} s")
        except Exception as error:
            return sender.Outcome(None, f"{type(error).__name__}")

    async def flush(self) -> int:
        """Record every outcome that came back, in one transaction (a delivery whose
        outcome is lost is sent again once its lease runs out)."""
        done, self.done = self.done, []
        if not done:
            return 0
        try:
            async with self.database.transaction(SYSTEM) as conn:
                await dispatch.record(conn, done, now=self.clock())
        except Exception:  # the leases run out and the deliveries are tried again
            log.exception("the outcomes of %d webhook deliveries were not recorded", len(done))
        return len(done)

    async def settle(self) -> None:
        """Wait for every send in flight and record what came back."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self.flush()

    async def drain(self, *, rounds: int = 1000) -> None:
        """Rounds, paced as run_forever paces them, until nothing is due and nothing is
        in flight or waiting to be recorded (tests, --once)."""
        for _ in range(rounds):
            started = await self.round()
            if self.tasks:
                await self.pause(started)
            elif not (started or self.done or self.backlog):
                return
        await self.settle()

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    started = await self.round()
                except Exception:  # keep delivering; the next round retries
                    log.exception("webhook delivery round failed")
                    started = 0
                await self.pause(started)
        finally:
            await self.close()

    async def pause(self, started: int) -> None:
        """Until half of the sends in flight have come back (the next round then has
        outcomes to record and room to lease while the rest are still sending), or
        BUSY_SECONDS have passed; a moment when nothing is in flight or started."""
        if self.tasks:
            self._wake_at = self._finished + max(1, len(self.tasks) // 2)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BUSY_SECONDS):
                    await self._wake.wait()
        elif not (started or self.backlog):
            await asyncio.sleep(IDLE_SECONDS)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self.flush()
        if self._connections is not None:
            await self._connections.close()
            self._connections = None


async def fan_out_backlog(
    database: Database, *, now: datetime, progress: Callable[[int], None] | None = None
) -> int:
    """Fan out every waiting event, a round's worth per committed transaction, as the
    deliverer would (``exchange bench seed`` leaves no backlog to the servers it is
    measured with); how many. ``progress`` hears the running total."""
    total = 0
    while True:
        async with database.transaction(SYSTEM) as conn:
            fanned = await _fan_out(conn, now=now, batch=FAN_OUT_BATCH, most=FAN_OUT_PER_ROUND)
        total += fanned
        if progress is not None and fanned:
            progress(total)
        if fanned < FAN_OUT_PER_ROUND:
            return total


async def _fan_out(conn: Connection, *, now: datetime, batch: int, most: int) -> int:
    """Fan out up to ``most`` of the oldest events, ``batch`` at a time; how many (``most``:
    more may be waiting)."""
    queued = 0
    while queued < most:
        limit = min(batch, most - queued)
        count = await repository.fan_out(conn, now=now, limit=limit)
        queued += count
        if count < limit:
            break
    return queued


async def notices_and_retention(
    database: Database, *, tunables: Tunables, now: datetime
) -> tuple[int, int]:
    """The periodic part: points.expiring for lots expiring soon (once per lot), and
    events and deliveries past their retention purged; (notices, purged)."""
    notices = purged = 0
    while True:
        async with database.transaction(SYSTEM) as conn:
            count = await repository.expiring_notices(
                conn, now=now, within=timedelta(days=tunables.expiring_notice_days), limit=1000
            )
        notices += count
        if count < 1000:
            break
    before = now - timedelta(days=tunables.events_retention_days)
    while True:
        async with database.transaction(SYSTEM) as conn:
            count = await repository.purge(conn, before=before, limit=1000)
        purged += count
        if count == 0:
            break
    return notices, purged
