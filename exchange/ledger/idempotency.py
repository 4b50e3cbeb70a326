"""Idempotency: every points-moving request carries ``(client, idempotency_key)``.

The key is stored on the entry itself under a unique index, claimed by the one writer
with ``INSERT ... ON CONFLICT DO NOTHING``. :func:`exchange.ledger.execution.execute`
applies the rule for every operation, single or batched:

- a request whose entry was written claimed its key;
- a request whose key was already taken (its entry was not written), and a request that
  failed before it was written, look their key up: an entry with the same request
  digest is replayed (the original result, nothing moves again), an entry with another
  digest fails IDEMPOTENCY_KEY_REUSED, and no entry means the failure stands.

A concurrent duplicate waits on the unique index until the first transaction ends,
then finds the committed entry. A request that failed rolled back its entry, so its key
may be retried. Keys never expire.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from exchange.kit.db import Connection
from exchange.ledger import repository
from exchange.ledger.errors import IdempotencyKeyReused
from exchange.ledger.models import EntryKind, EntryResult
from exchange.ledger.plans import Key
from exchange.ledger.queries import entry_view


class Keyed(Protocol):
    @property
    def idempotency_key(self) -> str: ...

    def fingerprint(self, partner_id: int | None) -> Mapping[str, Any]: ...


def request_hash(kind: EntryKind, request: Mapping[str, Any]) -> bytes:
    """A stable digest of what was asked, to tell a replay from a reused key."""
    canonical = json.dumps(
        {"kind": str(kind), **request}, sort_keys=True, default=str, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).digest()


def key_of(request: Keyed, *, kind: EntryKind, client_id: str, partner_id: int | None) -> Key:
    return Key(
        client_id=client_id,
        idempotency_key=request.idempotency_key,
        digest=request_hash(kind, request.fingerprint(partner_id)),
    )


def reused(field: Sequence[str] = ("idempotencyKey",)) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "this idempotencyKey was already used for a different request", field=list(field)
    )


async def earlier(
    conn: Connection, keys: Sequence[Key]
) -> dict[str, EntryResult | IdempotencyKeyReused]:
    """What earlier requests with these keys (all of one client) decided: the replay of
    their entry, or IDEMPOTENCY_KEY_REUSED when they asked for something else. Keys no
    request used yet are absent."""
    if not keys:
        return {}
    rows = await repository.entries_by_keys(
        conn, client_id=keys[0].client_id, idempotency_keys=[k.idempotency_key for k in keys]
    )
    replays = [rows[k.idempotency_key] for k in keys if k.idempotency_key in rows]
    members = {int(r.member_id) for r in replays if r.member_id is not None}
    balances = await repository.wallet_balances(conn, member_ids=sorted(members))
    holds = await repository.holds_of_entries(
        conn, entry_ids=[int(r.id) for r in replays if r.kind == EntryKind.HOLD]
    )
    decided: dict[str, EntryResult | IdempotencyKeyReused] = {}
    for key in keys:
        row = rows.get(key.idempotency_key)
        if row is None:
            continue
        if bytes(row.request_hash) != key.digest:
            decided[key.idempotency_key] = reused()
            continue
        decided[key.idempotency_key] = EntryResult(
            entry=entry_view(row),
            wallet_balance=balances.get(row.member_id) if row.member_id is not None else None,
            replayed=True,
            hold_id=holds.get(int(row.id), row.hold_id),
        )
    return decided
