"""Leaky buckets shared by every server process, leased in chunks (docs/decisions/0010).

Each key (a client's query cost, the failed authentications of one client or one
address) has one bucket in PostgreSQL: ``capacity`` points, refilled at ``refill_points``
per ``refill_seconds``. A process does not ask the database for every request: it leases
a chunk of up to ``lease_points`` from the bucket (one row written per chunk) and spends
it locally; when the chunk runs out it leases the next. A process that learns the bucket
is empty refuses at once, without a round trip, until the bucket can pay again.

A limit whose every point is an event worth a row write of its own (a member's failed
recipient look-ups) is spent point by point in the caller's unit of work instead
(:func:`spend`, :func:`room`): its count commits or rolls back with the work that
decided it, and every process reads the same bucket.

What that guarantees: every point spent was first leased, and leases never take more
than the bucket holds, so all processes together spend at most ``capacity`` plus the
refill over any stretch of time, plus what each process still held from earlier leases
(at most ``lease_points`` each). Points leased and never spent are lost, which errs on
the side of the limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from exchange.kit.db import Connection, Database, Scope
from exchange.kit.invariant import invariant
from exchange.limits import repository

#: Keys a process remembers (least recently used forgotten first: an address that once
#: failed, long ago, costs nothing to forget; its bucket stays in the database).
MAX_KEYS = 10_000


@dataclass(frozen=True)
class Limit:
    """One kind of limit: a bucket per key, ``name`` prefixing the keys in the table."""

    name: str
    capacity: int
    refill_points: int
    refill_seconds: int
    #: The most one process leases at once.
    lease_points: int

    def __post_init__(self) -> None:
        invariant(
            0 < self.lease_points <= self.capacity and self.refill_points > 0,
            f"limit {self.name}: a lease is between 1 and the capacity; the bucket refills",
        )
        invariant(self.refill_seconds > 0, f"limit {self.name}: refill_seconds above 0")

    @property
    def rate(self) -> Decimal:
        """Points refilled per second."""
        return Decimal(self.refill_points) / Decimal(self.refill_seconds)

    @property
    def drains_in(self) -> timedelta:
        """How long a full bucket takes to empty: an untouched bucket is forgotten then."""
        return timedelta(seconds=math.ceil(self.capacity / self.rate))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: Roughly what is left: the room in the shared bucket at this process's last lease
    #: and what this process still holds.
    available: int
    #: When refused: whole seconds until the bucket can pay (at least 1).
    retry_after_seconds: int = 0


@dataclass
class _Held:
    """What one process knows of one key."""

    points: int = 0
    room: int = 0
    #: time.monotonic() until which the bucket is known to be unable to pay.
    empty_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SharedBuckets:
    """The buckets of one :class:`Limit`, as one server process leases and spends them.

    A lease runs in its own unit of work under the scope given: a caller's own buckets
    (its query cost) under the caller's row scope, which then owns the row; buckets with
    no caller yet (failed authentications) under the system scope the composition root
    passes.
    """

    def __init__(self, database: Database, limit: Limit) -> None:
        self.database = database
        self.limit = limit
        self.leases = 0  # leases asked of the database by this process (for tests and ops)
        self._held: OrderedDict[str, _Held] = OrderedDict()

    def refused(self, key: str) -> Decision | None:
        """A refusal, if this process already knows the bucket of ``key`` cannot pay
        (no database round trip); None otherwise."""
        held = self._held.get(key)
        if held is None or held.points > 0:
            return None
        return self._known_empty(held)

    async def take(self, key: str, points: int, *, scope: Scope) -> Decision:
        """Spend ``points`` from the bucket of ``key``, or refuse without spending any;
        a lease, when one is needed, runs under ``scope``."""
        invariant(points > 0, "a take spends at least one point")
        held = self._remember(key)
        decided = self._spend(held, points) or self._known_empty(held)
        if decided is not None:
            return decided
        async with held.lock:  # one lease at a time per key; the others wait and spend it
            decided = self._spend(held, points) or self._known_empty(held)
            if decided is not None:
                return decided
            return await self._lease(key, held, points, scope)

    async def forget_drained(self, scope: Scope) -> int:
        """Delete the buckets that have drained (the sweep calls this, as the system)."""
        async with self.database.transaction(scope) as conn:
            return await forget_drained(conn, self.limit)

    def _remember(self, key: str) -> _Held:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held()
            if len(self._held) > MAX_KEYS:
                self._held.popitem(last=False)
        else:
            self._held.move_to_end(key)
        return held

    @staticmethod
    def _spend(held: _Held, points: int) -> Decision | None:
        if held.points < points:
            return None
        held.points -= points
        return Decision(allowed=True, available=held.points + held.room)

    @staticmethod
    def _known_empty(held: _Held) -> Decision | None:
        wait = held.empty_until - time.monotonic()
        if wait <= 0:
            return None
        return Decision(allowed=False, available=held.points, retry_after_seconds=_seconds(wait))

    async def _lease(self, key: str, held: _Held, points: int, scope: Scope) -> Decision:
        needed = points - held.points
        async with self.database.transaction(scope) as conn:
            grant = await repository.lease(
                conn,
                name=f"{self.limit.name}:{key}",
                needed=needed,
                wanted=max(needed, self.limit.lease_points),
                capacity=self.limit.capacity,
                rate=self.limit.rate,
            )
        self.leases += 1
        held.room = int(grant.room)
        if grant.points == 0:
            wait = (Decimal(needed) - grant.room) / self.limit.rate
            held.empty_until = time.monotonic() + float(wait)
            return Decision(
                allowed=False,
                available=held.points + held.room,
                retry_after_seconds=_seconds(float(wait)),
            )
        invariant(grant.points >= needed, "a lease grants what was needed or nothing")
        held.points += grant.points - points
        return Decision(allowed=True, available=held.points + held.room)


async def forget_drained(conn: Connection, limit: Limit) -> int:
    """Delete the buckets of ``limit`` that have drained (a missing row is an empty
    bucket); how many."""
    return await repository.forget_drained(
        conn, prefix=f"{limit.name}:", drained_after=limit.drains_in
    )


async def room(conn: Connection, limit: Limit, key: str) -> int:
    """Whole points the bucket of ``key`` could pay now, read in the caller's unit of
    work; writes nothing."""
    left = await repository.room(
        conn, name=f"{limit.name}:{key}", capacity=limit.capacity, rate=limit.rate
    )
    return int(left)  # whole points: a bucket with 0.99 of room can't pay one


async def spend(
    conn: Connection, limit: Limit, key: str, points: int, *, member_id: int | None = None
) -> Decision:
    """Spend exactly ``points`` from the bucket of ``key`` in the caller's unit of work, or
    refuse without spending: the spending commits or rolls back with the work that
    decided it. For a limit whose every point is an event worth a row write (a failed
    look-up), where :class:`SharedBuckets` leases chunks for a process's many cheap
    requests. ``member_id``: the bucket is that member's, whichever client it calls
    through."""
    invariant(points > 0, "a spend takes at least one point")
    grant = await repository.lease(
        conn,
        name=f"{limit.name}:{key}",
        needed=points,
        wanted=points,
        capacity=limit.capacity,
        rate=limit.rate,
        member_id=member_id,
    )
    if grant.points == 0:
        wait = (Decimal(points) - grant.room) / limit.rate
        return Decision(
            allowed=False, available=int(grant.room), retry_after_seconds=_seconds(float(wait))
        )
    return Decision(allowed=True, available=int(grant.room))


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
