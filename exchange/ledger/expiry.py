"""Expiry: lots past ``expires_at`` go to coalition breakage, attributed to their issuer
through the consumption rows; expired holds are released. Work comes in batches so the
edge can commit each batch in its own transaction and show progress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from exchange.kit.db import Connection
from exchange.ledger import execution, repository
from exchange.ledger.holds import release_expired_holds
from exchange.ledger.models import EntryKind, EntryResult, ExpiryResult
from exchange.ledger.plans import EntryPlan
from exchange.ledger.spending import Wallets, read_wallets, sweep

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class Expire:
    """One EXPIRY entry per member with lots past their expiry."""

    kind: EntryKind = EntryKind.EXPIRY
    keyed: bool = False

    async def read(self, conn: Connection, requests: Sequence[int], now: datetime) -> Wallets:
        return await read_wallets(conn, requests)

    def plan(self, state: Wallets, request: int, now: datetime) -> list[EntryPlan]:
        swept = sweep(state, request, now)
        return [swept] if swept is not None else []


async def expire_batch(
    conn: Connection, *, as_of: datetime, limit: int = DEFAULT_BATCH
) -> ExpiryResult:
    """Expire the lots of up to ``limit`` members; an empty result means all done."""
    member_ids = await repository.members_with_expired_lots(conn, as_of=as_of, limit=limit)
    if not member_ids:
        return ExpiryResult(members=0, entries=0, points=0)
    outcomes = await execution.execute(conn, Expire(), member_ids, now=as_of)
    expired = [outcome for outcome in outcomes if isinstance(outcome, EntryResult)]
    return ExpiryResult(
        members=len(member_ids),
        entries=len(expired),
        points=sum(result.points for result in expired),
    )


async def release_holds_batch(
    conn: Connection, *, as_of: datetime, limit: int = DEFAULT_BATCH
) -> int:
    return await release_expired_holds(conn, as_of=as_of, limit=limit)
