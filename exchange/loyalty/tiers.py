"""Tiers: coalition-wide levels a member reaches by qualifying points (points earned from
purchases over a rolling window of months; not transfers, not the balance; refunds take
them back). A member goes up at once, in the purchase that qualifies it; it goes down
only when a review at a month end finds it below its tier and the grace period after
that month end has passed. Every change is kept in the member's tier history.

A tier's earn multiplier t is a rule like any other: a TIER award of floor(base x (t-1)),
issued by the coalition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from exchange.kit.currency import plain
from exchange.kit.db import Connection
from exchange.kit.errors import InvalidInput
from exchange.kit.limits import (
    MAX_POINTS_PER_OPERATION,
    MAX_TIER_MULTIPLIER,
    MAX_TIER_NAME_LENGTH,
    MAX_TIERS,
)
from exchange.kit.settings import Tunables
from exchange.loyalty import repository
from exchange.loyalty.models import MemberTier, Tier


def month_of(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def months_before(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def window_start(moment: datetime, tunables: Tunables) -> date:
    """The first month whose purchases still qualify at ``moment``."""
    return months_before(month_of(moment), tunables.tier_window_months - 1)


def next_month_end(moment: datetime) -> datetime:
    first = month_of(moment)
    following = months_before(first, -1)
    return datetime(following.year, following.month, 1, tzinfo=UTC)


async def all_tiers(conn: Connection) -> list[Tier]:
    return [
        Tier(row.name, int(row.qualifying_points), plain(Decimal(row.earn_multiplier)))
        for row in await repository.tiers(conn)
    ]


async def set_tier(
    conn: Connection,
    *,
    name: str,
    qualifying_points: int,
    earn_multiplier: Decimal,
    now: datetime,
) -> Tier:
    """Create or change a tier (operator's CLI)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= MAX_TIER_NAME_LENGTH:
        raise InvalidInput(
            f"a tier's name is 1 to {MAX_TIER_NAME_LENGTH} characters", field=["name"]
        )
    if (
        isinstance(qualifying_points, bool)
        or not 0 <= qualifying_points <= MAX_POINTS_PER_OPERATION
    ):
        raise InvalidInput("qualifying points must be 0 or more", field=["qualifyingPoints"])
    if not earn_multiplier.is_finite() or not 1 <= earn_multiplier <= MAX_TIER_MULTIPLIER:
        raise InvalidInput(
            f"an earn multiplier is from 1 to {MAX_TIER_MULTIPLIER}", field=["earnMultiplier"]
        )
    existing = await all_tiers(conn)
    clash = [t for t in existing if t.qualifying_points == qualifying_points and t.name != name]
    if clash:
        raise InvalidInput(
            f"tier {clash[0].name} already starts at {qualifying_points} qualifying points",
            field=["qualifyingPoints"],
        )
    if len({t.name for t in existing} | {name}) > MAX_TIERS:
        raise InvalidInput(f"at most {MAX_TIERS} tiers", field=["name"])
    await repository.upsert_tier(
        conn,
        name=name,
        qualifying_points=qualifying_points,
        earn_multiplier=earn_multiplier,
        now=now,
    )
    return Tier(name, qualifying_points, earn_multiplier)


async def holders(conn: Connection) -> dict[str, int]:
    """How many members hold each tier."""
    return await repository.tier_holders(conn)


def earned(tiers: list[Tier], qualifying: int) -> Tier | None:
    """The highest tier these qualifying points reach (tiers ordered by threshold)."""
    reached = [t for t in tiers if t.qualifying_points <= qualifying]
    return reached[-1] if reached else None


def rank(tiers: list[Tier], name: str | None) -> int:
    names = [t.name for t in tiers]
    return names.index(name) + 1 if name in names else 0


async def current(conn: Connection, *, member_id: int) -> str | None:
    row = await repository.member_tier(conn, member_id=member_id)
    return row.tier if row is not None else None


def ladder_of(rows: Any) -> list[Tier]:
    """The tiers as the member's facts carry them (a JSON array, lowest first)."""
    return [
        Tier(t["name"], int(t["points"]), plain(Decimal(str(t["multiplier"]))))
        for t in (rows if isinstance(rows, list) else json.loads(rows or "[]"))
    ]


async def upgrade_if_earned(
    conn: Connection,
    *,
    member_id: int,
    tiers: list[Tier],
    held: str | None,
    qualifying: int,
    now: datetime,
) -> tuple[str | None, str | None] | None:
    """After a purchase: a member whose qualifying points (in the window, this purchase's
    included) now reach a higher tier than the one it holds goes up at once. Returns
    (from, to) when it changed."""
    if not tiers:
        return None
    reached = earned(tiers, qualifying)
    if reached is None or rank(tiers, reached.name) <= rank(tiers, held):
        return None
    await repository.change_tier(
        conn, member_id=member_id, from_tier=held, to_tier=reached.name,
        qualifying=qualifying, reason="qualified", now=now,
    )  # fmt: skip
    return held, reached.name


@dataclass(frozen=True)
class Review:
    members: int
    downgraded: int
    last_member: int


async def review(
    conn: Connection,
    *,
    as_of: datetime,
    tunables: Tunables,
    after_member: int,
    limit: int = 500,
) -> Review:
    """Downgrades at the last month end whose grace period has passed: members holding a
    tier and not reviewed since that month end are measured over the window ending there,
    and go down to the tier they earned. Work comes in batches (``after_member``)."""
    tiers = await all_tiers(conn)
    month_end = _reviewable_month_end(as_of, tunables)
    rows = await repository.members_to_review(
        conn, reviewed_before=month_end, after_member=after_member, limit=limit
    )
    downgraded = 0
    for row in rows:
        qualifying = await repository.qualifying_points(
            conn,
            member_id=int(row.member_id),
            since=window_start(month_end - timedelta(days=1), tunables),
        )
        reached = earned(tiers, qualifying)
        target = reached.name if reached is not None else None
        if rank(tiers, target) < rank(tiers, row.tier):
            await repository.change_tier(
                conn, member_id=int(row.member_id), from_tier=row.tier, to_tier=target,
                qualifying=qualifying, reason="review", now=as_of,
            )  # fmt: skip
            downgraded += 1
    await repository.mark_reviewed(conn, member_ids=[int(r.member_id) for r in rows], now=month_end)
    last = int(rows[-1].member_id) if rows else after_member
    return Review(members=len(rows), downgraded=downgraded, last_member=last)


def _reviewable_month_end(as_of: datetime, tunables: Tunables) -> datetime:
    """The latest month end M with M + grace <= as_of."""
    moment = as_of - timedelta(days=tunables.tier_grace_days)
    month = month_of(moment)
    return datetime(month.year, month.month, 1, tzinfo=UTC)


async def member_tier(
    conn: Connection, *, member_id: int, now: datetime, tunables: Tunables
) -> MemberTier | None:
    """A member's tier as the wallet shows it: the tier it holds (or the one its points
    reach, such as a tier that starts at 0), the next one and the points to it, and the
    earliest a downgrade could take effect. None when there are no tiers; ``name`` is empty
    while the member has reached none."""
    tiers = await all_tiers(conn)
    if not tiers:
        return None
    qualifying = await repository.qualifying_points(
        conn, member_id=member_id, since=window_start(now, tunables)
    )
    held = await current(conn, member_id=member_id)
    reached = earned(tiers, qualifying)
    shown = held if rank(tiers, held) >= rank(tiers, reached.name if reached else None) else None
    shown = shown or (reached.name if reached else None)
    position = rank(tiers, shown)
    following = tiers[position] if position < len(tiers) else None
    valid_until = None
    if shown is not None:
        valid_until = next_month_end(now) + timedelta(days=tunables.tier_grace_days)
    return MemberTier(
        name=shown or "",
        qualifying_points=qualifying,
        next=following.name if following else None,
        points_to_next=max(0, following.qualifying_points - qualifying) if following else None,
        valid_until=valid_until,
    )
