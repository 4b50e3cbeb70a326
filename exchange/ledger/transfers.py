"""Member-to-member transfers (lots move with their issuer and expiry) and operator
adjustments (against the coalition's adjustments account)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange.kit.db import Connection
from exchange.ledger import execution
from exchange.ledger.models import AccountKind, ConsumptionKind, EntryKind, EntryResult, LotOrigin
from exchange.ledger.plans import EntryPlan, Leg, NewLot, takes
from exchange.ledger.requests import AdjustRequest, TransferRequest
from exchange.ledger.spending import Wallets, read_wallets, spend


@dataclass(frozen=True)
class Transfer:
    """Gift points: sender wallet -n, recipient wallet +n; each consumed lot of the sender
    becomes a lot of the recipient with the same issuer, earned date and expiry."""

    kind: EntryKind = EntryKind.TRANSFER
    keyed: bool = True

    async def read(
        self, conn: Connection, requests: Sequence[TransferRequest], now: datetime
    ) -> Wallets:
        members = [m for r in requests for m in (r.from_member_id, r.to_member_id)]
        return await read_wallets(conn, members)

    def plan(self, state: Wallets, request: TransferRequest, now: datetime) -> list[EntryPlan]:
        points = request.points
        # The sender's balance is checked before the recipient is looked at, so a failed
        # transfer says nothing about whether the recipient exists.
        sender, allocation, before = spend(state, request.from_member_id, points, now)
        recipient = state.wallet(request.to_member_id, "to")
        recipient.balance += points
        new_lots = [
            NewLot(
                request.to_member_id,
                lot.issuer_partner_id,
                LotOrigin.TRANSFER,
                taken,
                lot.earned_at,
                lot.expires_at,
                source_lot_id=lot.id,
            )
            for lot, taken in allocation
        ]
        return [
            *before,
            EntryPlan(
                kind=EntryKind.TRANSFER,
                points=points,
                created_at=now,
                effective_at=now,
                member_id=request.from_member_id,
                counterparty_member_id=request.to_member_id,
                reference=request.reference,
                legs=[Leg(sender.wallet_id, -points), Leg(recipient.wallet_id, points)],
                takes=takes(allocation, ConsumptionKind.TRANSFER),
                lots=new_lots,
                wallet_account_id=sender.wallet_id,
            ),
        ]


@dataclass(frozen=True)
class Adjust:
    """An operator's correction: positive points credit the member (a coalition-issued
    lot, no partner), negative points debit the wallet (lots consumed as usual)."""

    kind: EntryKind = EntryKind.ADJUSTMENT
    keyed: bool = True

    async def read(
        self, conn: Connection, requests: Sequence[AdjustRequest], now: datetime
    ) -> Wallets:
        adjustments = (None, AccountKind.COALITION_ADJUSTMENTS)
        return await read_wallets(conn, [r.member_id for r in requests], accounts=[adjustments])

    def plan(self, state: Wallets, request: AdjustRequest, now: datetime) -> list[EntryPlan]:
        points = request.points
        magnitude = abs(points)
        before: list[EntryPlan] = []
        lots: list[NewLot] = []
        adjustments_id = state.account(None, AccountKind.COALITION_ADJUSTMENTS).id
        if points > 0:
            wallet = state.wallet(request.member_id)
            wallet.balance += points
            expires_at = now + timedelta(days=request.lifetime_days)
            lots = [NewLot(request.member_id, None, LotOrigin.ADJUSTMENT, points, now, expires_at)]
            taken = []
        else:
            wallet, allocation, before = spend(state, request.member_id, magnitude, now)
            taken = takes(allocation, ConsumptionKind.ADJUSTMENT)
        return [
            *before,
            EntryPlan(
                kind=EntryKind.ADJUSTMENT,
                points=magnitude,
                created_at=now,
                effective_at=now,
                member_id=request.member_id,
                metadata={
                    "reason": request.reason,
                    "direction": "credit" if points > 0 else "debit",
                },
                legs=[
                    Leg(wallet.wallet_id, points),
                    Leg(adjustments_id, -points, sharded=True),
                ],
                lots=lots,
                takes=taken,
                wallet_account_id=wallet.wallet_id,
            ),
        ]


async def transfer(
    conn: Connection, *, client_id: str, request: TransferRequest, now: datetime
) -> EntryResult:
    outcomes = await execution.execute(conn, Transfer(), [request], now=now, client_id=client_id)
    return execution.single(outcomes)


async def adjust(
    conn: Connection, *, client_id: str, request: AdjustRequest, now: datetime
) -> EntryResult:
    outcomes = await execution.execute(conn, Adjust(), [request], now=now, client_id=client_id)
    return execution.single(outcomes)
