"""Value types of the loyalty engine: purchases and their awards, campaigns, tiers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class Channel(enum.StrEnum):
    IN_STORE = "IN_STORE"
    ONLINE = "ONLINE"
    APP = "APP"


class AwardRule(enum.StrEnum):
    """Why points were awarded: the partner's earn rate, the member's tier, a campaign."""

    BASE = "BASE"
    TIER = "TIER"
    CAMPAIGN = "CAMPAIGN"


class CampaignStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    AWAITING_FUNDING = "AWAITING_FUNDING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ENDED = "ENDED"


class EffectKind(enum.StrEnum):
    """MULTIPLIER m: a bonus of (m - 1) x base ("2x points"); FIXED v: v points;
    POINTS_PER_AMOUNT v: v points per currency unit of the matching items."""

    MULTIPLIER = "MULTIPLIER"
    FIXED = "FIXED"
    POINTS_PER_AMOUNT = "POINTS_PER_AMOUNT"


@dataclass(frozen=True)
class Item:
    """One line of a purchase: ``amount`` is the line total, in currency units."""

    category: str
    amount: Decimal
    quantity: int = 1
    sku: str | None = None


@dataclass(frozen=True)
class Award:
    """Points one rule gave: ``funder`` the partner who issued them (None: the coalition)."""

    rule: AwardRule
    points: int
    funder: int | None
    campaign_id: int | None = None
    entry_id: int | None = None
    campaign_name: str | None = None


@dataclass(frozen=True)
class Purchase:
    id: int
    partner_id: int
    member_id: int
    amount: Decimal
    refunded_amount: Decimal
    currency: str
    occurred_at: datetime
    channel: Channel | None
    store_ref: str | None
    reference: str | None
    points: int
    awards: list[Award]
    created_at: datetime


@dataclass(frozen=True)
class Effect:
    kind: EffectKind
    value: Decimal
    category: str | None = None
    max_points_per_purchase: int | None = None


@dataclass(frozen=True)
class Funding:
    """A funder's share of a campaign's awards (``partner_id`` None: the coalition)."""

    partner_id: int | None
    share: Decimal
    accepted: bool
    declined: bool = False


@dataclass(frozen=True)
class Campaign:
    id: int
    owner_partner_id: int | None
    name: str
    status: CampaignStatus
    starts_at: datetime
    ends_at: datetime | None
    condition: str
    effect: Effect
    budget_points: int | None
    spent_points: int
    per_member_limit: int | None
    funding: list[Funding] = field(default_factory=list)
    #: A targeted campaign (insights, decision 0018) rewards only members holding an
    #: ACTIVATED offer of it: its control group and the rest of the coalition get nothing.
    targeted: bool = False

    def applies_at(self, partner_id: int, moment: datetime) -> bool:
        """Whether the campaign is live for a purchase at this partner at this moment: its
        owner's purchases (an operator's campaign: any partner's), inside its window."""
        at_owner = self.owner_partner_id is None or self.owner_partner_id == partner_id
        in_window = self.starts_at <= moment and (self.ends_at is None or moment < self.ends_at)
        return self.status == CampaignStatus.ACTIVE and at_owner and in_window


@dataclass(frozen=True)
class Tier:
    name: str
    qualifying_points: int
    earn_multiplier: Decimal


@dataclass(frozen=True)
class MemberTier:
    """A member's tier as the wallet shows it: a progress bar to the next one."""

    name: str
    qualifying_points: int
    next: str | None
    points_to_next: int | None
    valid_until: datetime | None
