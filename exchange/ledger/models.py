"""Value types of the ledger: kinds, policies and the results operations return."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class AccountKind(enum.StrEnum):
    MEMBER_WALLET = "MEMBER_WALLET"
    MEMBER_HELD = "MEMBER_HELD"
    PARTNER_ISSUED = "PARTNER_ISSUED"
    PARTNER_REDEEMED = "PARTNER_REDEEMED"
    COALITION_BREAKAGE = "COALITION_BREAKAGE"
    COALITION_ADJUSTMENTS = "COALITION_ADJUSTMENTS"
    #: Points the coalition itself issues (a tier's bonus, an operator's campaign).
    COALITION_ISSUED = "COALITION_ISSUED"


def issued_account(partner_id: int | None) -> tuple[int | None, AccountKind]:
    """The account an issuer's points come from: a partner's PARTNER_ISSUED, or the
    coalition's COALITION_ISSUED when the coalition issues (``partner_id`` None)."""
    if partner_id is None:
        return None, AccountKind.COALITION_ISSUED
    return partner_id, AccountKind.PARTNER_ISSUED


class EntryKind(enum.StrEnum):
    EARN = "EARN"
    REDEEM = "REDEEM"
    HOLD = "HOLD"
    CAPTURE = "CAPTURE"
    RELEASE = "RELEASE"
    REVERSAL = "REVERSAL"
    EXPIRY = "EXPIRY"
    TRANSFER = "TRANSFER"
    ADJUSTMENT = "ADJUSTMENT"


class ConsumptionKind(enum.StrEnum):
    """Why points left (positive) or came back to (negative) a lot."""

    HOLD = "HOLD"
    REDEEM = "REDEEM"
    TRANSFER = "TRANSFER"
    EXPIRY = "EXPIRY"
    EARN_REVERSAL = "EARN_REVERSAL"
    ADJUSTMENT = "ADJUSTMENT"


class LotOrigin(enum.StrEnum):
    EARN = "EARN"
    TRANSFER = "TRANSFER"
    ADJUSTMENT = "ADJUSTMENT"


class HoldStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


#: Hot accounts spread their balance over this many rows so that concurrent
#: operations of one partner do not queue on a single row (docs/decisions/0002).
BALANCE_SHARDS = 16

DEFAULT_POINTS_LIFETIME_DAYS = 365
DEFAULT_MAX_POINTS_PER_OPERATION = 1_000_000
DEFAULT_HOLD_TTL_SECONDS = 15 * 60


@dataclass(frozen=True)
class PartnerPolicy:
    """What the ledger must apply for one partner; set by `partners` on contract change."""

    points_lifetime_days: int = DEFAULT_POINTS_LIFETIME_DAYS
    credit_limit_points: int | None = None
    allow_negative_reversal: bool = False
    #: No single earn, redemption or hold of the partner moves more (a typo guard).
    max_points_per_operation: int = DEFAULT_MAX_POINTS_PER_OPERATION


@dataclass(frozen=True)
class EntryView:
    """An entry as it was written."""

    id: int
    kind: EntryKind
    points: int
    partner_id: int | None
    member_id: int | None
    counterparty_member_id: int | None
    reference: str | None
    created_at: datetime
    effective_at: datetime
    target_entry_id: int | None
    hold_id: int | None


@dataclass(frozen=True)
class EntryResult:
    """What a points-moving operation returns: the entry it wrote (a replay: the entry the
    first request wrote), the member's wallet balance right after it, and for a hold its
    hold."""

    entry: EntryView
    wallet_balance: int | None
    replayed: bool = False
    hold_id: int | None = None

    @property
    def entry_id(self) -> int:
        return self.entry.id

    @property
    def kind(self) -> EntryKind:
        return self.entry.kind

    @property
    def points(self) -> int:
        return self.entry.points

    @property
    def member_id(self) -> int | None:
        return self.entry.member_id

    @property
    def partner_id(self) -> int | None:
        return self.entry.partner_id


@dataclass(frozen=True)
class Hold:
    id: int
    member_id: int
    partner_id: int
    points: int
    captured_points: int
    status: HoldStatus
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuerBalance:
    issuer_partner_id: int | None
    points: int


@dataclass(frozen=True)
class ExpiringPoints:
    issuer_partner_id: int | None
    points: int
    expires_at: datetime


@dataclass(frozen=True)
class Wallet:
    member_id: int
    available: int
    held: int
    by_issuer: list[IssuerBalance]

    @property
    def balance(self) -> int:
        return self.available + self.held


@dataclass(frozen=True)
class ExpiryResult:
    members: int
    entries: int
    points: int
