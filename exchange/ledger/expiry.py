"""Expiry: lots past ``expires_at`` go to coalition breakage, attributed to their issuer
through the consumption rows; expired holds are released. Work comes in batches so the
edge can commit each batch in its own transaction and show progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.ledger import repository
from exchange.ledger.holds import release_expired_holds
from exchange.ledger.models import AccountKind, ExpiryResult
from exchange.ledger.service import expire_member_lots

DEFAULT_BATCH = 500


async def expire_batch(
    conn: AsyncConnection, *, as_of: datetime, limit: int = DEFAULT_BATCH
) -> ExpiryResult:
    """Expire the lots of up to ``limit`` members; an empty result means all done."""
    member_ids = await repository.members_with_expired_lots(conn, as_of=as_of, limit=limit)
    entries = points = 0
    for member_id in member_ids:
        await repository.lock_wallets(conn, member_ids=[member_id])
        lots = await repository.expired_lots(conn, member_id=member_id, as_of=as_of)
        expired = await expire_member_lots(
            conn, member_id=member_id, lots=lots, now=as_of, defer_breakage=True
        )
        if expired:
            entries += 1
            points += expired
    if points:
        # One shard update after all the batch's wallets: the lock order stays
        # wallet -> shard, as in every spend (docs/decisions/0002).
        breakage = await repository.coalition_account_id(conn, kind=AccountKind.COALITION_BREAKAGE)
        await repository.change_sharded_balance(conn, account_id=breakage, points=points)
    return ExpiryResult(members=len(member_ids), entries=entries, points=points)


async def release_holds_batch(
    conn: AsyncConnection, *, as_of: datetime, limit: int = DEFAULT_BATCH
) -> int:
    return await release_expired_holds(conn, as_of=as_of, limit=limit)
