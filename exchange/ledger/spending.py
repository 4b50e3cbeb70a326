"""Taking points out of wallets: the state a spend plans against, the rule of a spend
(expired lots are swept into breakage first, then live lots are consumed oldest expiry
first), and redemption at a partner.

Every operation that takes points from a wallet (redeem, hold, transfer, an adjustment's
debit, expiry) plans through :func:`spend` or :func:`sweep` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from exchange.kit.db import Connection
from exchange.kit.invariant import present
from exchange.ledger import execution, repository
from exchange.ledger.errors import InsufficientPoints, unknown_member, unknown_partner
from exchange.ledger.models import AccountKind, ConsumptionKind, EntryKind, EntryResult
from exchange.ledger.plans import EntryPlan, Leg, Lot, allocate, check_maximum, takes
from exchange.ledger.repository import AccountRow
from exchange.ledger.requests import RedeemRequest


@dataclass
class Wallet:
    """A locked wallet as a plan sees it; ``balance`` follows the plans made so far.
    ``held_id`` is None for a wallet the caller may only credit (a transfer's recipient)."""

    member_id: int
    wallet_id: int
    held_id: int | None
    balance: int

    def held_account_id(self) -> int:
        """The member's held account, which holds move points to and from."""
        return present(self.held_id, f"member {self.member_id}'s held account is visible")


@dataclass
class Wallets:
    """Wallets locked by one operation, their lots, the partner and coalition accounts it
    posts to, and hold ids it may open."""

    wallets: dict[int, Wallet]
    lots: dict[int, list[Lot]]
    accounts: dict[tuple[int | None, str], AccountRow]
    hold_ids: list[int] = field(default_factory=list)
    swept: set[int] = field(default_factory=set)

    def wallet(self, member_id: int, field: str = "memberId") -> Wallet:
        found = self.wallets.get(member_id)
        if found is None:
            raise unknown_member(member_id, field)
        return found

    def account(self, partner_id: int | None, kind: AccountKind) -> AccountRow:
        found = self.accounts.get((partner_id, str(kind)))
        if found is None:
            raise unknown_partner(partner_id)
        return found

    @property
    def breakage_id(self) -> int:
        return self.account(None, AccountKind.COALITION_BREAKAGE).id


async def read_wallets(
    conn: Connection,
    member_ids: Sequence[int],
    *,
    accounts: Sequence[tuple[int | None, AccountKind]] = (),
    new_holds: int = 0,
    with_lots: bool = True,
) -> Wallets:
    """Lock the wallets (member order) and read the accounts the operation posts to (the
    coalition's breakage account always: a spend may sweep expired lots into it), then
    read their lots: read after the locks, so every change committed before is seen. A
    partner account asked for and missing is NOT_FOUND for the whole operation."""
    wanted = [(None, AccountKind.COALITION_BREAKAGE), *accounts]
    locked = await repository.lock_wallets(
        conn, member_ids=member_ids, accounts=wanted, new_holds=new_holds
    )
    lots = (
        await repository.lots_of_wallets(conn, member_ids=list(locked.wallets)) if with_lots else {}
    )
    wallets = {m: Wallet(m, w.wallet_id, w.held_id, w.balance) for m, w in locked.wallets.items()}
    state = Wallets(wallets=wallets, lots=lots, accounts=locked.accounts, hold_ids=locked.hold_ids)
    for partner_id, kind in wanted:
        state.account(partner_id, kind)
    return state


def sweep(state: Wallets, member_id: int, now: datetime) -> EntryPlan | None:
    """An EXPIRY entry for the member's lots past their expiry, into coalition breakage
    (attributed to each lot's issuer by its consumption row); None when there are none."""
    expired = [
        lot for lot in state.lots.get(member_id, []) if lot.remaining > 0 and lot.expires_at <= now
    ]
    if not expired:
        return None
    wallet = state.wallet(member_id)
    points = sum(lot.remaining for lot in expired)
    plan = EntryPlan(
        kind=EntryKind.EXPIRY,
        points=points,
        created_at=now,
        effective_at=now,
        member_id=member_id,
        legs=[Leg(wallet.wallet_id, -points), Leg(state.breakage_id, points, sharded=True)],
        takes=takes([(lot, lot.remaining) for lot in expired], ConsumptionKind.EXPIRY),
        wallet_account_id=wallet.wallet_id,
    )
    for lot in expired:
        lot.remaining = 0
    wallet.balance -= points
    state.swept.add(member_id)
    return plan


def spend(
    state: Wallets, member_id: int, points: int, now: datetime, *, field: str = "memberId"
) -> tuple[Wallet, list[tuple[Lot, int]], list[EntryPlan]]:
    """Take ``points`` from a wallet: the wallet, the lots taken (oldest expiry first) and
    the sweep of its expired lots to write before, or INSUFFICIENT_POINTS."""
    wallet = state.wallet(member_id, field)
    lots = state.lots.get(member_id, [])
    expired = sum(lot.remaining for lot in lots if lot.remaining > 0 and lot.expires_at <= now)
    live = [lot for lot in lots if lot.remaining > 0 and lot.expires_at > now]
    if wallet.balance - expired < points or sum(lot.remaining for lot in live) < points:
        raise InsufficientPoints("the wallet does not hold enough points", field=["points"])
    swept = sweep(state, member_id, now)
    allocation = allocate(live, points)
    for lot, taken in allocation:
        lot.remaining -= taken
    wallet.balance -= points
    return wallet, allocation, [swept] if swept is not None else []


async def require_spendable(
    conn: Connection, *, member_id: int, points: int, now: datetime
) -> None:
    """INSUFFICIENT_POINTS unless the member's wallet could pay ``points`` now, by the
    rule of :func:`spend`, read without a lock. For a use case that must answer this
    before anything else, so that its answer can't depend on what it would look at
    next (a transfer's recipient); the operation checks again under its locks."""
    if await repository.spendable_points(conn, member_id=member_id, now=now) < points:
        raise InsufficientPoints("the wallet does not hold enough points", field=["points"])


@dataclass(frozen=True)
class Redeem:
    """Spend points at a partner: wallet -n, PARTNER_REDEEMED +n; lots consumed."""

    partner_id: int
    kind: EntryKind = EntryKind.REDEEM
    keyed: bool = True

    async def read(
        self, conn: Connection, requests: Sequence[RedeemRequest], now: datetime
    ) -> Wallets:
        redeemed = (self.partner_id, AccountKind.PARTNER_REDEEMED)
        return await read_wallets(conn, [r.member_id for r in requests], accounts=[redeemed])

    def plan(self, state: Wallets, request: RedeemRequest, now: datetime) -> list[EntryPlan]:
        points = request.points
        redeemed = state.account(self.partner_id, AccountKind.PARTNER_REDEEMED)
        check_maximum(points, redeemed.max_points_per_operation)
        redeemed_id = redeemed.id
        wallet, allocation, before = spend(state, request.member_id, points, now)
        return [
            *before,
            EntryPlan(
                kind=EntryKind.REDEEM,
                points=points,
                created_at=now,
                effective_at=request.effective_at or now,
                partner_id=self.partner_id,
                member_id=request.member_id,
                reference=request.reference,
                metadata=request.metadata,
                legs=[Leg(wallet.wallet_id, -points), Leg(redeemed_id, points, sharded=True)],
                takes=takes(
                    allocation, ConsumptionKind.REDEEM, redeemer_partner_id=self.partner_id
                ),
                wallet_account_id=wallet.wallet_id,
            ),
        ]


async def redeem(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    request: RedeemRequest,
    now: datetime,
) -> EntryResult:
    """Spend points of a member's wallet at the partner."""
    outcomes = await redeem_many(
        conn, client_id=client_id, partner_id=partner_id, requests=[request], now=now
    )
    return execution.single(outcomes)


async def redeem_many(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    requests: Sequence[RedeemRequest],
    now: datetime,
) -> list[execution.Outcome | None]:
    """Many redemptions in one statement, wallets locked in member order; one outcome
    per request."""
    return await execution.execute(
        conn, Redeem(partner_id), requests, now=now, client_id=client_id, partner_id=partner_id
    )
