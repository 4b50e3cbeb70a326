"""Campaigns: who owns them (a partner, whose purchases they apply to; the operator, for
purchases at any partner), who funds them (the owner by default; a co-funded campaign
splits its awards between partners by shares and runs only after every funder accepted),
their window, condition, effect, budget and per-member limit, and their lifecycle:

    DRAFT -> ACTIVE <-> PAUSED -> ENDED;  AWAITING_FUNDING -> DRAFT once every funder
    accepted, -> ENDED when one declines; any status but ENDED -> ENDED.

A campaign's condition is compiled when it is created (a bad one is refused with its
position) and cached per process by its text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from exchange.kit.clock import require_aware
from exchange.kit.currency import plain
from exchange.kit.db import Connection, Row
from exchange.kit.errors import Forbidden, InvalidInput, NotFound
from exchange.kit.limits import (
    MAX_CAMPAIGN_COUNT,
    MAX_CAMPAIGN_NAME_LENGTH,
    MAX_EFFECT_VALUE,
    MAX_FUNDERS,
    SHARE_FRACTION_DIGITS,
    unsafe,
)
from exchange.loyalty import repository
from exchange.loyalty.conditions import Condition, compile_condition
from exchange.loyalty.models import Campaign, CampaignStatus, Effect, EffectKind, Funding
from exchange.loyalty.requests import label
from exchange.loyalty.rules import Live

ONE = Decimal(1)


@lru_cache(maxsize=4096)
def condition_of(text: str) -> Condition:
    return compile_condition(text)


def campaign_of(row: Row) -> Campaign:
    funding = row.funding if isinstance(row.funding, list) else json.loads(row.funding)
    return Campaign(
        id=int(row.id),
        owner_partner_id=row.owner_partner_id,
        name=row.name,
        status=CampaignStatus(row.status),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        condition=row.condition,
        effect=Effect(
            kind=EffectKind(row.effect_kind),
            value=plain(Decimal(row.effect_value)),
            category=row.effect_category,
            max_points_per_purchase=row.max_points_per_purchase,
        ),
        budget_points=row.budget_points,
        spent_points=int(row.awarded),
        per_member_limit=row.per_member_limit,
        targeted=bool(getattr(row, "targeted", False)),
        funding=[
            Funding(f["partner"], plain(Decimal(str(f["share"]))), f["accepted"], f["declined"])
            for f in funding
        ],
    )


#: Live campaigns parsed and compiled, by (id, updated_at): an ACTIVE campaign's terms
#: and funding never change without its updated_at changing, so a purchase reads the
#: stamps of the campaigns that can apply (under the caller's row scope) and parses only
#: the ones this process has not seen.
_LIVE: dict[tuple[int, datetime], Live] = {}
_LIVE_MAX = 10_000


async def live(conn: Connection, *, partner_id: int) -> list[Live]:
    """The ACTIVE campaigns that can apply to the partner's purchases, compiled."""
    stamps = [
        (int(row.id), row.updated_at)
        for row in await repository.live_campaign_stamps(conn, partner_id=partner_id)
    ]
    missing = [campaign_id for campaign_id, at in stamps if (campaign_id, at) not in _LIVE]
    if missing:
        if len(_LIVE) > _LIVE_MAX:
            _LIVE.clear()
        for row in await repository.campaign_terms(conn, campaign_ids=missing):
            _LIVE[(int(row.id), row.updated_at)] = Live(
                campaign_of(row), condition_of(row.condition)
            )
    return [_LIVE[stamp] for stamp in stamps if stamp in _LIVE]


async def everything(
    conn: Connection, *, status: str | None = None, limit: int = 1000
) -> list[Campaign]:
    """Campaigns the caller may see, newest first (the operator's CLI: all of them)."""
    return [
        campaign_of(row) for row in await repository.campaigns(conn, status=status, limit=limit)
    ]


async def get(conn: Connection, *, campaign_id: int) -> Campaign:
    rows = await repository.campaigns(conn, campaign_ids=[campaign_id])
    if not rows:
        raise NotFound("no campaign has that id", field=["campaignId"])
    return campaign_of(rows[0])


@dataclass(frozen=True)
class CampaignDraft:
    """A campaign as its owner defines it. ``funders``: (partner id, share); empty: the
    owner pays all (an operator's campaign: the coalition)."""

    name: str
    starts_at: datetime
    effect: Effect
    ends_at: datetime | None = None
    condition: str = "true"
    budget_points: int | None = None
    per_member_limit: int | None = None
    funders: tuple[tuple[int | None, Decimal], ...] = ()

    def __post_init__(self) -> None:
        label_ok = (
            isinstance(self.name, str) and 1 <= len(self.name.strip()) <= MAX_CAMPAIGN_NAME_LENGTH
        )
        if not label_ok:
            raise InvalidInput(
                f"name must be 1 to {MAX_CAMPAIGN_NAME_LENGTH} characters", field=["name"]
            )
        if unsafe(self.name):
            raise InvalidInput(
                "name must not contain NUL characters or unpaired surrogates", field=["name"]
            )
        starts = require_aware(self.starts_at, "startsAt")
        object.__setattr__(self, "starts_at", starts)
        if self.ends_at is not None:
            ends = require_aware(self.ends_at, "endsAt")
            if ends <= starts:
                raise InvalidInput("endsAt must be after startsAt", field=["endsAt"])
            object.__setattr__(self, "ends_at", ends)
        _check_effect(self.effect)
        for name, value in (
            ("budgetPoints", self.budget_points),
            ("perMemberLimit", self.per_member_limit),
        ):
            if value is not None and (
                isinstance(value, bool) or not 1 <= value <= MAX_CAMPAIGN_COUNT
            ):
                raise InvalidInput(f"{name} must be a positive whole number", field=[name])


def _check_effect(effect: Effect) -> None:
    field = ["effect", "value"]
    value = effect.value
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidInput("effect value must be a positive decimal", field=field)
    if value > MAX_EFFECT_VALUE:
        raise InvalidInput(f"effect value must be at most {MAX_EFFECT_VALUE}", field=field)
    if effect.kind == EffectKind.MULTIPLIER and value <= 1:
        raise InvalidInput('a MULTIPLIER is above 1 (2 = "2x points")', field=field)
    if effect.kind == EffectKind.FIXED and value != value.to_integral_value():
        raise InvalidInput("a FIXED bonus is a whole number of points", field=field)
    label(effect.category, ["effect", "category"])
    cap = effect.max_points_per_purchase
    if cap is not None and (isinstance(cap, bool) or not 1 <= cap <= MAX_CAMPAIGN_COUNT):
        raise InvalidInput(
            "maxPointsPerPurchase must be a positive whole number",
            field=["effect", "maxPointsPerPurchase"],
        )


def funding_plan(
    owner: int | None, funders: Sequence[tuple[int | None, Decimal]]
) -> list[tuple[int | None, Decimal, bool]]:
    """(funder, share, accepted already): the owner's own share is accepted by creating
    the campaign; every other funder must accept it. Shares sum to 1."""
    if not funders:
        return [(owner, ONE, True)]
    if len(funders) > MAX_FUNDERS:
        raise InvalidInput(f"a campaign has at most {MAX_FUNDERS} funders", field=["funding"])
    seen: set[int | None] = set()
    for index, (partner_id, share) in enumerate(funders):
        at = ["funding", str(index)]
        if partner_id in seen:
            raise InvalidInput("a funder is named twice", field=[*at, "partnerId"])
        seen.add(partner_id)
        if not isinstance(share, Decimal) or not share.is_finite() or not 0 < share <= ONE:
            raise InvalidInput("a share is above 0 and at most 1", field=[*at, "share"])
        exponent = share.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -SHARE_FRACTION_DIGITS:
            raise InvalidInput(
                f"a share has at most {SHARE_FRACTION_DIGITS} decimals", field=[*at, "share"]
            )
    if sum((share for _, share in funders), Decimal(0)) != ONE:
        raise InvalidInput("funding shares must sum to 1", field=["funding"])
    return [(partner_id, share, partner_id == owner) for partner_id, share in funders]


async def create(
    conn: Connection,
    *,
    owner: int | None,
    draft: CampaignDraft,
    created_by: str,
    now: datetime,
) -> Campaign:
    condition_of(draft.condition)  # refused here, with its position, when it is not valid
    funders = funding_plan(owner, draft.funders)
    awaiting = any(not accepted for _, _, accepted in funders)
    effect = draft.effect
    campaign_id = await repository.insert_campaign(
        conn,
        owner_partner_id=owner,
        name=draft.name.strip(),
        status=str(CampaignStatus.AWAITING_FUNDING if awaiting else CampaignStatus.DRAFT),
        starts_at=draft.starts_at,
        ends_at=draft.ends_at,
        condition=draft.condition,
        effect_kind=str(effect.kind),
        effect_value=effect.value,
        effect_category=effect.category,
        max_points_per_purchase=effect.max_points_per_purchase,
        budget_points=draft.budget_points,
        per_member_limit=draft.per_member_limit,
        created_by=created_by,
        now=now,
    )
    await repository.insert_funding(conn, campaign_id=campaign_id, funders=funders, now=now)
    if draft.budget_points is not None:
        await repository.insert_budget(conn, campaign_id=campaign_id, budget=draft.budget_points)
    return await get(conn, campaign_id=campaign_id)


_MOVES: dict[CampaignStatus, tuple[CampaignStatus, ...]] = {
    CampaignStatus.ACTIVE: (CampaignStatus.DRAFT, CampaignStatus.PAUSED),
    CampaignStatus.PAUSED: (CampaignStatus.ACTIVE,),
    CampaignStatus.ENDED: (
        CampaignStatus.DRAFT,
        CampaignStatus.AWAITING_FUNDING,
        CampaignStatus.ACTIVE,
        CampaignStatus.PAUSED,
    ),
}


async def move(
    conn: Connection, *, campaign_id: int, to: CampaignStatus, owner: int | None, now: datetime
) -> Campaign:
    """Activate, pause or end a campaign; ``owner`` None: an operator, who may move any."""
    campaign = await get(conn, campaign_id=campaign_id)
    if owner is not None and campaign.owner_partner_id != owner:
        raise Forbidden("only the campaign's owner may change its status")
    allowed = _MOVES[to]
    if not await repository.set_campaign_status(
        conn,
        campaign_id=campaign_id,
        status=str(to),
        allowed_from=[str(s) for s in allowed],
        now=now,
    ):
        raise InvalidInput(
            f"a {campaign.status} campaign can't become {to}"
            f" (only a {' or '.join(str(s) for s in allowed)} one can)",
            field=["campaignId"],
        )
    return await get(conn, campaign_id=campaign_id)


async def answer(
    conn: Connection, *, campaign_id: int, partner_id: int, accept: bool, now: datetime
) -> Campaign:
    """A funder accepts (the campaign becomes DRAFT once every funder did) or declines
    (the campaign ends: nobody funds anything without agreeing to)."""
    campaign = await get(conn, campaign_id=campaign_id)
    if partner_id not in {f.partner_id for f in campaign.funding}:
        raise NotFound("no campaign you are asked to fund has that id", field=["campaignId"])
    if not await repository.answer_funding(
        conn, campaign_id=campaign_id, partner_id=partner_id, accept=accept, now=now
    ):
        raise InvalidInput("you already answered this campaign's funding", field=["campaignId"])
    answered = await get(conn, campaign_id=campaign_id)
    waiting = [CampaignStatus.AWAITING_FUNDING]
    if not accept:
        await repository.set_campaign_status(
            conn, campaign_id=campaign_id, status=str(CampaignStatus.ENDED),
            allowed_from=[str(s) for s in _MOVES[CampaignStatus.ENDED]], now=now,
        )  # fmt: skip
    elif all(f.accepted for f in answered.funding):
        await repository.set_campaign_status(
            conn, campaign_id=campaign_id, status=str(CampaignStatus.DRAFT),
            allowed_from=[str(s) for s in waiting], now=now,
        )  # fmt: skip
    return await get(conn, campaign_id=campaign_id)
