"""Value types of settlement."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

COALITION = "coalition"


def party(partner_id: int | None) -> str:
    """A party key: ``partner:<id>``, or the coalition itself."""
    return COALITION if partner_id is None else f"partner:{partner_id}"


class RunStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    SUPERSEDED = "SUPERSEDED"
    FINALIZED = "FINALIZED"
    PAID = "PAID"


@dataclass(frozen=True)
class Terms:
    name: str
    currency: str
    issue_price: Decimal
    redemption_price: Decimal
    fee_rate: Decimal
    funding_model: str


@dataclass(frozen=True)
class Obligation:
    """``debtor`` owes ``creditor`` ``amount`` for ``reason`` (issuance, redemption, fee)."""

    debtor: str
    creditor: str
    reason: str
    amount: Decimal


@dataclass(frozen=True)
class PricedLine:
    """Where an obligation comes from: ``points`` at ``price`` (money per point in the
    contract's ``currency``), converted at ``rate`` into the settlement currency and, for
    a fee, times ``fee_rate``. ``funding_model`` is the rule that made it (the issuer's).
    """

    debtor: str
    creditor: str
    reason: str
    points: int
    price: Decimal
    currency: str
    rate: Decimal
    funding_model: str
    fee_rate: Decimal | None = None

    @property
    def amount(self) -> Decimal:
        """The exact amount in the settlement currency (no rounding)."""
        value = self.points * self.price * self.rate
        return value if self.fee_rate is None else value * self.fee_rate

    def obligation(self) -> Obligation:
        return Obligation(self.debtor, self.creditor, self.reason, self.amount)


@dataclass(frozen=True)
class Instruction:
    payer: str
    payee: str
    amount: Decimal


@dataclass(frozen=True)
class Payment:
    """Instruction number ``instruction`` (from 1) of a run, paid."""

    instruction: int
    reference: str
    paid_at: datetime


@dataclass(frozen=True)
class SettlementRun:
    id: int
    status: RunStatus
    digest: str
    document: dict[str, Any]
    payments: tuple[Payment, ...] = ()

    def summary(self) -> dict[str, str]:
        """What names the run beyond its id: its period, currency and digest."""
        period = self.document["period"]
        return {
            "periodFrom": str(period["from"]),
            "periodTo": str(period["to"]),
            "currency": str(self.document["currency"]),
            "digest": self.digest,
        }


@dataclass(frozen=True)
class RunSummary:
    """A run as `exchange settle list` shows it: what it covers, where it stands, and
    which runs it replaced or was replaced by."""

    id: int
    period_start: datetime
    period_end: datetime
    status: RunStatus
    currency: str
    digest: str
    created_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    instruction_count: int
    payments: tuple[Payment, ...]
    supersedes: tuple[int, ...]
    superseded_by: int | None
