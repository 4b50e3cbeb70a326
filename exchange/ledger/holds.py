"""Point-of-sale holds: HOLD reserves points (wallet -> held, lots consumed into the
hold), CAPTURE turns all or part of a hold into a redemption and gives the rest back,
RELEASE gives it all back; an expired hold is released by the sweep.

Lock order: the hold, then its member's wallet (then keys and shards, in the writer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput, Kind, NotFound, Ref
from exchange.kit.invariant import invariant
from exchange.ledger import execution, repository
from exchange.ledger.errors import HoldNotActive
from exchange.ledger.models import (
    AccountKind,
    ConsumptionKind,
    EntryKind,
    EntryResult,
    Hold,
    HoldStatus,
)
from exchange.ledger.plans import (
    EntryPlan,
    HoldClose,
    Leg,
    Lot,
    NewHold,
    allocate,
    check_maximum,
    takes,
)
from exchange.ledger.requests import CaptureRequest, HoldRequest
from exchange.ledger.spending import Wallets, read_wallets, spend


def _hold(row: Row) -> Hold:
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


async def get_hold(conn: Connection, *, hold_id: int) -> Hold | None:
    row = await repository.hold_by_id(conn, hold_id=hold_id)
    return _hold(row) if row is not None else None


# --- hold -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceHold:
    """Reserve points for a pending purchase: wallet -n, held +n."""

    partner_id: int
    kind: EntryKind = EntryKind.HOLD
    keyed: bool = True

    async def read(
        self, conn: Connection, requests: Sequence[HoldRequest], now: datetime
    ) -> Wallets:
        return await read_wallets(
            conn,
            [r.member_id for r in requests],
            accounts=[(self.partner_id, AccountKind.PARTNER_REDEEMED)],
            new_holds=len(requests),
        )

    def plan(self, state: Wallets, request: HoldRequest, now: datetime) -> list[EntryPlan]:
        points = request.points
        redeemed = state.account(self.partner_id, AccountKind.PARTNER_REDEEMED)
        check_maximum(points, redeemed.max_points_per_operation)
        wallet, allocation, before = spend(state, request.member_id, points, now)
        hold_id = state.hold_ids.pop()
        return [
            *before,
            EntryPlan(
                kind=EntryKind.HOLD,
                points=points,
                created_at=now,
                effective_at=now,
                partner_id=self.partner_id,
                member_id=request.member_id,
                reference=request.reference,
                legs=[Leg(wallet.wallet_id, -points), Leg(wallet.held_account_id(), points)],
                takes=takes(allocation, ConsumptionKind.HOLD, hold_id=hold_id),
                new_hold=NewHold(
                    id=hold_id,
                    member_id=request.member_id,
                    partner_id=self.partner_id,
                    points=points,
                    created_at=now,
                    expires_at=now + timedelta(seconds=request.ttl_seconds),
                ),
                wallet_account_id=wallet.wallet_id,
            ),
        ]


# --- closing a hold: capture and release ----------------------------------------------


@dataclass
class _Closing:
    holds: dict[int, Row]
    reservations: dict[int, list[Lot]]
    wallets: Wallets
    closed: dict[int, HoldStatus]  # holds closed by the plans so far


async def _read_closing(conn: Connection, hold_ids: Sequence[int]) -> _Closing:
    """Lock the holds (id order), then their members' wallets (member order) with the
    holds' partners' redeemed accounts, then read what the holds reserve."""
    holds = await repository.lock_holds(conn, hold_ids=hold_ids)
    partners = sorted({int(row.partner_id) for row in holds.values()})
    wallets = await read_wallets(
        conn,
        [int(row.member_id) for row in holds.values()],
        accounts=[(partner_id, AccountKind.PARTNER_REDEEMED) for partner_id in partners],
        with_lots=False,
    )
    reservations = await repository.hold_reservations(conn, hold_ids=list(holds))
    return _Closing(holds, reservations, wallets, closed={})


def _open_hold(
    state: _Closing, hold_id: int, partner_id: int | None, now: datetime, *, expired_ok: bool
) -> Row:
    row = state.holds.get(hold_id)
    hold = {"hold": Ref(Kind.HOLD, hold_id)}
    if row is None or (partner_id is not None and row.partner_id != partner_id):
        raise NotFound("hold {hold} does not exist", field=["holdId"], refs=hold)
    if int(row.member_id) not in state.wallets.wallets:  # its link erased: out of reach
        raise NotFound(
            "the member of hold {hold} is no longer linked to you", field=["holdId"], refs=hold
        )
    status = state.closed.get(hold_id, HoldStatus(row.status))
    if status != HoldStatus.ACTIVE:
        raise HoldNotActive("hold {hold} is " + status.lower(), field=["holdId"], refs=hold)
    if row.expires_at <= now and not expired_ok:
        raise HoldNotActive("hold {hold} has expired", field=["holdId"], refs=hold)
    return row


def _close(
    state: _Closing,
    row: Row,
    *,
    kind: EntryKind,
    captured: int,
    status: HoldStatus,
    now: datetime,
) -> EntryPlan:
    """Settle a hold's reservations: ``captured`` points become a redemption at the
    hold's partner (oldest expiry first), the rest go back to their lots and the wallet."""
    reservations = state.reservations.get(int(row.id), [])
    reserved = sum(lot.remaining for lot in reservations)
    invariant(reserved == row.points, f"hold {row.id} reserves {reserved}, not {row.points}")
    wallet = state.wallets.wallet(int(row.member_id))
    returned = int(row.points) - captured
    legs = [Leg(wallet.held_account_id(), -int(row.points))]
    if returned:
        legs.append(Leg(wallet.wallet_id, returned))
    # Unreserve every lot, then redeem the captured part: each lot's remaining moves by
    # exactly what goes back to the wallet.
    unreserved = [(lot, lot.remaining) for lot in reservations]
    consumed = takes(unreserved, ConsumptionKind.HOLD, sign=-1, hold_id=int(row.id))
    if captured:
        consumed += takes(
            allocate(reservations, captured),
            ConsumptionKind.REDEEM,
            redeemer_partner_id=int(row.partner_id),
            hold_id=int(row.id),
        )
        redeemed = state.wallets.account(int(row.partner_id), AccountKind.PARTNER_REDEEMED)
        legs.append(Leg(redeemed.id, captured, sharded=True))
    wallet.balance += returned
    state.closed[int(row.id)] = status
    return EntryPlan(
        kind=kind,
        points=captured if kind == EntryKind.CAPTURE else int(row.points),
        created_at=now,
        effective_at=now,
        partner_id=int(row.partner_id),
        member_id=int(row.member_id),
        hold_id=int(row.id),
        metadata={"reason": "expired"} if status == HoldStatus.EXPIRED else None,
        legs=legs,
        takes=consumed,
        close_hold=HoldClose(int(row.id), status, captured),
        wallet_account_id=wallet.wallet_id,
    )


@dataclass(frozen=True)
class Capture:
    """Redeem all of a hold (default) or part of it; the rest goes back to the wallet."""

    partner_id: int
    kind: EntryKind = EntryKind.CAPTURE
    keyed: bool = True

    async def read(
        self, conn: Connection, requests: Sequence[CaptureRequest], now: datetime
    ) -> _Closing:
        return await _read_closing(conn, [r.hold_id for r in requests])

    def plan(self, state: _Closing, request: CaptureRequest, now: datetime) -> list[EntryPlan]:
        row = state.holds.get(request.hold_id)
        if row is None or row.partner_id != self.partner_id:
            raise NotFound(
                "hold {hold} does not exist",
                field=["holdId"],
                refs={"hold": Ref(Kind.HOLD, request.hold_id)},
            )
        captured = request.points if request.points is not None else int(row.points)
        if captured > row.points:
            raise InvalidInput(
                f"points must be at most the {row.points} points the hold reserves",
                field=["points"],
            )
        row = _open_hold(state, request.hold_id, self.partner_id, now, expired_ok=False)
        status = HoldStatus.CAPTURED
        return [
            _close(state, row, kind=EntryKind.CAPTURE, captured=captured, status=status, now=now)
        ]


@dataclass(frozen=True)
class Release:
    """Give a hold's points back to the wallet. ``partner_id`` None: the operator or the
    sweep; ``status`` EXPIRED: the sweep releasing a hold past its expiry."""

    partner_id: int | None
    status: HoldStatus = HoldStatus.RELEASED
    kind: EntryKind = EntryKind.RELEASE
    keyed: bool = False

    async def read(self, conn: Connection, requests: Sequence[int], now: datetime) -> _Closing:
        return await _read_closing(conn, requests)

    def plan(self, state: _Closing, request: int, now: datetime) -> list[EntryPlan]:
        row = _open_hold(state, request, self.partner_id, now, expired_ok=True)
        return [_close(state, row, kind=EntryKind.RELEASE, captured=0, status=self.status, now=now)]


async def hold(
    conn: Connection, *, client_id: str, partner_id: int, request: HoldRequest, now: datetime
) -> EntryResult:
    return execution.single(
        await hold_many(
            conn, client_id=client_id, partner_id=partner_id, requests=[request], now=now
        )
    )


async def hold_many(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    requests: Sequence[HoldRequest],
    now: datetime,
) -> list[execution.Outcome | None]:
    """Many holds in one statement, wallets locked in member order; one outcome per
    request."""
    return await execution.execute(
        conn, PlaceHold(partner_id), requests, now=now, client_id=client_id, partner_id=partner_id
    )


async def capture(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    request: CaptureRequest,
    now: datetime,
) -> EntryResult:
    outcomes = await execution.execute(
        conn, Capture(partner_id), [request], now=now, client_id=client_id, partner_id=partner_id
    )
    return execution.single(outcomes)


async def release(
    conn: Connection, *, partner_id: int | None, hold_id: int, now: datetime
) -> EntryResult:
    """Give a hold's points back to the wallet. ``partner_id`` None: the operator."""
    return execution.single(await execution.execute(conn, Release(partner_id), [hold_id], now=now))


async def release_expired_holds(conn: Connection, *, as_of: datetime, limit: int) -> int:
    """Release up to ``limit`` holds past their expiry; returns how many."""
    hold_ids = await repository.expired_active_holds(conn, as_of=as_of, limit=limit)
    if not hold_ids:
        return 0
    outcomes = await execution.execute(conn, Release(None, HoldStatus.EXPIRED), hold_ids, now=as_of)
    for outcome in outcomes:
        invariant(isinstance(outcome, EntryResult), f"a locked expired hold releases: {outcome}")
    return len(hold_ids)
