"""What the events package speaks of: event types, endpoints and deliveries."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

#: A transaction's event goes to the partner that made it.
TRANSACTION_EVENTS = frozenset(
    {
        "points.earned",
        "points.redeemed",
        "points.reversed",
        "hold.captured",
        "hold.released",
        "hold.expired",
        "purchase.recorded",
    }
)
#: A member's event goes to every partner linked to the member, under its own ref.
MEMBER_EVENTS = frozenset(
    {
        "points.expired",
        "points.transferred",
        "points.adjusted",
        "points.expiring",
        "member.tier_changed",
        "offer.created",
        "offer.activated",
    }
)
#: A partner's own event (no member): asked to co-fund, its settlement statement, a ping.
PARTNER_EVENTS = frozenset({"campaign.funding_requested", "settlement.finalized", "webhook.ping"})
EVENT_TYPES = TRANSACTION_EVENTS | MEMBER_EVENTS | PARTNER_EVENTS
#: Subscribes to every type.
EVERY_TYPE = "*"


class EndpointStatus(enum.StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Endpoint:
    """A partner's (``partner_id`` None: the operators') webhook endpoint."""

    id: int
    partner_id: int | None
    url: str
    event_types: list[str]
    status: EndpointStatus
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one endpoint."""

    id: int
    endpoint_id: int
    event_id: int
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class NewSecret:
    """An endpoint with its signing secret, shown once (Standard Webhooks: whsec_...)."""

    endpoint: Endpoint
    secret: str
