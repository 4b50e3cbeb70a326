"""Value types of settlement."""

from __future__ import annotations

import enum
from dataclasses import dataclass
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
class Instruction:
    payer: str
    payee: str
    amount: Decimal


@dataclass(frozen=True)
class SettlementRun:
    id: int
    status: RunStatus
    digest: str
    document: dict[str, Any]
