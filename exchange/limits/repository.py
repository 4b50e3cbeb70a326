"""All SQL of the shared limits: lease from a bucket, forget drained buckets.

Time is the database's (``statement_timestamp()``), so processes on machines whose
clocks disagree still drain a bucket at one rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.db import sql

# One statement: create the bucket on its first lease, or drain it by the time since its
# last one, and grant what it can. A lease grants nothing unless the room left covers
# what the request needs; then up to ``wanted``, but never more than half the room when
# that is more than needed, so that near the limit one process does not take it all.
_LEASE = """
INSERT INTO limit_bucket AS bucket (name, level, granted, updated_at)
SELECT :name, fresh.grant, fresh.grant, statement_timestamp()
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
    FROM (
        SELECT greatest(
            0,
            bucket.level - CAST(:rate AS numeric) * greatest(
                0, extract(epoch FROM statement_timestamp() - bucket.updated_at)
            )
        ) AS level
    ) AS drained,
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
    conn: AsyncConnection,
    *,
    name: str,
    needed: int,
    wanted: int,
    capacity: int,
    rate: Decimal,
) -> Grant:
    """Lease between ``needed`` and ``wanted`` points from the bucket ``name`` (capacity
    ``capacity``, draining ``rate`` points a second), or none."""
    row = (
        await conn.execute(
            sql(_LEASE),
            {
                "name": name,
                "needed": needed,
                "wanted": wanted,
                "capacity": capacity,
                "rate": rate,
            },
        )
    ).one()
    return Grant(points=int(row.granted), room=Decimal(row.room))


async def forget_drained(conn: AsyncConnection, *, prefix: str, drained_after: timedelta) -> int:
    """Delete the buckets named ``prefix...`` untouched for longer than a full bucket takes
    to drain (a missing row is an empty bucket, so nothing changes); the number deleted."""
    result = await conn.execute(
        sql(_FORGET),
        {"prefix": prefix, "drained_after_seconds": drained_after.total_seconds()},
    )
    return int(result.rowcount or 0)
