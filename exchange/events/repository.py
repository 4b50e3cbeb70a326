"""The events package's SQL: endpoints, deliveries, the outbox (fan-out, claims,
results, notices, retention)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from exchange.kit.db import Connection, Row, sql

_ENDPOINT = (
    "e.id, e.partner_id, e.url, e.event_types, e.status, e.disabled_reason, e.created_at,"
    " e.secret, e.previous_secret, e.previous_secret_until"
)
_DELIVERY = (
    "d.id, d.endpoint_id, d.event_id, d.event_type, d.status, d.attempts,"
    " d.last_status_code, d.last_error, d.next_attempt_at, d.delivered_at, d.created_at"
)

# --- endpoints ------------------------------------------------------------------------


async def insert_endpoint(conn: Connection, **values: Any) -> int:
    result = await conn.execute(
        sql(
            """
            INSERT INTO webhook_endpoint (partner_id, url, event_types, status, secret,
                created_by, created_at, updated_at)
            VALUES (:partner_id, :url, CAST(:event_types AS text[]), 'ENABLED', :secret,
                :created_by, :now, :now)
            RETURNING id
            """
        ),
        values,
    )
    return int(result.scalar_one())


async def count_endpoints(conn: Connection, *, partner_id: int | None) -> int:
    result = await conn.execute(
        sql(
            "SELECT count(*) FROM webhook_endpoint WHERE deleted_at IS NULL"
            " AND partner_id IS NOT DISTINCT FROM :partner_id"
        ),
        {"partner_id": partner_id},
    )
    return int(result.scalar_one())


async def endpoints(
    conn: Connection,
    *,
    endpoint_ids: Sequence[int] | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[Row]:
    """Endpoints the caller may see (row-level security), not deleted, in id order."""
    result = await conn.execute(
        sql(
            f"SELECT {_ENDPOINT} FROM webhook_endpoint e WHERE e.deleted_at IS NULL"
            " AND (CAST(:ids AS bigint[]) IS NULL OR e.id = ANY(CAST(:ids AS bigint[])))"
            " AND e.id > :after ORDER BY e.id LIMIT :limit"
        ),
        {
            "ids": list(endpoint_ids) if endpoint_ids is not None else None,
            "after": after_id,
            "limit": limit,
        },
    )
    return list(result.all())


async def update_endpoint(
    conn: Connection,
    *,
    endpoint_id: int,
    url: str | None,
    event_types: Sequence[str] | None,
    enabled: bool | None,
    now: datetime,
) -> bool:
    """Change what is given; re-enabling clears the reason it was disabled and sends what
    waited, from now (its 3 days start again)."""
    result = await conn.execute(
        sql(
            """
            WITH changed AS (
            UPDATE webhook_endpoint SET
                url = coalesce(:url, url),
                event_types = coalesce(CAST(:event_types AS text[]), event_types),
                status = CASE WHEN CAST(:enabled AS boolean) IS NULL THEN status
                              WHEN CAST(:enabled AS boolean) THEN 'ENABLED'
                              ELSE 'DISABLED' END,
                disabled_reason = CASE WHEN CAST(:enabled AS boolean) IS NULL
                                       THEN disabled_reason
                                       WHEN CAST(:enabled AS boolean) THEN NULL
                                       ELSE 'disabled by its owner' END,
                updated_at = :now
            WHERE id = :id AND deleted_at IS NULL
            RETURNING id
            ), resumed AS (
                UPDATE webhook_delivery SET first_attempt_at = NULL, next_attempt_at = :now
                WHERE endpoint_id IN (SELECT id FROM changed) AND status = 'PENDING'
                  AND CAST(:enabled AS boolean) IS TRUE
            )
            SELECT id FROM changed
            """
        ),
        {
            "id": endpoint_id,
            "url": url,
            "event_types": list(event_types) if event_types is not None else None,
            "enabled": enabled,
            "now": now,
        },
    )
    return result.first() is not None


async def replace_secret(
    conn: Connection, *, endpoint_id: int, secret: bytes, keep_until: datetime, now: datetime
) -> bool:
    """A new signing secret; the one it replaces still signs until ``keep_until``."""
    result = await conn.execute(
        sql(
            """
            UPDATE webhook_endpoint SET previous_secret = secret,
                previous_secret_until = :keep_until, secret = :secret, updated_at = :now
            WHERE id = :id AND deleted_at IS NULL
            RETURNING id
            """
        ),
        {"id": endpoint_id, "secret": secret, "keep_until": keep_until, "now": now},
    )
    return result.first() is not None


async def delete_endpoint(conn: Connection, *, endpoint_id: int, now: datetime) -> bool:
    """An endpoint is deleted by marking it (its deliveries keep their history until
    retention purges them); nothing more is queued or sent to it."""
    result = await conn.execute(
        sql(
            "UPDATE webhook_endpoint SET deleted_at = :now, status = 'DISABLED',"
            " disabled_reason = 'deleted', updated_at = :now"
            " WHERE id = :id AND deleted_at IS NULL RETURNING id"
        ),
        {"id": endpoint_id, "now": now},
    )
    return result.first() is not None


async def disable_endpoint(
    conn: Connection, *, endpoint_id: int, reason: str, now: datetime
) -> None:
    await conn.execute(
        sql(
            "UPDATE webhook_endpoint SET status = 'DISABLED', disabled_reason = :reason,"
            " updated_at = :now WHERE id = :id AND status = 'ENABLED'"
        ),
        {"id": endpoint_id, "reason": reason[:300], "now": now},
    )


async def ping(conn: Connection, *, endpoint_id: int, at: datetime) -> int:
    """Queue a webhook.ping for one endpoint (a database function checks the caller
    may see it); the event's id."""
    result = await conn.execute(
        sql("SELECT exchange_ping_endpoint(:id, :at)"), {"id": endpoint_id, "at": at}
    )
    return int(result.scalar_one())


# --- deliveries -----------------------------------------------------------------------


async def deliveries(
    conn: Connection,
    *,
    endpoint_id: int | None = None,
    delivery_ids: Sequence[int] | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Row]:
    """Deliveries the caller may see, newest first."""
    result = await conn.execute(
        sql(
            f"SELECT {_DELIVERY} FROM webhook_delivery d"
            " WHERE (CAST(:endpoint AS bigint) IS NULL OR d.endpoint_id = :endpoint)"
            " AND (CAST(:ids AS bigint[]) IS NULL OR d.id = ANY(CAST(:ids AS bigint[])))"
            " AND (CAST(:status AS text) IS NULL OR d.status = :status)"
            " AND (CAST(:before AS bigint) IS NULL OR d.id < :before)"
            " ORDER BY d.id DESC LIMIT :limit"
        ),
        {
            "endpoint": endpoint_id,
            "ids": list(delivery_ids) if delivery_ids is not None else None,
            "status": status,
            "before": before_id,
            "limit": limit,
        },
    )
    return list(result.all())


async def redeliver(conn: Connection, *, delivery_id: int, now: datetime) -> bool:
    """Send a delivered or failed delivery again, now (same event id)."""
    result = await conn.execute(
        sql(
            "UPDATE webhook_delivery SET status = 'PENDING', next_attempt_at = :now,"
            " leased_until = NULL, first_attempt_at = NULL, delivered_at = NULL"
            " WHERE id = :id AND status <> 'PENDING' RETURNING id"
        ),
        {"id": delivery_id, "now": now},
    )
    return result.first() is not None


async def fan_out(conn: Connection, *, now: datetime, limit: int) -> int:
    """Queue deliveries for the oldest events not yet fanned out: a transaction's or a
    partner's event to that partner's endpoints, a member's event to the endpoints of
    every partner linked to the member, every event to the operators' endpoints, each
    for the endpoints subscribed to its type. A disabled endpoint's deliveries wait
    (sent once it is enabled again, or purged with the rest after the retention
    period). Several workers may run it at once."""
    result = await conn.execute(sql(_FAN_OUT), {"now": now, "limit": limit})
    return int(result.scalar_one())


_FAN_OUT = """
WITH batch AS (
    SELECT id, type, partner_id, member_id FROM event_outbox
    WHERE fanned_out_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
), queued AS (
    INSERT INTO webhook_delivery (endpoint_id, event_id, event_type, member_key, status,
                                  next_attempt_at, created_at)
    SELECT ep.id, b.id, b.type, coalesce(b.member_id, 0), 'PENDING', :now, :now
    FROM batch b JOIN webhook_endpoint ep
      ON ep.deleted_at IS NULL
     AND (b.type = ANY(ep.event_types) OR '*' = ANY(ep.event_types))
     AND (ep.partner_id IS NULL
          OR ep.partner_id = b.partner_id
          OR (b.partner_id IS NULL AND b.member_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM member_link l
                WHERE l.member_id = b.member_id AND l.partner_id = ep.partner_id)))
    ORDER BY b.id, ep.id
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    RETURNING 1
), marked AS (
    UPDATE event_outbox o SET fanned_out_at = :now FROM batch WHERE o.id = batch.id
    RETURNING 1
)
SELECT count(*) FROM marked
"""


async def claim(
    conn: Connection,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    per_endpoint: int,
    held: Mapping[int, int],
) -> list[Row]:
    """Lease the deliveries that are due, the oldest pending one of each endpoint and
    member at a time (in order per endpoint and member), at most ``per_endpoint`` of one
    endpoint less the ``held`` ones (endpoint -> leases this worker still holds: a slow
    receiver cannot take every slot), skipping what another worker holds; with what
    sending them needs, the receiving partner's own ref for the member among it."""
    result = await conn.execute(
        sql(_CLAIM),
        {
            "now": now,
            "until": now + lease,
            "limit": limit,
            "per_endpoint": per_endpoint,
            "held": list(held),
            "counts": list(held.values()),
        },
    )
    return list(result.all())


# The head of each endpoint's and member's queue (its oldest pending delivery) is found by
# one ordered pass over the pending index per enabled endpoint (DISTINCT ON), not by
# asking, for every pending delivery, whether an older one waits. `due` locks the chosen
# rows by id and checks them again once locked (another worker may have leased or
# finished them meanwhile); it says "not DELIVERED or FAILED" rather than "PENDING" (the
# same, by the status check) so the planner cannot answer it from the pending index:
# its statistics, gathered while nothing was pending, would have it believe that index
# empty and scan all of it once per candidate. Both were seen with a backlog of 3,000
# (the probe per pending delivery of the previous claim took 4.3 s in such a plan).
_CLAIM = """
WITH heads AS (
    SELECT h.id, h.endpoint_id, h.next_attempt_at
    FROM webhook_endpoint ep
    CROSS JOIN LATERAL (
        SELECT DISTINCT ON (d.member_key) d.id, d.endpoint_id, d.next_attempt_at,
               d.leased_until
        FROM webhook_delivery d
        WHERE d.endpoint_id = ep.id AND d.status = 'PENDING'
        ORDER BY d.member_key, d.event_id
    ) h
    WHERE ep.status = 'ENABLED' AND ep.deleted_at IS NULL
      AND h.next_attempt_at <= :now AND (h.leased_until IS NULL OR h.leased_until <= :now)
), candidates AS (
    SELECT id FROM (
        SELECT heads.id, heads.next_attempt_at,
               row_number() OVER (PARTITION BY heads.endpoint_id
                                  ORDER BY heads.next_attempt_at, heads.id) AS n,
               :per_endpoint - coalesce(held.count, 0) AS room
        FROM heads
        LEFT JOIN unnest(CAST(:held AS bigint[]), CAST(:counts AS integer[]))
             AS held(endpoint_id, count) ON held.endpoint_id = heads.endpoint_id
    ) ranked
    WHERE n <= room
    ORDER BY next_attempt_at, id
    LIMIT :limit
), due AS (
    SELECT d.id FROM webhook_delivery d
    WHERE d.id = ANY(ARRAY(SELECT id FROM candidates))
      AND d.status NOT IN ('DELIVERED', 'FAILED')
      AND (d.leased_until IS NULL OR d.leased_until <= :now)
    FOR UPDATE OF d SKIP LOCKED
), leased AS (
    UPDATE webhook_delivery d SET leased_until = :until,
        first_attempt_at = coalesce(d.first_attempt_at, :now)
    FROM due, webhook_endpoint ep, event_outbox o
    WHERE d.id = due.id AND ep.id = d.endpoint_id AND o.id = d.event_id
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.first_attempt_at,
              ep.partner_id AS endpoint_partner_id, ep.url, ep.secret, ep.previous_secret,
              ep.previous_secret_until, o.type, o.occurred_at, o.member_id, o.facts
)
SELECT leased.*, l.member_ref FROM leased
LEFT JOIN member_link l
       ON l.partner_id = leased.endpoint_partner_id AND l.member_id = leased.member_id
"""


async def delivered(conn: Connection, *, delivery_id: int, status_code: int, now: datetime) -> None:
    await conn.execute(
        sql(
            "UPDATE webhook_delivery SET status = 'DELIVERED', attempts = attempts + 1,"
            " last_status_code = :code, last_error = NULL, delivered_at = :now,"
            " leased_until = NULL WHERE id = :id"
        ),
        {"id": delivery_id, "code": status_code, "now": now},
    )


async def delivered_many(
    conn: Connection, *, delivered: Sequence[tuple[int, int]], now: datetime
) -> None:
    """Deliveries (id, HTTP status) a 2xx came back for, in one statement."""
    if not delivered:
        return
    await conn.execute(
        sql(
            """
            UPDATE webhook_delivery d SET status = 'DELIVERED', attempts = d.attempts + 1,
                last_status_code = x.code, last_error = NULL, delivered_at = :now,
                leased_until = NULL
            FROM unnest(CAST(:ids AS bigint[]), CAST(:codes AS integer[])) AS x(id, code)
            WHERE d.id = x.id
            """
        ),
        {"ids": [i for i, _ in delivered], "codes": [c for _, c in delivered], "now": now},
    )


async def failed_attempt(
    conn: Connection,
    *,
    delivery_id: int,
    status_code: int | None,
    error: str,
    next_attempt_at: datetime | None,
) -> None:
    """An attempt that did not deliver: tried again at ``next_attempt_at``, or (None)
    given up (FAILED)."""
    await conn.execute(
        sql(
            """
            UPDATE webhook_delivery SET attempts = attempts + 1, last_status_code = :code,
                last_error = :error, leased_until = NULL,
                status = CASE WHEN CAST(:next AS timestamptz) IS NULL THEN 'FAILED'
                              ELSE 'PENDING' END,
                next_attempt_at = coalesce(CAST(:next AS timestamptz), next_attempt_at)
            WHERE id = :id
            """
        ),
        {"id": delivery_id, "code": status_code, "error": error[:500], "next": next_attempt_at},
    )


# --- notices, retention, erasure, figures ---------------------------------------------


async def expiring_notices(
    conn: Connection, *, now: datetime, within: timedelta, limit: int
) -> int:
    """points.expiring for lots that expire within ``within`` and still hold points,
    once per lot (the notice row remembers it); how many were written."""
    result = await conn.execute(
        sql(
            """
            WITH due AS (
                SELECT l.id, l.member_id, l.remaining, l.expires_at, l.issuer_partner_id
                FROM ledger_lot l
                WHERE l.expires_at > :now AND l.expires_at <= :until AND l.remaining > 0
                  AND NOT EXISTS (SELECT 1 FROM expiring_notice n WHERE n.lot_id = l.id)
                ORDER BY l.expires_at, l.id LIMIT :limit
            ), events AS (
                INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
                SELECT 'points.expiring', :now, NULL, due.member_id,
                       jsonb_strip_nulls(jsonb_build_object('lot', due.id,
                           'points', due.remaining, 'expiresAt', due.expires_at,
                           'issuer', due.issuer_partner_id))
                FROM due ORDER BY due.member_id, due.expires_at
                RETURNING id, (facts ->> 'lot')::bigint AS lot_id
            )
            INSERT INTO expiring_notice (lot_id, event_id)
            SELECT lot_id, id FROM events
            ON CONFLICT (lot_id) DO NOTHING
            RETURNING lot_id
            """
        ),
        {"now": now, "until": now + within, "limit": limit},
    )
    return len(result.all())


async def purge(conn: Connection, *, before: datetime, limit: int) -> int:
    """Deliveries made before ``before`` (delivered, failed, or still waiting for an
    endpoint that stayed disabled), then the events they were for; how many rows went."""
    result = await conn.execute(
        sql(
            """
            WITH old_deliveries AS (
                DELETE FROM webhook_delivery
                WHERE id IN (SELECT id FROM webhook_delivery WHERE created_at < :before
                             ORDER BY id LIMIT :limit)
                RETURNING event_id
            ), old_events AS (
                DELETE FROM event_outbox o
                WHERE o.id IN (SELECT e.id FROM event_outbox e
                               WHERE e.created_at < :before AND e.fanned_out_at IS NOT NULL
                                 AND NOT EXISTS (SELECT 1 FROM webhook_delivery d
                                                 WHERE d.event_id = e.id
                                                   AND d.created_at >= :before)
                               ORDER BY e.id LIMIT :limit)
                RETURNING o.id
            ), notices AS (
                DELETE FROM expiring_notice n USING old_events e WHERE n.event_id = e.id
            )
            SELECT (SELECT count(*) FROM old_events) + (SELECT count(*) FROM old_deliveries)
            """
        ),
        {"before": before, "limit": limit},
    )
    return int(result.scalar_one())


async def forget_member(conn: Connection, *, member_id: int) -> int:
    """GDPR erasure: every event naming the member, and its deliveries, go."""
    result = await conn.execute(
        sql(
            """
            WITH events AS (
                SELECT id FROM event_outbox
                WHERE member_id = :member
                   OR (facts ->> 'counterparty')::bigint = :member
            ), deliveries AS (
                DELETE FROM webhook_delivery d USING events e WHERE d.event_id = e.id
            ), notices AS (
                DELETE FROM expiring_notice n USING events e WHERE n.event_id = e.id
            )
            DELETE FROM event_outbox o USING events e WHERE o.id = e.id RETURNING o.id
            """
        ),
        {"member": member_id},
    )
    return len(result.all())


async def figures(conn: Connection) -> Row:
    """Deliveries by status, events waiting to be fanned out, endpoints by status."""
    result = await conn.execute(
        sql(
            """
            SELECT
              (SELECT count(*) FROM webhook_delivery WHERE status = 'PENDING') AS pending,
              (SELECT count(*) FROM webhook_delivery WHERE status = 'DELIVERED') AS delivered,
              (SELECT count(*) FROM webhook_delivery WHERE status = 'FAILED') AS failed,
              (SELECT count(*) FROM event_outbox WHERE fanned_out_at IS NULL) AS unfanned,
              (SELECT count(*) FROM webhook_endpoint
               WHERE deleted_at IS NULL AND status = 'ENABLED') AS enabled_endpoints,
              (SELECT count(*) FROM webhook_endpoint
               WHERE deleted_at IS NULL AND status = 'DISABLED') AS disabled_endpoints
            """
        )
    )
    return result.one()
