"""The partner registry: partners, their versioned contracts and status.

A contract change is a new version with an effective date (settlement prices each entry
with the version in force when it was booked). The ledger's policy flags for a partner
follow the version in force now: :func:`add_partner` and :func:`change_contract` push
them at once, :func:`sync_policies` (run by the periodic sweep) when a future-dated
version comes into force.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from exchange import ledger
from exchange.kit import limits
from exchange.kit.clock import require_aware
from exchange.kit.currency import check_currency, plain
from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput, Kind, NotFound, Ref
from exchange.kit.limits import MAX_EARN_RATE, MAX_LIFETIME_DAYS, MAX_POINTS_PER_OPERATION
from exchange.ledger.models import PartnerPolicy
from partners import repository
from partners.errors import PartnerExists
from partners.models import (
    Contract,
    ContractChanges,
    ContractTerms,
    FundingModel,
    Partner,
    PartnerListing,
    PartnerStatus,
)

#: Points per currency unit; far above any real programme, far below an overflow.


def _price(value: object, field: str) -> Decimal:
    return limits.decimal(
        value, field, fraction_digits=limits.PRICE_FRACTION_DIGITS, allow_zero=True
    )


def validate_terms(terms: ContractTerms) -> ContractTerms:
    currency = check_currency(terms.currency, "currency")
    fee_rate = _price(terms.fee_rate, "feeRate")
    if fee_rate >= 1:
        raise InvalidInput("feeRate must be below 1 (it is a fraction)", field=["feeRate"])
    if not 1 <= terms.points_lifetime_days <= MAX_LIFETIME_DAYS:
        raise InvalidInput(
            f"pointsLifetimeDays must be between 1 and {MAX_LIFETIME_DAYS}",
            field=["pointsLifetimeDays"],
        )
    if terms.credit_limit_points is not None and terms.credit_limit_points < 0:
        raise InvalidInput("creditLimitPoints must be zero or more", field=["creditLimitPoints"])
    maximum = terms.max_points_per_operation
    if isinstance(maximum, bool) or not 1 <= maximum <= MAX_POINTS_PER_OPERATION:
        raise InvalidInput(
            f"maxPointsPerOperation must be between 1 and {MAX_POINTS_PER_OPERATION}",
            field=["maxPointsPerOperation"],
        )
    earn_rate = _price(terms.earn_rate, "earnRate")
    if earn_rate > MAX_EARN_RATE:
        raise InvalidInput(f"earnRate must be at most {MAX_EARN_RATE}", field=["earnRate"])
    return ContractTerms(
        currency=currency,
        issue_price=_price(terms.issue_price, "issuePrice"),
        redemption_price=_price(terms.redemption_price, "redemptionPrice"),
        fee_rate=fee_rate,
        funding_model=FundingModel(terms.funding_model),
        points_lifetime_days=terms.points_lifetime_days,
        credit_limit_points=terms.credit_limit_points,
        allow_negative_reversal=terms.allow_negative_reversal,
        earn_rate=earn_rate,
        max_points_per_operation=maximum,
    )


def policy_of(terms: ContractTerms) -> PartnerPolicy:
    return PartnerPolicy(
        points_lifetime_days=terms.points_lifetime_days,
        credit_limit_points=terms.credit_limit_points,
        allow_negative_reversal=terms.allow_negative_reversal,
        max_points_per_operation=terms.max_points_per_operation,
    )


def _partner(row: Row) -> Partner:
    terms = ContractTerms(
        currency=row.currency,
        issue_price=plain(row.issue_price),
        redemption_price=plain(row.redemption_price),
        fee_rate=plain(row.fee_rate),
        funding_model=FundingModel(row.funding_model),
        points_lifetime_days=row.points_lifetime_days,
        credit_limit_points=row.credit_limit_points,
        allow_negative_reversal=row.allow_negative_reversal,
        earn_rate=plain(row.earn_rate),
        max_points_per_operation=int(row.max_points_per_operation),
    )
    return Partner(
        id=int(row.id),
        name=row.name,
        status=PartnerStatus(row.status),
        created_at=row.created_at,
        contract=Contract(int(row.id), int(row.version), row.effective_from, terms),
    )


async def add_partner(
    conn: Connection, *, name: str, terms: ContractTerms, now: datetime
) -> Partner:
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name must be 1 to 100 characters", field=["name"])
    terms = validate_terms(terms)
    partner_id = await repository.insert_partner(conn, name=name, created_at=now)
    if partner_id is None:
        raise PartnerExists(f"a partner named {name!r} already exists", field=["name"])
    await repository.insert_contract(conn, partner_id=partner_id, effective_from=now, terms=terms)
    await ledger.open_partner(conn, partner_id=partner_id, policy=policy_of(terms))
    return await get_partner(conn, partner_id=partner_id, now=now)


async def get_partner(
    conn: Connection, *, now: datetime, partner_id: int | None = None, name: str | None = None
) -> Partner:
    row = await repository.partner_in_force(conn, now=now, partner_id=partner_id, name=name)
    if row is None and partner_id is not None:
        raise NotFound(
            "partner {partner} does not exist",
            field=["partner"],
            refs={"partner": Ref(Kind.PARTNER, partner_id)},
        )
    if row is None:
        raise NotFound(f"partner {name!r} does not exist", field=["partner"])
    return _partner(row)


async def list_partners(conn: Connection, *, now: datetime) -> list[Partner]:
    return [_partner(row) for row in await repository.partners_in_force(conn, now=now)]


async def listing(
    conn: Connection,
    *,
    now: datetime,
    partner_ids: list[int] | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[PartnerListing]:
    """Partners in id order; contracts as row-level security lets the caller see them."""
    rows = await repository.partners_listing(
        conn, now=now, partner_ids=partner_ids, after_id=after_id, limit=limit
    )
    return [
        PartnerListing(
            id=int(row.id),
            name=row.name,
            status=PartnerStatus(row.status),
            contract=_partner(row).contract if row.version is not None else None,
        )
        for row in rows
    ]


async def change_contract(
    conn: Connection,
    *,
    partner_id: int,
    terms: ContractTerms,
    effective_from: datetime,
    now: datetime,
) -> Contract:
    """Add a contract version; the ledger policy follows the version in force now."""
    terms = validate_terms(terms)
    await get_partner(conn, partner_id=partner_id, now=now)
    await repository.lock_partner(conn, partner_id=partner_id)
    version = await repository.insert_contract(
        conn, partner_id=partner_id, effective_from=effective_from, terms=terms
    )
    current = await get_partner(conn, partner_id=partner_id, now=now)
    await ledger.set_partner_policy(
        conn, partner_id=partner_id, policy=policy_of(current.contract.terms)
    )
    return Contract(partner_id, version, effective_from, terms)


#: How far in the past an amendment's effectiveFrom may be (the caller's clock drifts).
CONTRACT_CLOCK_SKEW = timedelta(minutes=5)


async def amend_contract(
    conn: Connection,
    *,
    partner_id: int,
    changes: ContractChanges,
    effective_from: datetime,
    now: datetime,
) -> Contract:
    """A new contract version from ``effective_from``: the version in force then, with
    the terms ``changes`` names changed. It takes effect from now on (a few minutes of
    clock skew aside): periods already past keep the terms in force then, so a settled
    period is never re-priced."""
    effective_from = require_aware(effective_from, "effectiveFrom")
    if effective_from < now - CONTRACT_CLOCK_SKEW:
        raise InvalidInput(
            "effectiveFrom must be now or later: past periods keep the terms in force then",
            field=["effectiveFrom"],
        )
    base = await get_partner(conn, partner_id=partner_id, now=effective_from)
    return await change_contract(
        conn,
        partner_id=partner_id,
        terms=changes.applied_to(base.contract.terms),
        effective_from=effective_from,
        now=now,
    )


async def sync_policies(conn: Connection, *, now: datetime) -> int:
    """Push every partner's policy in force now to the ledger; returns how many."""
    partners = await list_partners(conn, now=now)
    for partner in partners:
        await ledger.set_partner_policy(
            conn, partner_id=partner.id, policy=policy_of(partner.contract.terms)
        )
    return len(partners)


async def set_status(
    conn: Connection, *, name: str, status: PartnerStatus, now: datetime
) -> Partner:
    partner = await get_partner(conn, name=name, now=now)
    await repository.set_status(conn, partner_id=partner.id, status=str(status))
    await repository.notify_auth_change(conn)
    return await get_partner(conn, partner_id=partner.id, now=now)
