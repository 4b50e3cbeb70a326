"""KPIs for a partner (its own) and the operator (all partners, or one): points liability
at contract prices, points issued, redeemed and expired, breakage and redemption rates,
active members (30 and 90 days), repeat rate, spend per member, monthly retention
cohorts, and cross-shopping.

Cross-partner figures come only as aggregates over at least k members
(``EXCHANGE_K_ANONYMITY``): a category row with fewer is absent, never a small number; so
is a cohort of the operator's coalition-wide view. A partner's own cohorts are its own
data and are shown whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from exchange.insights import repository
from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput, NotFound
from partners import registry
from settlement.money import round_total

RATE = Decimal("0.0001")


@dataclass(frozen=True)
class Cohort:
    """Members who first bought in ``month`` (YYYY-MM), and the share of them who
    bought again in each later month up to the window's end."""

    month: str
    members: int
    retained: list[Decimal]


@dataclass(frozen=True)
class CategoryShare:
    category: str
    share: Decimal
    members: int


@dataclass(frozen=True)
class Insights:
    liability_points: int
    liability_amount: Decimal
    currency: str
    issued: int
    redeemed: int
    expired: int
    breakage_rate: Decimal
    redemption_rate: Decimal
    active_members_30: int
    active_members_90: int
    repeat_rate: Decimal
    spend_per_member: Decimal
    retention: list[Cohort]
    cross_shopping: list[CategoryShare]


def ratio(part: int | Decimal, whole: int | Decimal) -> Decimal:
    """part / whole to four decimals; 0 when there is no whole."""
    if not whole:
        return Decimal(0).quantize(RATE)
    return (Decimal(part) / Decimal(whole)).quantize(RATE)


async def _priced(
    conn: Connection, partner_id: int | None, now: datetime
) -> tuple[int, Decimal, str]:
    """Points still in wallets and their worth at each issuer's issue price in force; the
    coalition's own points count in points, at no price. One currency only."""
    points, amounts = 0, defaultdict[str, Decimal](Decimal)
    for row in await repository.liability(conn, partner_id=partner_id):
        points += int(row.points)
        if row.issuer_partner_id is None:
            continue
        terms = (
            await registry.get_partner(conn, partner_id=int(row.issuer_partner_id), now=now)
        ).contract.terms
        amounts[terms.currency] += int(row.points) * terms.issue_price
    if len(amounts) > 1:
        raise InvalidInput(
            f"partners settle in {', '.join(sorted(amounts))}: ask for one partnerId",
            field=["partnerId"],
        )
    if not amounts:
        currency = await _currency(conn, partner_id, now)
        return points, round_total(Decimal(0), currency), currency
    currency, amount = next(iter(amounts.items()))
    return points, round_total(amount, currency), currency


async def _currency(conn: Connection, partner_id: int | None, now: datetime) -> str:
    if partner_id is not None:
        return (
            await registry.get_partner(conn, partner_id=partner_id, now=now)
        ).contract.terms.currency
    listed = await registry.listing(conn, now=now, limit=1)
    return listed[0].contract.terms.currency if listed and listed[0].contract else "USD"


def _months_between(cohort: str, end: datetime) -> int:
    year, month = (int(part) for part in cohort.split("-"))
    last = (
        end.year * 12 + end.month - 1
        if end.day == 1 and end.hour == 0
        else end.year * 12 + end.month
    )
    return max(0, last - (year * 12 + month))


def _cohorts(row: Row, end: datetime, k: int | None) -> list[Cohort]:
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    for month, offset, members in zip(
        row.cohorts or [], row.offsets or [], row.cohort_members or [], strict=True
    ):
        counts[month][int(offset)] = int(members)
    found = []
    for month, by_offset in sorted(counts.items()):
        size = by_offset.get(0, 0)
        if size == 0 or (k is not None and size < k):
            continue
        later = range(1, _months_between(month, end) + 1)
        found.append(Cohort(month, size, [ratio(by_offset.get(i, 0), size) for i in later]))
    return found


async def insights(
    conn: Connection,
    *,
    partner_id: int | None,
    start: datetime,
    end: datetime,
    now: datetime,
    k: int,
) -> Insights:
    """The KPIs of one partner (None: every partner, as the operator reads them)."""
    if end <= start:
        raise InvalidInput("to must be after from", field=["to"])
    if partner_id is not None:
        try:
            await registry.get_partner(conn, partner_id=partner_id, now=now)
        except NotFound:
            raise NotFound("no partner has that id", field=["partnerId"]) from None
    points, amount, currency = await _priced(conn, partner_id, now)
    row = await repository.kpis(conn, partner_id=partner_id, start=start, end=end)
    population, shopped = await repository.cross_shopping(
        conn, partner_id=partner_id, start=start, k=k
    )
    issued = int(row.issued)
    return Insights(
        liability_points=points, liability_amount=amount, currency=currency,
        issued=issued, redeemed=int(row.redeemed), expired=int(row.expired),
        breakage_rate=ratio(int(row.expired), issued),
        redemption_rate=ratio(int(row.redeemed), issued),
        active_members_30=int(row.active_30), active_members_90=int(row.active_90),
        repeat_rate=ratio(int(row.repeaters), int(row.purchasers)),
        spend_per_member=round_total(
            Decimal(row.spend) / int(row.spenders) if row.spenders else Decimal(0), currency
        ),
        retention=_cohorts(row, end, None if partner_id is not None else k),
        cross_shopping=[
            CategoryShare(r.category, ratio(int(r.members), population), int(r.members))
            for r in shopped
        ],
    )  # fmt: skip
