"""Value types of member insights: a member's profile and RFM scores, segments, targets,
offers, a campaign's report and the KPIs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from exchange.kit import limits
from exchange.kit.errors import InvalidInput


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
class Target:
    """Who a targeted campaign reaches: the members of a built-in segment, its owner's
    own or coalition members who consented and never bought there; ``control_share`` of
    them, chosen at random per member, are held out and get no offer."""

    segment: str
    offer_title: str
    audience: Audience = Audience.OWN_MEMBERS
    control_share: Decimal = Decimal("0.1")
    offer_description: str | None = None

    def __post_init__(self) -> None:
        if self.segment not in BuiltInSegment.__members__:
            raise InvalidInput(
                f"segment must be a built-in one ({', '.join(BuiltInSegment)}); a custom"
                " segment can not select an audience yet",
                field=["target", "segment"],
            )
        share = self.control_share
        exponent = share.as_tuple().exponent if isinstance(share, Decimal) else 0
        if (
            not isinstance(share, Decimal)
            or not share.is_finite()
            or not Decimal(0) <= share < Decimal(1)
            or (isinstance(exponent, int) and exponent < -limits.CONTROL_SHARE_DIGITS)
        ):
            raise InvalidInput(
                f"controlShare is at least 0 and below 1, with at most"
                f" {limits.CONTROL_SHARE_DIGITS} decimals",
                field=["target", "controlShare"],
            )
        try:
            limits.text(self.offer_title, "offerTitle", max_length=limits.MAX_OFFER_TITLE_LENGTH)
            limits.optional_text(
                self.offer_description,
                "offerDescription",
                max_length=limits.MAX_OFFER_DESCRIPTION_LENGTH,
            )
        except InvalidInput as error:
            raise InvalidInput(error.message, field=["target", *(error.field or [])]) from None


@dataclass(frozen=True)
class GroupOutcome:
    """A group of a targeted campaign over its window: members, those who bought at the
    owner (anywhere, for an operator's campaign), their spend."""

    members: int
    purchasers: int
    spend: Decimal


@dataclass(frozen=True)
class CampaignReport:
    reach: int
    activated: int
    #: None below k members (k-anonymity).
    treated: GroupOutcome | None
    control: GroupOutcome | None
    #: Treated conversion minus control conversion; None when a group is hidden.
    uplift: Decimal | None
    points_cost: int
    money_cost: Decimal
    currency: str


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
