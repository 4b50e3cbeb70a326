"""All SQL of the shared limits: lease from a bucket, read the room left in one, forget
drained buckets.

Time is the database's (``statement_timestamp()``), so processes on machines whose
clocks disagree still drain a bucket at one rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from exchange.kit.db import Connection, sql

#: How full a bucket is now: its level drained by the time since its last lease.
_DRAINED = """greatest(
    0,
    bucket.level - CAST(:rate AS numeric) * greatest(
        0, extract(epoch FROM statement_timestamp() - bucket.updated_at)
    )
)"""

# One statement: create the bucket on its first lease, or drain it by the time since its
# last one, and grant what it can. A lease grants nothing unless the room left covers
# what the request needs; then up to ``wanted``, but never more than half the room when
# that is more than needed, so that near the limit one process does not take it all.
# A member's own bucket (``member_id``) belongs to no client: row-level security lets
# the member reach it through a token of any client (migration 0020).
_LEASE = f"""
INSERT INTO limit_bucket AS bucket (name, client_id, member_id, level, granted, updated_at)
SELECT :name,
       CASE WHEN CAST(:member_id AS bigint) IS NULL THEN exchange_principal_client() END,
       CAST(:member_id AS bigint), fresh.grant, fresh.grant, statement_timestamp()
FROM (
    SELECT CASE WHEN CAST(:capacity AS numeric) >= CAST(:needed AS numeric)
                THEN least(
                    CAST(:wanted AS numeric),
                    greatest(CAST(:needed AS numeric), floor(CAST(:capacity AS numeric) / 2))
                )
                ELSE 0 END AS grant
) AS fresh
ON CONFLICT (name) DO UPDATE SET (level, granted, updated_at) = (
    SELECT drained.level + granting.grant, granting.grant, statement_timestamp()
    FROM (SELECT {_DRAINED} AS level) AS drained,
    LATERAL (
        SELECT CASE WHEN CAST(:capacity AS numeric) - drained.level >= CAST(:needed AS numeric)
                    THEN least(
                        CAST(:wanted AS numeric),
                        greatest(
                            CAST(:needed AS numeric),
                            floor((CAST(:capacity AS numeric) - drained.level) / 2)
                        )
                    )
                    ELSE 0 END AS grant
    ) AS granting
)
RETURNING granted, CAST(:capacity AS numeric) - level AS room
"""

_ROOM = f"""
SELECT CAST(:capacity AS numeric) - {_DRAINED} AS room FROM limit_bucket AS bucket
WHERE bucket.name = :name
"""

_FORGET = """
DELETE FROM limit_bucket
WHERE starts_with(name, :prefix)
  AND updated_at < statement_timestamp() - make_interval(secs => :drained_after_seconds)
"""


@dataclass(frozen=True)
class Grant:
    #: Points leased (0: the bucket could not pay for what was needed).
    points: int
    #: Room left in the bucket after the lease.
    room: Decimal


async def lease(
    conn: Connection,
    *,
    name: str,
    needed: int,
    wanted: int,
    capacity: int,
    rate: Decimal,
    member_id: int | None = None,
) -> Grant:
    """Lease between ``needed`` and ``wanted`` points from the bucket ``name`` (capacity
    ``capacity``, draining ``rate`` points a second), or none. A bucket created with a
    ``member_id`` is that member's; otherwise the client's bound to the transaction."""
    row = (
        await conn.execute(
            sql(_LEASE),
            {
                "name": name,
                "needed": needed,
                "wanted": wanted,
                "capacity": capacity,
                "rate": rate,
                "member_id": member_id,
            },
        )
    ).one()
    return Grant(points=int(row.granted), room=Decimal(row.room))


async def room(conn: Connection, *, name: str, capacity: int, rate: Decimal) -> Decimal:
    """What the bucket ``name`` could pay now (the capacity when it has no row), without
    leasing anything or writing a row."""
    found = (
        await conn.execute(sql(_ROOM), {"name": name, "capacity": capacity, "rate": rate})
    ).scalar()
    return Decimal(capacity) if found is None else Decimal(found)


async def forget_drained(conn: Connection, *, prefix: str, drained_after: timedelta) -> int:
    """Delete the buckets named ``prefix...`` untouched for longer than a full bucket takes
    to drain (a missing row is an empty bucket, so nothing changes); the number deleted."""
    return await conn.affected(
        sql(_FORGET),
        {"prefix": prefix, "drained_after_seconds": drained_after.total_seconds()},
    )
