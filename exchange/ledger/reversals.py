"""Reversals (returns, refunds): a new entry that undoes all or part of an EARN or of a
redemption (REDEEM or CAPTURE). Entries are never changed; the reversal points back at
its target, and a target can't be reversed for more than what is left of it.

Lock order: the target entry (so reversals of one target are serialized and a
concurrent identical request replays the first), then the member's wallet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput, Kind, NotFound, Ref
from exchange.kit.invariant import invariant, present
from exchange.ledger import execution, repository
from exchange.ledger.errors import AlreadyReversed, InsufficientPoints, NotReversible
from exchange.ledger.models import (
    AccountKind,
    ConsumptionKind,
    EntryKind,
    EntryResult,
    issued_account,
)
from exchange.ledger.plans import EntryPlan, Leg, Lot, Take, allocate, takes
from exchange.ledger.requests import ReverseRequest
from exchange.ledger.spending import Wallets, read_wallets

REVERSIBLE = (EntryKind.EARN, EntryKind.REDEEM, EntryKind.CAPTURE)


@dataclass
class _Target:
    row: Row
    reversed: int
    account_id: int  # the partner account the reversal posts against
    allow_negative: bool
    lots: list[Lot]  # an earn: its own lot; a redemption: what it still holds per lot


@dataclass
class _ReverseState:
    targets: dict[int, _Target]
    wallets: Wallets
    kinds: dict[int, str]  # the kind of every entry of the partner asked for


@dataclass(frozen=True)
class Reverse:
    """Reversals of the partner's entries (``partner_id`` None: of the coalition's own
    earns, which a refund of a purchase reverses with the rest of its awards)."""

    partner_id: int | None
    kind: EntryKind = EntryKind.REVERSAL
    keyed: bool = True

    async def read(
        self, conn: Connection, requests: Sequence[ReverseRequest], now: datetime
    ) -> _ReverseState:
        rows = {}
        for entry_id in sorted({r.entry_id for r in requests}):
            row = await repository.entry_by_id(conn, entry_id=entry_id, for_update=True)
            if row is not None and row.partner_id == self.partner_id:
                rows[entry_id] = row
        reversible = {i: row for i, row in rows.items() if row.kind in REVERSIBLE}
        # An earn's lot the caller cannot see (its member's link erased) names no issuer:
        # that reversal is refused below, like any other of an unreachable member.
        issuers = {
            lot.issuer_partner_id
            for row in reversible.values()
            if row.kind == EntryKind.EARN
            and (lot := await repository.earn_lot(conn, entry_id=int(row.id))) is not None
        }
        redeemed: list[tuple[int | None, AccountKind]] = (
            [(self.partner_id, AccountKind.PARTNER_REDEEMED)] if self.partner_id else []
        )
        wallets = await read_wallets(
            conn,
            [int(row.member_id) for row in reversible.values()],
            accounts=[issued_account(issuer) for issuer in sorted(issuers, key=lambda i: i or 0)]
            + redeemed,
            with_lots=False,
        )
        # A member the caller may no longer see (its link erased) has no target: its
        # wallet and lots are out of reach under row-level security.
        targets = {
            i: await _target(conn, wallets, row)
            for i, row in reversible.items()
            if int(row.member_id) in wallets.wallets
        }
        kinds = {i: r.kind for i, r in rows.items()}
        return _ReverseState(targets=targets, wallets=wallets, kinds=kinds)

    def plan(self, state: _ReverseState, request: ReverseRequest, now: datetime) -> list[EntryPlan]:
        kind = state.kinds.get(request.entry_id)
        if kind is not None and kind not in REVERSIBLE:
            raise NotReversible(
                f"a {kind} transaction can't be reversed; only earns and redemptions can",
                field=["transactionId"],
            )
        target = state.targets.get(request.entry_id)
        entry = {"transaction": Ref(Kind.TRANSACTION, request.entry_id)}
        if target is None and kind is not None:
            raise NotFound(
                "the member of transaction {transaction} is no longer linked to you",
                field=["transactionId"],
                refs=entry,
            )
        if target is None:
            raise NotFound(
                "transaction {transaction} does not exist", field=["transactionId"], refs=entry
            )
        left = int(target.row.points) - target.reversed
        if left <= 0:
            raise AlreadyReversed(
                "transaction {transaction} is already fully reversed",
                field=["transactionId"],
                refs=entry,
            )
        points = request.points if request.points is not None else left
        if points > left:
            raise InvalidInput(
                f"points must be at most the {left} points left to reverse", field=["points"]
            )
        moves = _reverse_earn if target.row.kind == EntryKind.EARN else _reverse_redemption
        legs, taken, wallet_id = moves(state, target, points)
        target.reversed += points
        row = target.row
        return [
            EntryPlan(
                kind=EntryKind.REVERSAL,
                points=points,
                created_at=now,
                effective_at=now,
                partner_id=row.partner_id,
                member_id=row.member_id,
                reference=request.reference,
                target_entry_id=int(row.id),
                legs=legs,
                takes=taken,
                wallet_account_id=wallet_id,
            )
        ]


Moves = tuple[list[Leg], list[Take], int]


async def _target(conn: Connection, wallets: Wallets, row: Row) -> _Target:
    """What a reversal of one entry plans against: how much was reversed so far, the
    partner account it posts to, and the lots it gives back to or takes from."""
    reversed_ = await repository.reversed_points(conn, target_entry_id=int(row.id))
    if row.kind == EntryKind.EARN:
        lot = present(await repository.earn_lot(conn, entry_id=int(row.id)), "an earn has a lot")
        issued = wallets.account(*issued_account(lot.issuer_partner_id))
        return _Target(row, reversed_, issued.id, issued.allow_negative_reversal, [lot])
    redeemed = wallets.account(row.partner_id, AccountKind.PARTNER_REDEEMED)
    lots = await repository.redeemed_lots(conn, redemption_entry_id=int(row.id))
    return _Target(row, reversed_, redeemed.id, False, lots)


def _reverse_earn(state: _ReverseState, target: _Target, points: int) -> Moves:
    """Take back issued points from the earn's own lot. If they were spent already, only a
    partner whose contract allows it may push the lot (and the wallet) below zero."""
    wallet = state.wallets.wallet(int(target.row.member_id))
    lot = target.lots[0]
    if (points > lot.remaining or points > wallet.balance) and not target.allow_negative:
        raise InsufficientPoints(
            "the points of this earn were already spent; the member's wallet can't cover"
            " the reversal",
            field=["points"],
        )
    lot.remaining -= points
    wallet.balance -= points
    legs = [Leg(wallet.wallet_id, -points), Leg(target.account_id, points, sharded=True)]
    return legs, takes([(lot, points)], ConsumptionKind.EARN_REVERSAL), wallet.wallet_id


def _reverse_redemption(state: _ReverseState, target: _Target, points: int) -> Moves:
    """Give redeemed points back to the lots they came from, the last consumed first."""
    wallet = state.wallets.wallet(int(target.row.member_id))
    restored = allocate(target.lots, points)
    invariant(sum(p for _, p in restored) == points, "redeemed lots cover the reversal")
    for lot, given in restored:
        lot.remaining -= given
    wallet.balance += points
    redeemer = int(target.row.partner_id)
    legs = [Leg(wallet.wallet_id, points), Leg(target.account_id, -points, sharded=True)]
    taken = takes(restored, ConsumptionKind.REDEEM, sign=-1, redeemer_partner_id=redeemer)
    return legs, taken, wallet.wallet_id


async def reverse(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int | None,
    request: ReverseRequest,
    now: datetime,
) -> EntryResult:
    """Reverse ``points`` (default: all that is left) of one of the partner's entries."""
    outcomes = await execution.execute(
        conn, Reverse(partner_id), [request], now=now, client_id=client_id, partner_id=partner_id
    )
    return execution.single(outcomes)


async def reverse_many(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int | None,
    requests: Sequence[ReverseRequest],
    now: datetime,
) -> list[execution.Outcome | None]:
    """Several reversals in one statement (a purchase's awards refunded together)."""
    return await execution.execute(
        conn, Reverse(partner_id), requests, now=now, client_id=client_id, partner_id=partner_id
    )
