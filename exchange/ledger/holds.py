"""Point-of-sale holds: HOLD reserves points (wallet -> held, lots consumed into the
hold), CAPTURE turns all or part of a hold into a redemption and gives the rest back,
RELEASE gives it all back; an expired hold is released by the sweep."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import InvalidInput, NotFound
from exchange.kit.invariant import invariant
from exchange.kit.units import positive_points
from exchange.ledger import repository
from exchange.ledger.errors import HoldNotActive
from exchange.ledger.idempotency import begin_entry, check_key
from exchange.ledger.models import (
    DEFAULT_HOLD_TTL_SECONDS,
    MAX_HOLD_TTL_SECONDS,
    AccountKind,
    ConsumptionKind,
    EntryKind,
    EntryResult,
    Hold,
    HoldStatus,
    LotAllocation,
)
from exchange.ledger.service import check_reference, partner_account, replayed, spend


def _hold(row: Row[Any]) -> Hold:
    return Hold(
        id=int(row.id),
        member_id=int(row.member_id),
        partner_id=int(row.partner_id),
        points=int(row.points),
        captured_points=int(row.captured_points),
        status=HoldStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


async def get_hold(conn: AsyncConnection, *, hold_id: int) -> Hold | None:
    row = await repository.hold_by_id(conn, hold_id=hold_id)
    return _hold(row) if row is not None else None


async def hold(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    partner_id: int,
    member_id: int,
    points: int,
    now: datetime,
    ttl_seconds: int = DEFAULT_HOLD_TTL_SECONDS,
    reference: str | None = None,
) -> EntryResult:
    """Reserve points for a pending purchase: wallet -n, held +n, until captured,
    released or expired."""
    points = positive_points(points)
    check_key(client_id, idempotency_key)
    check_reference(reference)
    if isinstance(ttl_seconds, bool) or not 1 <= ttl_seconds <= MAX_HOLD_TTL_SECONDS:
        raise InvalidInput(
            f"ttlSeconds must be between 1 and {MAX_HOLD_TTL_SECONDS}", field=["ttlSeconds"]
        )
    await partner_account(conn, partner_id, AccountKind.PARTNER_REDEEMED)
    request = {
        "partner": partner_id,
        "member": member_id,
        "points": points,
        "ttl": ttl_seconds,
        "reference": reference,
    }
    started = await begin_entry(
        conn,
        kind=EntryKind.HOLD,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request=request,
        points=points,
        created_at=now,
        effective_at=now,
        partner_id=partner_id,
        member_id=member_id,
        reference=reference,
    )
    if started.replay is not None:
        return await replayed(conn, started)
    if not await repository.member_exists(conn, member_id=member_id):
        raise NotFound(f"member {member_id} does not exist", field=["memberId"])
    hold_id = await repository.insert_hold(
        conn,
        member_id=member_id,
        partner_id=partner_id,
        points=points,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        hold_entry_id=started.entry_id,
    )
    wallet_id, balance, _ = await spend(
        conn,
        entry_id=started.entry_id,
        member_id=member_id,
        points=points,
        now=now,
        kind=ConsumptionKind.HOLD,
        hold_id=hold_id,
    )
    held_id = await repository.change_held(conn, member_id=member_id, points=points)
    await repository.insert_postings(
        conn, entry_id=started.entry_id, legs=[(wallet_id, -points), (held_id, points)]
    )
    return EntryResult(
        entry_id=started.entry_id,
        kind=EntryKind.HOLD,
        points=points,
        member_id=member_id,
        partner_id=partner_id,
        wallet_balance=balance,
        hold_id=hold_id,
    )


async def _active_hold(
    conn: AsyncConnection,
    *,
    hold_id: int,
    partner_id: int | None,
    now: datetime,
    allow_expired: bool = False,
) -> Row[Any]:
    row = await repository.hold_by_id(conn, hold_id=hold_id, for_update=True)
    if row is None or (partner_id is not None and row.partner_id != partner_id):
        raise NotFound(f"hold {hold_id} does not exist", field=["holdId"])
    if row.status != HoldStatus.ACTIVE:
        raise HoldNotActive(f"hold {hold_id} is {row.status.lower()}", field=["holdId"])
    if row.expires_at <= now and not allow_expired:
        raise HoldNotActive(f"hold {hold_id} has expired", field=["holdId"])
    return row


async def _close(
    conn: AsyncConnection,
    *,
    row: Row[Any],
    entry_id: int,
    captured: int,
    status: HoldStatus,
) -> int | None:
    """Settle a hold's reservations: ``captured`` points become a redemption at the
    hold's partner (oldest expiry first), the rest go back to their lots and the wallet.
    Returns the wallet balance after, or None when nothing went back."""
    reservations = await repository.hold_reservations(conn, hold_id=row.id)
    reserved = sum(int(r.remaining) for r in reservations)
    invariant(reserved == row.points, f"hold {row.id} reserves {reserved}, not {row.points}")
    balance = None
    returned = int(row.points) - captured
    legs: list[tuple[int, int]] = []
    if not returned:
        # Lots move below even when nothing returns to the wallet, so take its lock first.
        await repository.lock_wallets(conn, member_ids=[row.member_id])
    if returned:
        # Lock order everywhere: wallet, then held account, then lots (docs/decisions/0002).
        wallet = await repository.credit_wallet(conn, member_id=row.member_id, points=returned)
        invariant(wallet is not None, "a hold's member has a wallet")
        assert wallet is not None
        legs.append((int(wallet.id), returned))
        balance = int(wallet.balance)
    held_id = await repository.change_held(conn, member_id=row.member_id, points=-row.points)
    legs.insert(0, (held_id, -int(row.points)))
    # Unreserve every lot, then redeem the captured part: each lot's remaining moves by
    # exactly what goes back to the wallet.
    unreserve = [
        LotAllocation(r.id, r.issuer_partner_id, -int(r.remaining), r.earned_at, r.expires_at)
        for r in reservations
    ]
    await repository.record_consumptions(
        conn,
        entry_id=entry_id,
        kind=ConsumptionKind.HOLD,
        allocations=unreserve,
        hold_id=row.id,
    )
    if captured:
        taken = repository.allocate(reservations, captured)
        await repository.record_consumptions(
            conn,
            entry_id=entry_id,
            kind=ConsumptionKind.REDEEM,
            allocations=taken,
            redeemer_partner_id=row.partner_id,
            hold_id=row.id,
        )
        redeemed = await partner_account(conn, row.partner_id, AccountKind.PARTNER_REDEEMED)
        await repository.change_sharded_balance(conn, account_id=redeemed.id, points=captured)
        legs.append((int(redeemed.id), captured))
    await repository.insert_postings(conn, entry_id=entry_id, legs=legs)
    await repository.close_hold(
        conn, hold_id=row.id, status=status, captured_points=captured, closing_entry_id=entry_id
    )
    return balance


async def capture(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    partner_id: int,
    hold_id: int,
    now: datetime,
    points: int | None = None,
) -> EntryResult:
    """Redeem all of a hold (default) or part of it; the rest goes back to the wallet."""
    check_key(client_id, idempotency_key)
    if points is not None:
        points = positive_points(points)
    row = await repository.hold_by_id(conn, hold_id=hold_id)
    if row is None or row.partner_id != partner_id:
        raise NotFound(f"hold {hold_id} does not exist", field=["holdId"])
    captured = int(points if points is not None else row.points)
    if captured > row.points:
        raise InvalidInput(
            f"points must be at most the {row.points} points the hold reserves",
            field=["points"],
        )
    started = await begin_entry(
        conn,
        kind=EntryKind.CAPTURE,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request={"partner": partner_id, "hold": hold_id, "points": points},
        points=captured,
        created_at=now,
        effective_at=now,
        partner_id=partner_id,
        member_id=int(row.member_id),
        hold_id=hold_id,
    )
    if started.replay is not None:
        return await replayed(conn, started)
    row = await _active_hold(conn, hold_id=hold_id, partner_id=partner_id, now=now)
    balance = await _close(
        conn, row=row, entry_id=started.entry_id, captured=captured, status=HoldStatus.CAPTURED
    )
    if balance is None:
        balance = (await repository.member_balances(conn, member_id=row.member_id)).get(
            AccountKind.MEMBER_WALLET
        )
    return EntryResult(
        entry_id=started.entry_id,
        kind=EntryKind.CAPTURE,
        points=captured,
        member_id=int(row.member_id),
        partner_id=partner_id,
        wallet_balance=balance,
        hold_id=hold_id,
    )


async def release(
    conn: AsyncConnection, *, partner_id: int | None, hold_id: int, now: datetime
) -> EntryResult:
    """Give a hold's points back to the wallet. ``partner_id`` None: the operator."""
    row = await _active_hold(
        conn, hold_id=hold_id, partner_id=partner_id, now=now, allow_expired=True
    )
    return await _release_row(conn, row=row, now=now, status=HoldStatus.RELEASED)


async def _release_row(
    conn: AsyncConnection, *, row: Row[Any], now: datetime, status: HoldStatus
) -> EntryResult:
    started = await begin_entry(
        conn,
        kind=EntryKind.RELEASE,
        client_id=None,
        idempotency_key=None,
        request={},
        points=int(row.points),
        created_at=now,
        effective_at=now,
        partner_id=int(row.partner_id),
        member_id=int(row.member_id),
        hold_id=int(row.id),
        metadata={"reason": "expired"} if status == HoldStatus.EXPIRED else None,
    )
    balance = await _close(conn, row=row, entry_id=started.entry_id, captured=0, status=status)
    return EntryResult(
        entry_id=started.entry_id,
        kind=EntryKind.RELEASE,
        points=int(row.points),
        member_id=int(row.member_id),
        partner_id=int(row.partner_id),
        wallet_balance=balance,
        hold_id=int(row.id),
    )


async def release_expired_holds(conn: AsyncConnection, *, as_of: datetime, limit: int) -> int:
    """Release up to ``limit`` holds past their expiry; returns how many."""
    hold_ids = await repository.expired_active_holds(conn, as_of=as_of, limit=limit)
    for hold_id in hold_ids:
        row = await repository.hold_by_id(conn, hold_id=hold_id, for_update=True)
        invariant(row is not None and row.status == HoldStatus.ACTIVE, "locked hold is active")
        assert row is not None
        await _release_row(conn, row=row, now=as_of, status=HoldStatus.EXPIRED)
    return len(hold_ids)
