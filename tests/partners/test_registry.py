"""Worked examples: the partner registry and versioned contracts."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

import pytest

from exchange.kit.db import Database
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.ledger import repository as ledger_repository
from exchange.ledger.models import AccountKind
from partners import registry
from partners.models import ContractTerms, FundingModel, PartnerStatus
from tests.conftest import NOW

TERMS = ContractTerms(
    currency="USD",
    issue_price=Decimal("0.010"),
    redemption_price=Decimal("0.008"),
    fee_rate=Decimal("0.02"),
    funding_model=FundingModel.ON_REDEMPTION,
    points_lifetime_days=365,
    credit_limit_points=1_000_000,
)


def unique_name(prefix: str = "Partner") -> str:
    return f"{prefix} {secrets.token_hex(4)}"


async def test_adding_a_partner_records_contract_version_one_and_opens_ledger_accounts(
    db: Database,
) -> None:
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name("Coffee"), terms=TERMS, now=NOW)
        issued = await ledger_repository.partner_account(
            conn, partner_id=partner.id, kind=AccountKind.PARTNER_ISSUED
        )

    assert partner.status == PartnerStatus.ACTIVE
    assert (partner.contract.version, partner.contract.terms) == (1, TERMS)
    assert issued is not None
    assert (issued.credit_limit_points, issued.points_lifetime_days) == (1_000_000, 365)


async def test_partner_names_are_unique(db: Database) -> None:
    name = unique_name()
    async with db.transaction(SYSTEM) as conn:
        await registry.add_partner(conn, name=name, terms=TERMS, now=NOW)

    with pytest.raises(DomainError) as error:
        async with db.transaction(SYSTEM) as conn:
            await registry.add_partner(conn, name=name, terms=TERMS, now=NOW)

    assert error.value.field == ["name"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),  # three capitals, but no ISO 4217 currency
        ({"issue_price": Decimal("-0.01")}, "issuePrice"),
        ({"redemption_price": Decimal("0.000000001")}, "redemptionPrice"),
        ({"fee_rate": Decimal("1")}, "feeRate"),
        ({"points_lifetime_days": 0}, "pointsLifetimeDays"),
        ({"issue_price": 0.01}, "issuePrice"),
    ],
)
async def test_invalid_contract_terms_are_refused(
    db: Database, change: dict[str, object], field: str
) -> None:
    terms = ContractTerms(**{**TERMS.__dict__, **change})  # type: ignore[arg-type]

    with pytest.raises(DomainError) as error:
        async with db.transaction(SYSTEM) as conn:
            await registry.add_partner(conn, name=unique_name(), terms=terms, now=NOW)

    assert (error.value.code, error.value.field) == (ErrorCode.INVALID_INPUT, [field])


async def test_a_contract_change_is_a_new_version_in_force_from_its_date(db: Database) -> None:
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=NOW)
        cheaper = ContractTerms(**{**TERMS.__dict__, "issue_price": Decimal("0.009")})
        await registry.change_contract(
            conn,
            partner_id=partner.id,
            terms=cheaper,
            effective_from=NOW + timedelta(days=10),
            now=NOW,
        )
        today = await registry.get_partner(conn, partner_id=partner.id, now=NOW)
        later = await registry.get_partner(
            conn, partner_id=partner.id, now=NOW + timedelta(days=11)
        )

    assert (today.contract.version, today.contract.terms.issue_price) == (1, Decimal("0.010"))
    assert (later.contract.version, later.contract.terms.issue_price) == (2, Decimal("0.009"))


async def test_a_policy_change_reaches_the_ledger(db: Database) -> None:
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=NOW)
        looser = ContractTerms(
            **{**TERMS.__dict__, "credit_limit_points": None, "allow_negative_reversal": True}
        )
        await registry.change_contract(
            conn, partner_id=partner.id, terms=looser, effective_from=NOW, now=NOW
        )
        issued = await ledger_repository.partner_account(
            conn, partner_id=partner.id, kind=AccountKind.PARTNER_ISSUED
        )

    assert issued is not None
    assert (issued.credit_limit_points, issued.allow_negative_reversal) == (None, True)


async def test_suspending_a_partner_changes_its_status(db: Database) -> None:
    name = unique_name()
    async with db.transaction(SYSTEM) as conn:
        await registry.add_partner(conn, name=name, terms=TERMS, now=NOW)
        suspended = await registry.set_status(
            conn, name=name, status=PartnerStatus.SUSPENDED, now=NOW
        )

    assert suspended.status == PartnerStatus.SUSPENDED
