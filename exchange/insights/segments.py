"""Segments: the built-in ones (rules in one SQL function, ``insights_segments``; decision
0018) and custom ones, a CEL condition over a member's profile compiled and checked by
the loyalty engine's one mechanism (:func:`exchange.loyalty.conditions.compile_condition`,
with the profile's variables instead of a purchase's).

A custom segment belongs to its creator (a partner, or the operator) and is judged on the
profile that creator may read. Its size is counted by evaluating it over the creator's
members' profiles, a page at a time: a partner's linked members, the operator's every
member with a purchase (each as the coalition's profile).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from exchange.insights import repository
from exchange.insights.models import BUILT_IN_IDS, BuiltInSegment, Profile, Segment
from exchange.insights.profiles import profile_of_row
from exchange.kit.currency import minor_digits
from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput
from exchange.kit.limits import MAX_SEGMENTS
from exchange.loyalty import conditions
from exchange.loyalty.conditions import Condition
from partners import registry

#: What a custom segment's condition may read.
PROFILE_FIELDS: dict[str, frozenset[str]] = {
    "profile": frozenset(
        {
            "purchases",
            "spend_minor",
            "days_since_first",
            "days_since_last",
            "mean_days_between",
            "recency",
            "frequency",
            "monetary",
            "consent",
            "segments",
        }
    )
}
NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,59}$")
PAGE = 1_000


@lru_cache(maxsize=1024)
def condition_of(text: str) -> Condition:
    """A custom segment's condition, compiled (INVALID_INPUT on ``condition`` when it is
    not valid CEL over the profile)."""
    return conditions.compile_condition(text, fields=PROFILE_FIELDS)


def _days(since: datetime | None, now: datetime) -> int:
    return (now - since).days if since is not None else -1


def variables(profile: Profile, *, now: datetime, digits: int) -> dict[str, Any]:
    """The profile as a condition reads it: money in minor units, days as whole days
    (-1: none yet), quintiles 0 until the first refresh."""
    rfm = profile.rfm
    mean = profile.mean_days_between_purchases
    return {
        "profile": {
            "purchases": profile.purchases,
            "spend_minor": int(profile.spend.scaleb(digits)),
            "days_since_first": _days(profile.first_purchase_at, now),
            "days_since_last": _days(profile.last_purchase_at, now),
            "mean_days_between": int(mean) if mean is not None else -1,
            "recency": rfm.recency if rfm else 0,
            "frequency": rfm.frequency if rfm else 0,
            "monetary": rfm.monetary if rfm else 0,
            "consent": profile.consent_cross_partner,
            "segments": list(profile.segments),
        }
    }


async def digits_of(conn: Connection, *, partner_id: int | None, now: datetime) -> int:
    """Minor digits of the partner's contract currency (the operator's view: 2)."""
    if partner_id is None:
        return 2
    partner = await registry.get_partner(conn, partner_id=partner_id, now=now)
    return minor_digits(partner.contract.terms.currency)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            "name must be 1 to 60 capital letters, digits or _, starting with a letter",
            field=["name"],
        )
    if name in BuiltInSegment.__members__:
        raise InvalidInput(f"{name} is a built-in segment", field=["name"])
    return name


async def create(
    conn: Connection,
    *,
    owner: int | None,
    name: str,
    condition: str,
    created_by: str,
    now: datetime,
) -> Segment:
    """A custom segment of ``owner`` (None: the operator's), with its size now."""
    check_name(name)
    compiled = condition_of(condition)
    if len(await customs(conn, owner=owner)) >= MAX_SEGMENTS:
        raise InvalidInput(f"you have {MAX_SEGMENTS} segments already", field=["name"])
    segment_id = await repository.insert_segment(
        conn, owner_partner_id=owner, name=name, condition=condition,
        created_by=created_by, now=now,
    )  # fmt: skip
    if segment_id is None:
        raise InvalidInput(f"you have a segment named {name} already", field=["name"])
    size = await custom_sizes(conn, owner=owner, now=now, customs=[(name, compiled)])
    return Segment(segment_id, name, False, condition, size.get(name, 0))


async def customs(conn: Connection, *, owner: int | None) -> list[tuple[int, str, str]]:
    rows = await repository.segment_rows(
        conn, owner_partner_id=owner, after_id=0, limit=MAX_SEGMENTS
    )
    return [(int(row.id), row.name, row.condition) for row in rows]


def matching(
    profile: Profile, customs: list[tuple[str, Condition]], *, now: datetime, digits: int
) -> list[str]:
    """The custom segments whose condition holds for the profile."""
    if not customs:
        return []
    context = conditions.context(variables(profile, now=now, digits=digits))
    return [name for name, condition in customs if condition.holds(context)]


async def custom_sizes(
    conn: Connection, *, owner: int | None, now: datetime, customs: list[tuple[str, Condition]]
) -> dict[str, int]:
    """How many members each custom segment holds, judged on the profiles the owner reads:
    a partner's linked members (its own purchases), the operator's every member with a
    purchase (the coalition's)."""
    sizes = dict.fromkeys((name for name, _ in customs), 0)
    if not customs:
        return sizes
    digits = await digits_of(conn, partner_id=owner, now=now)
    after = 0
    while True:
        rows = await repository.profiles_page(
            conn, partner_id=owner, now=now, after_member=after, limit=PAGE
        )
        for row in rows:
            profile = profile_of_row(int(row.member_id), row)
            for name in matching(profile, customs, now=now, digits=digits):
                sizes[name] += 1
        if len(rows) < PAGE:
            return sizes
        after = int(rows[-1].member_id)


def _built_in_ids(after_id: int, first: int) -> list[BuiltInSegment]:
    return [s for s in BuiltInSegment if BUILT_IN_IDS[s] > after_id][:first]


async def _built_in(
    conn: Connection, *, owner: int | None, now: datetime, which: list[BuiltInSegment]
) -> list[Segment]:
    """The built-in segments ``which``, with their sizes among the owner's members."""
    if not which:
        return []
    sizes = await repository.built_in_sizes(conn, partner_id=owner, now=now)
    return [Segment(BUILT_IN_IDS[s], str(s), True, None, sizes.get(s, 0)) for s in which]


async def _custom(
    conn: Connection, *, owner: int | None, now: datetime, rows: list[Row]
) -> list[Segment]:
    """The owner's custom segments of ``rows``, with their sizes among its members."""
    compiled = [(row.name, condition_of(row.condition)) for row in rows]
    sizes = await custom_sizes(conn, owner=owner, now=now, customs=compiled)
    return [Segment(int(r.id), r.name, False, r.condition, sizes[r.name]) for r in rows]


async def listing(
    conn: Connection, *, owner: int | None, now: datetime, after_id: int, first: int
) -> list[Segment]:
    """Built-in segments (ids 1 to 6) then the owner's custom ones, after ``after_id``,
    with their sizes among the owner's members (the operator: the coalition's)."""
    found = await _built_in(conn, owner=owner, now=now, which=_built_in_ids(after_id, first))
    rows = await repository.segment_rows(
        conn, owner_partner_id=owner, after_id=after_id, limit=first - len(found)
    )
    return found + await _custom(conn, owner=owner, now=now, rows=rows)


async def by_id(
    conn: Connection, *, owner: int | None, segment_id: int, now: datetime
) -> Segment | None:
    """One segment of those :func:`listing` gives the owner (a built-in one, or one of its
    own custom ones), with its size; None for any other id: another partner's segment is
    as absent as one that never existed."""
    built_in = [s for s in BuiltInSegment if BUILT_IN_IDS[s] == segment_id]
    if built_in:
        return (await _built_in(conn, owner=owner, now=now, which=built_in))[0]
    rows = await repository.segment_rows(
        conn, owner_partner_id=owner, after_id=0, limit=1, segment_id=segment_id
    )
    found = await _custom(conn, owner=owner, now=now, rows=rows)
    return found[0] if found else None
