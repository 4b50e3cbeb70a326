"""Value types of the audit log."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class Action(enum.StrEnum):
    """What an operator did; ``<subject kind>.<past tense>``."""

    PARTNER_ADDED = "partner.added"
    PARTNER_SUSPENDED = "partner.suspended"
    PARTNER_ACTIVATED = "partner.activated"
    CONTRACT_CHANGED = "contract.changed"
    CLIENT_CREATED = "client.created"
    CLIENT_REVOKED = "client.revoked"
    KEYS_ROTATED = "keys.rotated"
    MEMBER_LOOKED_UP = "member.looked_up"
    MEMBER_EXPORTED = "member.exported"
    MEMBER_ERASED = "member.erased"
    MEMBER_CONSENT_CHANGED = "member.consent_changed"
    SETTLEMENT_FINALIZED = "settlement.finalized"
    SETTLEMENT_PAYMENT_RECORDED = "settlement.payment_recorded"


@dataclass(frozen=True)
class Actor:
    """Who acted and from where: an API client id and the request's client address, or
    ``cli:<os user>@<host>`` and ``cli`` for the ``exchange`` command."""

    id: str
    origin: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    origin: str
    action: Action
    subject: str
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "origin": self.origin,
            "action": str(self.action),
            "subject": self.subject,
            "details": self.details,
        }
