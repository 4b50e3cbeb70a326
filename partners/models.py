"""Value types of the partners package."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class PartnerStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class FundingModel(enum.StrEnum):
    PREFUNDED = "PREFUNDED"
    ON_REDEMPTION = "ON_REDEMPTION"


@dataclass(frozen=True)
class ContractTerms:
    """What a partner agreed to; prices are money per point in the settlement currency."""

    currency: str
    issue_price: Decimal
    redemption_price: Decimal
    fee_rate: Decimal = Decimal("0")
    funding_model: FundingModel = FundingModel.PREFUNDED
    points_lifetime_days: int = 365
    credit_limit_points: int | None = None
    allow_negative_reversal: bool = False
    #: Base points per currency unit of a purchase (rounded down per purchase).
    earn_rate: Decimal = Decimal("1")
    #: No single operation (an earn, a redemption, a purchase's points) moves more.
    max_points_per_operation: int = 1_000_000


@dataclass(frozen=True)
class Contract:
    partner_id: int
    version: int
    effective_from: datetime
    terms: ContractTerms


@dataclass(frozen=True)
class Partner:
    id: int
    name: str
    status: PartnerStatus
    created_at: datetime
    contract: Contract


@dataclass(frozen=True)
class PartnerListing:
    """A partner as the registry shows it to a caller: the contract only where the caller
    may see it (its own, or every one for an operator)."""

    id: int
    name: str
    status: PartnerStatus
    contract: Contract | None


@dataclass(frozen=True)
class ContractChanges:
    """A new contract version's terms, each None where it stays as it is."""

    earn_rate: Decimal | None = None
    issue_price: Decimal | None = None
    redemption_price: Decimal | None = None
    fee_rate: Decimal | None = None
    funding_model: FundingModel | None = None
    points_lifetime_days: int | None = None
    credit_limit_points: int | None = None
    max_points_per_operation: int | None = None

    def applied_to(self, terms: ContractTerms) -> ContractTerms:
        return ContractTerms(
            currency=terms.currency,
            issue_price=self.issue_price if self.issue_price is not None else terms.issue_price,
            redemption_price=self.redemption_price
            if self.redemption_price is not None
            else terms.redemption_price,
            fee_rate=self.fee_rate if self.fee_rate is not None else terms.fee_rate,
            funding_model=self.funding_model or terms.funding_model,
            points_lifetime_days=self.points_lifetime_days or terms.points_lifetime_days,
            credit_limit_points=self.credit_limit_points
            if self.credit_limit_points is not None
            else terms.credit_limit_points,
            allow_negative_reversal=terms.allow_negative_reversal,
            earn_rate=self.earn_rate if self.earn_rate is not None else terms.earn_rate,
            max_points_per_operation=self.max_points_per_operation
            or terms.max_points_per_operation,
        )
