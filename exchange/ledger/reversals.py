"""Reversals (returns, refunds): a new entry that undoes all or part of an EARN or of a
redemption (REDEEM or CAPTURE). Entries are never changed; the reversal points back at
its target, and a target can't be reversed for more than what is left of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import InvalidInput, NotFound
from exchange.kit.invariant import invariant
from exchange.kit.units import positive_points
from exchange.ledger import repository
from exchange.ledger.errors import AlreadyReversed, InsufficientPoints, NotReversible
from exchange.ledger.idempotency import begin_entry, check_key, find_replay
from exchange.ledger.models import (
    AccountKind,
    ConsumptionKind,
    EntryKind,
    EntryResult,
    LotAllocation,
)
from exchange.ledger.service import check_reference, partner_account, replayed

REVERSIBLE = (EntryKind.EARN, EntryKind.REDEEM, EntryKind.CAPTURE)


async def reverse(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    partner_id: int,
    entry_id: int,
    now: datetime,
    points: int | None = None,
    reference: str | None = None,
) -> EntryResult:
    """Reverse ``points`` (default: all that is left) of one of the partner's entries."""
    check_key(client_id, idempotency_key)
    check_reference(reference)
    if points is not None:
        points = positive_points(points)
    target = await repository.entry_by_id(conn, entry_id=entry_id)
    if target is None or target.partner_id != partner_id:
        raise NotFound(f"transaction {entry_id} does not exist", field=["transactionId"])
    if target.kind not in REVERSIBLE:
        raise NotReversible(
            f"a {target.kind} transaction can't be reversed; only earns and redemptions can",
            field=["transactionId"],
        )
    request = {"partner": partner_id, "target": entry_id, "points": points}
    # Serialize reversals of one target: lock it first, so that a concurrent identical
    # request finds the committed original below and replays it.
    await repository.entry_by_id(conn, entry_id=entry_id, for_update=True)
    earlier = await find_replay(
        conn,
        kind=EntryKind.REVERSAL,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request=request,
    )
    if earlier is not None:
        return await replayed(conn, earlier)
    left = int(target.points) - await repository.reversed_points(conn, target_entry_id=entry_id)
    if left <= 0:
        raise AlreadyReversed(
            f"transaction {entry_id} is already fully reversed", field=["transactionId"]
        )
    amount = points if points is not None else left
    if amount > left:
        raise InvalidInput(
            f"points must be at most the {left} points left to reverse", field=["points"]
        )
    started = await begin_entry(
        conn,
        kind=EntryKind.REVERSAL,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request=request,
        points=amount,
        created_at=now,
        effective_at=now,
        partner_id=partner_id,
        member_id=target.member_id,
        reference=reference,
        target_entry_id=entry_id,
    )
    if started.replay is not None:
        return await replayed(conn, started)
    if target.kind == EntryKind.EARN:
        balance = await _reverse_earn(conn, target=target, entry_id=started.entry_id, points=amount)
    else:
        balance = await _reverse_redemption(
            conn, target=target, entry_id=started.entry_id, points=amount
        )
    return EntryResult(
        entry_id=started.entry_id,
        kind=EntryKind.REVERSAL,
        points=amount,
        member_id=target.member_id,
        partner_id=partner_id,
        wallet_balance=balance,
    )


async def _reverse_earn(
    conn: AsyncConnection, *, target: Row[Any], entry_id: int, points: int
) -> int:
    """Take back issued points from the earn's own lot. If they were spent already, only a
    partner whose contract allows it may push the lot (and the wallet) below zero."""
    issued = await partner_account(conn, target.partner_id, AccountKind.PARTNER_ISSUED)
    wallets = await repository.lock_wallets(conn, member_ids=[target.member_id])
    wallet = wallets[target.member_id]
    lot = await repository.lot_of_entry(conn, entry_id=target.id)
    invariant(lot is not None, f"earn {target.id} has a lot")
    assert lot is not None
    short = points > lot.remaining or points > wallet.balance
    if short and not issued.allow_negative_reversal:
        raise InsufficientPoints(
            "the points of this earn were already spent; the member's wallet can't cover"
            " the reversal",
            field=["points"],
        )
    allocation = LotAllocation(lot.id, lot.issuer_partner_id, points, lot.earned_at, lot.expires_at)
    await repository.record_consumptions(
        conn, entry_id=entry_id, kind=ConsumptionKind.EARN_REVERSAL, allocations=[allocation]
    )
    after = await repository.credit_wallet(conn, member_id=target.member_id, points=-points)
    assert after is not None
    await repository.change_sharded_balance(conn, account_id=issued.id, points=points)
    await repository.insert_postings(
        conn, entry_id=entry_id, legs=[(int(wallet.id), -points), (int(issued.id), points)]
    )
    return int(after.balance)


async def _reverse_redemption(
    conn: AsyncConnection, *, target: Row[Any], entry_id: int, points: int
) -> int:
    """Give redeemed points back to the lots they came from, the last consumed first."""
    redeemed = await partner_account(conn, target.partner_id, AccountKind.PARTNER_REDEEMED)
    wallet = await repository.credit_wallet(conn, member_id=target.member_id, points=points)
    invariant(wallet is not None, "a redemption's member has a wallet")
    assert wallet is not None
    lots = await repository.redeemed_lots(conn, redemption_entry_id=target.id)
    restored = [
        LotAllocation(a.lot_id, a.issuer_partner_id, -a.points, a.earned_at, a.expires_at)
        for a in repository.allocate(lots, points)
    ]
    invariant(-sum(a.points for a in restored) == points, "redeemed lots cover the reversal")
    await repository.record_consumptions(
        conn,
        entry_id=entry_id,
        kind=ConsumptionKind.REDEEM,
        allocations=restored,
        redeemer_partner_id=target.partner_id,
    )
    await repository.change_sharded_balance(conn, account_id=redeemed.id, points=-points)
    await repository.insert_postings(
        conn, entry_id=entry_id, legs=[(int(wallet.id), points), (int(redeemed.id), -points)]
    )
    return int(wallet.balance)
