"""Targeted campaigns: a campaign with a target selects its audience when it is created,
set-based in one statement (run as the owner: a COALITION audience holds members the
owner cannot see), holds a random control share of it out (recorded, no offer) and makes
an offer to each of the others; each offer is announced to the partners the member is
already linked to (``offer.created``, by trigger). Members see and activate offers in
their wallet; a member's next purchase where the offer applies uses it.

The report compares treated and control over the campaign's window (purchases at the
owner, spend): groups below k members are hidden, and so is the uplift then (the treated
conversion minus the control's). Its cost is the points the campaign awarded, at each
funder's issue price (the coalition's points at the redemption price of the partner
where they were earned).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from exchange.insights import repository
from exchange.insights.kpis import ratio
from exchange.insights.models import (
    Audience,
    CampaignReport,
    GroupOutcome,
    Offer,
    OfferStatus,
    Target,
)
from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput, NotFound
from exchange.loyalty.models import Campaign
from partners import registry
from settlement.money import round_total

#: An offer of a campaign without an end lasts this long.
OPEN_ENDED_OFFER = timedelta(days=30)


async def select(
    conn: Connection, *, campaign: Campaign, target: Target, now: datetime
) -> tuple[int, int]:
    """Record the target and select its audience: (offers made, members held out)."""
    if campaign.owner_partner_id is None and target.audience == Audience.OWN_MEMBERS:
        raise InvalidInput(
            "an operator's campaign targets the COALITION audience",
            field=["target", "audience"],
        )
    await repository.insert_target(
        conn, campaign_id=campaign.id, segment=target.segment, audience=str(target.audience),
        control_share=target.control_share, offer_title=target.offer_title,
        offer_description=target.offer_description,
    )  # fmt: skip
    expires_at = campaign.ends_at or now + OPEN_ENDED_OFFER
    return await repository.select_audience(
        conn, campaign_id=campaign.id, now=now, expires_at=expires_at
    )


def offer_of(row: Row, now: datetime) -> Offer:
    status = OfferStatus(row.status)
    if status == OfferStatus.AVAILABLE and row.expires_at is not None and row.expires_at <= now:
        status = OfferStatus.EXPIRED
    return Offer(
        id=int(row.id), campaign_id=int(row.campaign_id), member_id=int(row.member_id),
        title=row.title, description=row.description, status=status, expires_at=row.expires_at,
    )  # fmt: skip


async def offers_of_member(
    conn: Connection, *, member_id: int, now: datetime, limit: int
) -> list[Offer]:
    rows = await repository.offers_of_member(conn, member_id=member_id, limit=limit)
    return [offer_of(row, now) for row in rows]


async def activate(conn: Connection, *, offer_id: int, member_id: int, now: datetime) -> Offer:
    """AVAILABLE -> ACTIVATED, for the member's own offer that has not expired."""
    found = await repository.offers_by_ids(conn, offer_ids=[offer_id])
    if not found or int(found[0].member_id) != member_id:
        raise NotFound("no offer of that member has that id", field=["offerId"])
    if not await repository.activate_offer(conn, offer_id=offer_id, member_id=member_id, now=now):
        status = offer_of(found[0], now).status
        raise InvalidInput(f"the offer is {status}, not AVAILABLE", field=["offerId"])
    return offer_of((await repository.offers_by_ids(conn, offer_ids=[offer_id]))[0], now)


def _group(rows: list[Row], control: bool, k: int) -> tuple[GroupOutcome | None, int]:
    for row in rows:
        if bool(row.control) == control:
            outcome = GroupOutcome(int(row.members), int(row.purchasers), Decimal(row.spend))
            return (outcome if outcome.members >= k else None), int(row.activated)
    return None, 0


async def report(
    conn: Connection, *, campaign: Campaign, now: datetime, k: int
) -> CampaignReport | None:
    """A targeted campaign's report (None: the campaign has no target)."""
    found = await repository.targets(conn, campaign_ids=[campaign.id])
    if not found:
        return None
    end = min(campaign.ends_at or now, now)
    rows = await repository.campaign_outcome(
        conn, campaign_id=campaign.id, start=campaign.starts_at, end=end
    )
    treated, activated = _group(rows, False, k)
    control, _ = _group(rows, True, k)
    points, cost, currency = await _cost(conn, campaign, now)
    uplift = None
    if treated is not None and control is not None:
        uplift = ratio(treated.purchasers * control.members - control.purchasers * treated.members,
                       treated.members * control.members)  # fmt: skip
    return CampaignReport(
        reach=int(found[0].treated), activated=activated,
        treated=_rounded(treated, currency), control=_rounded(control, currency),
        uplift=uplift, points_cost=points, money_cost=cost, currency=currency,
    )  # fmt: skip


def _rounded(group: GroupOutcome | None, currency: str) -> GroupOutcome | None:
    if group is None:
        return None
    return GroupOutcome(group.members, group.purchasers, round_total(group.spend, currency))


async def _cost(conn: Connection, campaign: Campaign, now: datetime) -> tuple[int, Decimal, str]:
    points, amount, currency = 0, Decimal(0), None
    for row in await repository.campaign_costs(conn, campaign_id=campaign.id):
        where = await registry.get_partner(conn, partner_id=int(row.partner_id), now=now)
        terms = where.contract.terms
        price = terms.redemption_price
        if row.funder_partner_id is not None:
            try:
                funder = await registry.get_partner(
                    conn, partner_id=int(row.funder_partner_id), now=now
                )
                price = funder.contract.terms.issue_price
            except NotFound:  # a co-funder's price is its own to know
                continue
        points += int(row.points)
        amount += int(row.points) * price
        currency = currency or terms.currency
    if currency is None:
        owner = campaign.owner_partner_id
        currency = (
            (await registry.get_partner(conn, partner_id=owner, now=now)).contract.terms.currency
            if owner is not None
            else "USD"
        )
    return points, round_total(amount, currency), currency


async def offers_by_ids(conn: Connection, *, offer_ids: list[int], now: datetime) -> list[Offer]:
    return [offer_of(row, now) for row in await repository.offers_by_ids(conn, offer_ids=offer_ids)]
