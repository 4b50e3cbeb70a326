"""Value types of member insights: a member's profile and RFM scores, segments, targets,
offers, a campaign's report and the KPIs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class BuiltInSegment(enum.StrEnum):
    """The built-in segments (decision 0018; one SQL function, ``insights_segments``)."""

    NEW = "NEW"
    ACTIVE = "ACTIVE"
    REPEAT = "REPEAT"
    HIGH_VALUE = "HIGH_VALUE"
    AT_RISK = "AT_RISK"
    LAPSED = "LAPSED"


#: The API ids of the built-in segments (custom ones start at 100).
BUILT_IN_IDS = {segment: number for number, segment in enumerate(BuiltInSegment, start=1)}


@dataclass(frozen=True)
class Rfm:
    """Quintiles 1..5 (5: the most recent, most frequent, highest spend)."""

    recency: int
    frequency: int
    monetary: int


@dataclass(frozen=True)
class Profile:
    """What a caller may read of a member: a partner its own purchases with the member
    (``here``), an operator the coalition's. ``segments`` are the built-in ones the
    member is in, judged on the partner's own data unless the member consented to
    cross-partner use."""

    member_id: int
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    purchases: int
    spend: Decimal
    mean_days_between_purchases: Decimal | None
    rfm: Rfm | None
    consent_cross_partner: bool
    segments: list[str]


class Audience(enum.StrEnum):
    OWN_MEMBERS = "OWN_MEMBERS"
    COALITION = "COALITION"


class OfferStatus(enum.StrEnum):
    AVAILABLE = "AVAILABLE"
    ACTIVATED = "ACTIVATED"
    USED = "USED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Segment:
    id: int
    name: str
    built_in: bool
    condition: str | None
    size: int


@dataclass(frozen=True)
class Offer:
    id: int
    campaign_id: int
    member_id: int
    title: str
    description: str | None
    status: OfferStatus
    expires_at: datetime | None
