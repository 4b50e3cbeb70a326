"""Member-to-member transfers (lots move with their issuer and expiry) and operator
adjustments (against the coalition's adjustments account)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import InvalidInput, NotFound
from exchange.kit.units import MAX_POINTS_PER_OPERATION, positive_points
from exchange.ledger import repository
from exchange.ledger.idempotency import begin_entry, check_key
from exchange.ledger.models import (
    DEFAULT_POINTS_LIFETIME_DAYS,
    AccountKind,
    ConsumptionKind,
    EntryKind,
    EntryResult,
    LotOrigin,
)
from exchange.ledger.service import check_reference, replayed, spend


async def transfer(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    from_member_id: int,
    to_member_id: int,
    points: int,
    now: datetime,
    reference: str | None = None,
) -> EntryResult:
    """Gift points: sender wallet -n, recipient wallet +n; each consumed lot of the sender
    becomes a lot of the recipient with the same issuer, earned date and expiry."""
    points = positive_points(points)
    check_key(client_id, idempotency_key)
    check_reference(reference)
    if from_member_id == to_member_id:
        raise InvalidInput("a member can't transfer points to themselves", field=["to"])
    started = await begin_entry(
        conn,
        kind=EntryKind.TRANSFER,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request={
            "from": from_member_id,
            "to": to_member_id,
            "points": points,
            "reference": reference,
        },
        points=points,
        created_at=now,
        effective_at=now,
        member_id=from_member_id,
        counterparty_member_id=to_member_id,
        reference=reference,
    )
    if started.replay is not None:
        return await replayed(conn, started)
    wallets = await repository.lock_wallets(conn, member_ids=[from_member_id, to_member_id])
    if to_member_id not in wallets:
        raise NotFound(f"member {to_member_id} does not exist", field=["to"])
    sender_wallet_id, balance, allocations = await spend(
        conn,
        entry_id=started.entry_id,
        member_id=from_member_id,
        points=points,
        now=now,
        kind=ConsumptionKind.TRANSFER,
    )
    recipient = await repository.credit_wallet(conn, member_id=to_member_id, points=points)
    assert recipient is not None
    for allocation in allocations:
        await repository.insert_lot(
            conn,
            member_id=to_member_id,
            issuer_partner_id=allocation.issuer_partner_id,
            origin=LotOrigin.TRANSFER,
            entry_id=started.entry_id,
            source_lot_id=allocation.lot_id,
            amount=allocation.points,
            earned_at=allocation.earned_at,
            expires_at=allocation.expires_at,
        )
    await repository.insert_postings(
        conn,
        entry_id=started.entry_id,
        legs=[(sender_wallet_id, -points), (int(recipient.id), points)],
    )
    return EntryResult(
        entry_id=started.entry_id,
        kind=EntryKind.TRANSFER,
        points=points,
        member_id=from_member_id,
        partner_id=None,
        wallet_balance=balance,
    )


async def adjust(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    member_id: int,
    points: int,
    reason: str,
    now: datetime,
    lifetime_days: int = DEFAULT_POINTS_LIFETIME_DAYS,
) -> EntryResult:
    """An operator's correction: positive points credit the member (a coalition-issued
    lot, no partner), negative points debit the wallet (lots consumed as usual)."""
    check_key(client_id, idempotency_key)
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise InvalidInput("points must be a non-zero whole number", field=["points"])
    if abs(points) > MAX_POINTS_PER_OPERATION:
        positive_points(abs(points))
    if not reason or len(reason) > 500:
        raise InvalidInput("a reason of at most 500 characters is required", field=["reason"])
    magnitude = abs(points)
    started = await begin_entry(
        conn,
        kind=EntryKind.ADJUSTMENT,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request={"member": member_id, "points": points, "reason": reason},
        points=magnitude,
        created_at=now,
        effective_at=now,
        member_id=member_id,
        metadata={"reason": reason, "direction": "credit" if points > 0 else "debit"},
    )
    if started.replay is not None:
        return await replayed(conn, started)
    adjustments = await repository.coalition_account_id(
        conn, kind=AccountKind.COALITION_ADJUSTMENTS
    )
    if points > 0:
        wallet = await repository.credit_wallet(conn, member_id=member_id, points=points)
        if wallet is None:
            raise NotFound(f"member {member_id} does not exist", field=["memberId"])
        wallet_id, balance = int(wallet.id), int(wallet.balance)
        await repository.insert_lot(
            conn,
            member_id=member_id,
            issuer_partner_id=None,
            origin=LotOrigin.ADJUSTMENT,
            entry_id=started.entry_id,
            amount=points,
            earned_at=now,
            expires_at=now + timedelta(days=lifetime_days),
        )
    else:
        wallet_id, balance, _ = await spend(
            conn,
            entry_id=started.entry_id,
            member_id=member_id,
            points=magnitude,
            now=now,
            kind=ConsumptionKind.ADJUSTMENT,
        )
    await repository.change_sharded_balance(conn, account_id=adjustments, points=-points)
    await repository.insert_postings(
        conn, entry_id=started.entry_id, legs=[(wallet_id, points), (adjustments, -points)]
    )
    return EntryResult(
        entry_id=started.entry_id,
        kind=EntryKind.ADJUSTMENT,
        points=magnitude,
        member_id=member_id,
        partner_id=None,
        wallet_balance=balance,
    )
