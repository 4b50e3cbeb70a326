"""All SQL of the audit log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from exchange.kit.db import Connection, Row, sql


async def insert(
    conn: Connection,
    *,
    actor: str,
    origin: str,
    action: str,
    subject: str,
    details: dict[str, Any],
    at: datetime | None,
) -> int:
    result = await conn.execute(
        sql(
            """
            INSERT INTO audit_log (at, actor, origin, action, subject, details)
            VALUES (coalesce(CAST(:at AS timestamptz), now()), :actor, :origin, :action,
                    :subject, CAST(:details AS jsonb))
            RETURNING id
            """
        ),
        {
            "at": at,
            "actor": actor,
            "origin": origin,
            "action": action,
            "subject": subject,
            "details": json.dumps(details, sort_keys=True),
        },
    )
    return int(result.scalar_one())


async def newest(
    conn: Connection, *, since: datetime | None, action: str | None, limit: int
) -> list[Row]:
    """Entries newest first, from ``since`` on, of one action or all."""
    result = await conn.execute(
        sql(
            """
            SELECT id, at, actor, origin, action, subject, details FROM audit_log
            WHERE (CAST(:since AS timestamptz) IS NULL OR at >= :since)
              AND (CAST(:action AS text) IS NULL OR action = :action)
            ORDER BY at DESC, id DESC LIMIT :limit
            """
        ),
        {"since": since, "action": action, "limit": limit},
    )
    return list(result.all())
