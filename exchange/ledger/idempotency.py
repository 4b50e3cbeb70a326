"""Idempotency: every points-moving request carries ``(client, idempotency_key)``.

The key is stored on the entry itself under a unique index, and the entry is inserted
first with ``ON CONFLICT DO NOTHING``. A concurrent duplicate waits on the unique index
until the first transaction ends, then sees its entry: the same input replays the
original result, a different input fails with IDEMPOTENCY_KEY_REUSED. A request that
failed rolled back its entry, so its key is free to be retried. Keys never expire.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import InvalidInput
from exchange.kit.invariant import invariant
from exchange.ledger import repository
from exchange.ledger.errors import IdempotencyKeyReused
from exchange.ledger.models import MAX_IDEMPOTENCY_KEY_LENGTH, EntryKind


def request_hash(kind: EntryKind, request: dict[str, Any]) -> bytes:
    """A stable digest of what was asked, to tell a replay from a reused key."""
    canonical = json.dumps(
        {"kind": str(kind), **request}, sort_keys=True, default=str, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).digest()


def encode_metadata(metadata: dict[str, Any] | None) -> str:
    return json.dumps(metadata or {}, sort_keys=True, default=str)


def check_key(client_id: str, idempotency_key: str) -> None:
    if not client_id:
        raise InvalidInput("a client is required", field=["clientId"])
    if not idempotency_key or not idempotency_key.strip():
        raise InvalidInput("idempotencyKey must not be empty", field=["idempotencyKey"])
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"idempotencyKey must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            field=["idempotencyKey"],
        )


@dataclass(frozen=True)
class Started:
    """Either a new entry to fill with postings, or the entry an earlier request made."""

    entry_id: int
    replay: Row[Any] | None


async def begin_entry(
    conn: AsyncConnection,
    *,
    kind: EntryKind,
    client_id: str | None,
    idempotency_key: str | None,
    request: dict[str, Any],
    points: int,
    created_at: datetime,
    effective_at: datetime,
    partner_id: int | None = None,
    member_id: int | None = None,
    counterparty_member_id: int | None = None,
    reference: str | None = None,
    target_entry_id: int | None = None,
    hold_id: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Started:
    digest = request_hash(kind, request) if idempotency_key is not None else None
    entry_id = await repository.insert_entry(
        conn,
        kind=str(kind),
        partner_id=partner_id,
        member_id=member_id,
        counterparty_member_id=counterparty_member_id,
        points=points,
        client_id=client_id if idempotency_key is not None else None,
        idempotency_key=idempotency_key,
        request_hash=digest,
        reference=reference,
        target_entry_id=target_entry_id,
        hold_id=hold_id,
        created_at=created_at,
        effective_at=effective_at,
        metadata=encode_metadata(metadata),
    )
    if entry_id is not None:
        return Started(entry_id=entry_id, replay=None)
    invariant(client_id is not None and idempotency_key is not None, "conflict needs a key")
    assert client_id is not None
    assert idempotency_key is not None
    existing = await repository.entry_by_key(
        conn, client_id=client_id, idempotency_key=idempotency_key
    )
    invariant(existing is not None, "a conflicting entry must be visible after its commit")
    assert existing is not None
    if bytes(existing.request_hash) != digest:
        raise IdempotencyKeyReused(
            "this idempotencyKey was already used for a different request",
            field=["idempotencyKey"],
        )
    return Started(entry_id=int(existing.id), replay=existing)


async def find_replay(
    conn: AsyncConnection,
    *,
    kind: EntryKind,
    client_id: str,
    idempotency_key: str,
    request: dict[str, Any],
) -> Started | None:
    """Look for an earlier request with this key before doing work whose outcome would
    differ on a replay (a reversal checks what is left of its target)."""
    existing = await repository.entry_by_key(
        conn, client_id=client_id, idempotency_key=idempotency_key
    )
    if existing is None:
        return None
    if bytes(existing.request_hash) != request_hash(kind, request):
        raise IdempotencyKeyReused(
            "this idempotencyKey was already used for a different request",
            field=["idempotencyKey"],
        )
    return Started(entry_id=int(existing.id), replay=existing)
