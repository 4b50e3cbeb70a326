"""Recording an operator's action in the transaction of the change, and reading the log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from exchange.audit import repository
from exchange.audit.models import Action, Actor, AuditEntry
from exchange.kit.db import Connection
from exchange.kit.errors import InvalidInput
from exchange.kit.invariant import invariant

MAX_ENTRIES = 10_000
#: A detail whose name contains one of these is refused: the log is append-only, so a
#: secret or a member's personal data written to it could never be taken out again.
FORBIDDEN_DETAILS = ("secret", "password", "token", "private", "ciphertext", "email", "phone")

Detail = str | int | bool | Decimal | None | list[str]


def _plain(details: Mapping[str, Detail]) -> dict[str, object]:
    plain: dict[str, object] = {}
    for name, value in details.items():
        lowered = name.lower()
        invariant(
            not any(word in lowered for word in FORBIDDEN_DETAILS),
            f"audit detail {name!r} may hold a secret or personal data",
        )
        plain[name] = str(value) if isinstance(value, Decimal) else value
    return plain


async def record(
    conn: Connection,
    *,
    actor: Actor,
    action: Action,
    subject: str,
    details: Mapping[str, Detail] | None = None,
    at: datetime | None = None,
) -> int:
    """Write one entry in the caller's transaction (it commits or rolls back with the
    change it records); ``at`` defaults to the transaction's time. Returns its id."""
    return await repository.insert(
        conn,
        actor=actor.id,
        origin=actor.origin or "unknown",
        action=str(action),
        subject=subject,
        details=_plain(details or {}),
        at=at,
    )


async def entries(
    conn: Connection,
    *,
    since: datetime | None = None,
    action: Action | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first (as the caller may see them: operators only)."""
    if not 1 <= limit <= MAX_ENTRIES:
        raise InvalidInput(f"limit must be 1 to {MAX_ENTRIES}", field=["limit"])
    rows = await repository.newest(
        conn, since=since, action=str(action) if action else None, limit=limit
    )
    return [
        AuditEntry(
            id=int(row.id),
            at=row.at,
            actor=row.actor,
            origin=row.origin,
            action=Action(row.action),
            subject=row.subject,
            details=dict(row.details),
        )
        for row in rows
    ]
