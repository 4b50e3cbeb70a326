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
