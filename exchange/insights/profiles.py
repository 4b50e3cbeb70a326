"""A member's profile: what the purchases left (first and last purchase, count and spend
per partner, kept in the purchase's own transaction by the loyalty engine; a refund takes
back its spend), the mean interval between purchases, RFM quintiles and the built-in
segments.

A partner reads the profile of a member it linked as its own purchases made it; the
segments it sees are judged on those too, unless the member consented to cross-partner
use: then on the coalition's profile (the partner still reads no other partner's
figures). The operator reads the coalition's. RFM quintiles are recomputed set-based by
:func:`refresh` (``exchange insights refresh`` and a periodic task in ``serve``), over
every partner's members and over the coalition.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from exchange.insights import repository
from exchange.insights.models import BuiltInSegment, Profile, Rfm
from exchange.kit.currency import plain
from exchange.kit.db import Connection, Row

SECONDS_PER_DAY = Decimal(86_400)
DAYS = Decimal("0.01")


def mean_days_between(
    first: datetime | None, last: datetime | None, purchases: int
) -> Decimal | None:
    """The mean interval between consecutive purchases, in days (two decimals): the span
    from the first to the last over the purchases - 1 intervals between them."""
    if first is None or last is None or purchases < 2:
        return None
    seconds = Decimal((last - first).total_seconds()) / (purchases - 1)
    return (seconds / SECONDS_PER_DAY).quantize(DAYS)


def rfm_of(recency: int | None, frequency: int | None, monetary: int | None) -> Rfm | None:
    if recency is None or frequency is None or monetary is None:
        return None
    return Rfm(recency=int(recency), frequency=int(frequency), monetary=int(monetary))


def profile_of_row(member_id: int, row: Row) -> Profile:
    purchases = int(row.purchases)
    order = list(BuiltInSegment)
    return Profile(
        member_id=member_id,
        first_purchase_at=row.first_purchase_at,
        last_purchase_at=row.last_purchase_at,
        purchases=purchases,
        spend=plain(Decimal(row.spend or 0)),
        mean_days_between_purchases=mean_days_between(
            row.first_purchase_at, row.last_purchase_at, purchases
        ),
        rfm=rfm_of(row.rfm_recency, row.rfm_frequency, row.rfm_monetary),
        consent_cross_partner=bool(row.consent),
        segments=sorted(row.segments or [], key=lambda name: order.index(BuiltInSegment(name))),
    )


async def profile(
    conn: Connection, *, member_id: int, partner_id: int | None, now: datetime
) -> Profile:
    """The member's profile as the partner (None: the operator) may read it."""
    row = await repository.profile(conn, member_id=member_id, partner_id=partner_id, now=now)
    return profile_of_row(member_id, row)


async def refresh(conn: Connection, *, now: datetime) -> tuple[int, int]:
    """Recompute the RFM quintiles now (system work), after any recomputation under way:
    (profiles at partners changed, members' coalition-wide scores changed)."""
    await repository.claim_refresh(conn, wait=True)
    return await _recompute(conn, now)


async def refresh_if_due(
    conn: Connection, *, now: datetime, every: timedelta
) -> tuple[int, int] | None:
    """Recompute the RFM quintiles if they were last recomputed ``every`` ago or longer
    and no other worker is recomputing them (None: not done). The last recomputation is
    kept in the database, so neither a restart nor another worker repeats it early."""
    last = await repository.claim_refresh(conn, wait=False)
    if last is None or now - last < every:
        return None
    return await _recompute(conn, now)


async def _recompute(conn: Connection, now: datetime) -> tuple[int, int]:
    changed = await repository.refresh_rfm(conn)
    await repository.mark_refreshed(conn, now=now)
    return changed


async def set_consent(conn: Connection, *, member_id: int, consent: bool, now: datetime) -> bool:
    """Record the member's consent to cross-partner use; whether it changed."""
    return await repository.set_consent(conn, member_id=member_id, consent=consent, now=now)
