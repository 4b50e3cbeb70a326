"""What an operation will write, decided in Python before anything is written.

An operation reads what it needs under its locks, then plans each request as one or
more :class:`EntryPlan` (an entry with its postings, the lots it creates, the lot
consumptions it records and the hold it opens or closes). Every plan of every operation
is written by the one writer, :func:`exchange.ledger.repository.write`: a batch of
plans is one statement, and a single operation is a batch of one.

Balances are never planned separately: each posting changes its account's balance by
its amount (a wallet row, or one shard of a hot account), and each consumption changes
its lot's ``remaining``. A plan is checked here to balance before it is written; the
database checks it again at commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exchange.kit.invariant import invariant
from exchange.ledger.errors import LimitExceeded
from exchange.ledger.models import ConsumptionKind, EntryKind, HoldStatus, LotOrigin


@dataclass(frozen=True)
class Key:
    """The idempotency key of an entry: unique per client; the digest tells a replay
    from a key reused for another request."""

    client_id: str
    idempotency_key: str
    digest: bytes


@dataclass(frozen=True)
class Leg:
    """A posting: ``amount`` (signed) on one account. ``sharded``: a hot account whose
    balance lives in shard rows (docs/decisions/0002)."""

    account_id: int
    amount: int
    sharded: bool = False


@dataclass(frozen=True)
class NewLot:
    member_id: int
    issuer_partner_id: int | None
    origin: LotOrigin
    amount: int
    earned_at: datetime
    expires_at: datetime
    source_lot_id: int | None = None


@dataclass(frozen=True)
class Take:
    """A lot consumption: points taken from a lot (positive) or given back (negative)."""

    lot_id: int
    kind: ConsumptionKind
    points: int
    issuer_partner_id: int | None
    redeemer_partner_id: int | None = None
    hold_id: int | None = None


@dataclass(frozen=True)
class NewHold:
    id: int
    member_id: int
    partner_id: int
    points: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class HoldClose:
    hold_id: int
    status: HoldStatus
    captured_points: int


@dataclass
class EntryPlan:
    kind: EntryKind
    points: int
    created_at: datetime
    effective_at: datetime
    legs: list[Leg]
    partner_id: int | None = None
    member_id: int | None = None
    counterparty_member_id: int | None = None
    reference: str | None = None
    target_entry_id: int | None = None
    hold_id: int | None = None
    metadata: Mapping[str, Any] | None = None
    key: Key | None = None
    lots: list[NewLot] = field(default_factory=list)
    takes: list[Take] = field(default_factory=list)
    new_hold: NewHold | None = None
    close_hold: HoldClose | None = None
    #: The wallet whose balance right after this entry the result reports.
    wallet_account_id: int | None = None

    def __post_init__(self) -> None:
        invariant(self.points > 0, f"a {self.kind} entry moves a positive number of points")
        invariant(len(self.legs) >= 2, f"a {self.kind} entry has two or more postings")
        invariant(all(leg.amount != 0 for leg in self.legs), "no posting of zero")
        invariant(sum(leg.amount for leg in self.legs) == 0, f"a {self.kind} entry balances")


@dataclass
class Lot:
    """A lot as an operation reads it (under its wallet's lock) and plans against it."""

    id: int
    issuer_partner_id: int | None
    remaining: int
    earned_at: datetime
    expires_at: datetime


def allocate(lots: Iterable[Lot], points: int) -> list[tuple[Lot, int]]:
    """Take ``points`` from the lots' positive ``remaining`` in the given order (the
    caller orders them oldest expiry first); less when the lots hold less."""
    taken: list[tuple[Lot, int]] = []
    left = points
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            taken.append((lot, take))
            left -= take
    return taken


def takes(
    allocation: Sequence[tuple[Lot, int]],
    kind: ConsumptionKind,
    *,
    sign: int = 1,
    redeemer_partner_id: int | None = None,
    hold_id: int | None = None,
) -> list[Take]:
    """Consumption rows for an allocation; ``sign`` -1 gives the points back."""
    return [
        Take(lot.id, kind, sign * points, lot.issuer_partner_id, redeemer_partner_id, hold_id)
        for lot, points in allocation
    ]


def check_maximum(points: int, maximum: int | None) -> None:
    """LIMIT_EXCEEDED when one operation moves more points than the partner's contract
    allows at once (a typo guard: ``maxPointsPerOperation``)."""
    if maximum is not None and points > maximum:
        raise LimitExceeded(
            f"points must be at most {maximum} per operation (the partner's maxPointsPerOperation)",
            field=["points"],
        )
