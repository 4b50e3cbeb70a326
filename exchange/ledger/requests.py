"""What callers ask the ledger to do: one request type per operation.

A request validates itself when it is made (a bad value is an :class:`InvalidInput`
naming its field, before any database work), and says what identifies it for
idempotency (:meth:`fingerprint`): the request as the caller gave it, with nothing
derived from the clock, so a retry made later hashes the same. A single call and a
batch item are the same type; a single call is a batch of one.

The expiry rule of a new lot lives here too (:func:`lot_expiry`), once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from exchange.kit import limits
from exchange.kit.clock import require_aware
from exchange.kit.errors import InvalidInput
from exchange.kit.limits import MAX_HOLD_TTL_SECONDS, MAX_POINTS_PER_OPERATION, MAX_REASON_LENGTH
from exchange.kit.units import positive_points
from exchange.ledger.models import DEFAULT_HOLD_TTL_SECONDS


def checked_key(idempotency_key: str) -> str:
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise InvalidInput("idempotencyKey must not be empty", field=["idempotencyKey"])
    return limits.text(
        idempotency_key, "idempotencyKey", max_length=limits.MAX_IDEMPOTENCY_KEY_LENGTH
    )


def checked_reference(reference: str | None) -> str | None:
    return limits.optional_text(reference, "reference", max_length=limits.MAX_REFERENCE_LENGTH)


def _time(value: datetime | None, name: str) -> datetime | None:
    return require_aware(value, name) if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _set(request: object, name: str, value: object) -> None:
    object.__setattr__(request, name, value)


def lot_expiry(
    *, effective_at: datetime, expires_at: datetime | None, lifetime_days: int, now: datetime
) -> datetime:
    """When a new lot expires: as given, else ``lifetime_days`` after it takes effect;
    never at or before the moment it is issued."""
    expiry = expires_at or effective_at + timedelta(days=lifetime_days)
    if expiry <= max(now, effective_at):
        raise InvalidInput("expiresAt must be in the future", field=["expiresAt"])
    return expiry


@dataclass(frozen=True)
class Issuer:
    """Who funds an earn's lot when it is not the partner making the earn: another partner
    (a co-funded campaign's funder) or, with ``partner_id`` None, the coalition itself (a
    tier's bonus, an operator's campaign)."""

    partner_id: int | None


@dataclass(frozen=True)
class EarnRequest:
    """Issue ``points`` to a member's wallet as a new lot of the issuer: the partner making
    the earn, unless ``issuer`` names another funder."""

    idempotency_key: str
    member_id: int
    points: int
    reference: str | None = None
    expires_at: datetime | None = None
    effective_at: datetime | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    issuer: Issuer | None = None

    def issuer_partner_id(self, partner_id: int | None) -> int | None:
        """The partner whose points these are (None: the coalition's)."""
        return self.issuer.partner_id if self.issuer is not None else partner_id

    def __post_init__(self) -> None:
        _set(self, "points", positive_points(self.points))
        checked_key(self.idempotency_key)
        checked_reference(self.reference)
        _set(self, "expires_at", _time(self.expires_at, "expiresAt"))
        _set(self, "effective_at", _time(self.effective_at, "effectiveAt"))

    def fingerprint(self, partner_id: int | None) -> dict[str, Any]:
        return {
            "partner": partner_id,
            "member": self.member_id,
            "points": self.points,
            "reference": self.reference,
            "expires_at": _iso(self.expires_at),
            "effective_at": _iso(self.effective_at),
            "metadata": dict(self.metadata) if self.metadata is not None else None,
            **({"issuer": self.issuer.partner_id} if self.issuer is not None else {}),
        }


@dataclass(frozen=True)
class RedeemRequest:
    """Spend ``points`` of a member's wallet at the partner; lots oldest expiry first."""

    idempotency_key: str
    member_id: int
    points: int
    reference: str | None = None
    effective_at: datetime | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        _set(self, "points", positive_points(self.points))
        checked_key(self.idempotency_key)
        checked_reference(self.reference)
        _set(self, "effective_at", _time(self.effective_at, "effectiveAt"))

    def fingerprint(self, partner_id: int | None) -> dict[str, Any]:
        return {
            "partner": partner_id,
            "member": self.member_id,
            "points": self.points,
            "reference": self.reference,
            "effective_at": _iso(self.effective_at),
            "metadata": dict(self.metadata) if self.metadata is not None else None,
        }


@dataclass(frozen=True)
class HoldRequest:
    """Reserve ``points`` for a pending purchase until captured, released or expired."""

    idempotency_key: str
    member_id: int
    points: int
    ttl_seconds: int = DEFAULT_HOLD_TTL_SECONDS
    reference: str | None = None

    def __post_init__(self) -> None:
        _set(self, "points", positive_points(self.points))
        checked_key(self.idempotency_key)
        checked_reference(self.reference)
        ttl = self.ttl_seconds
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int)
            or not 1 <= ttl <= MAX_HOLD_TTL_SECONDS
        ):
            raise InvalidInput(
                f"ttlSeconds must be between 1 and {MAX_HOLD_TTL_SECONDS}", field=["ttlSeconds"]
            )

    def fingerprint(self, partner_id: int | None) -> dict[str, Any]:
        return {
            "partner": partner_id,
            "member": self.member_id,
            "points": self.points,
            "ttl": self.ttl_seconds,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class CaptureRequest:
    """Redeem all of a hold (``points`` None) or part of it; the rest goes back."""

    idempotency_key: str
    hold_id: int
    points: int | None = None

    def __post_init__(self) -> None:
        checked_key(self.idempotency_key)
        if self.points is not None:
            _set(self, "points", positive_points(self.points))

    def fingerprint(self, partner_id: int | None) -> dict[str, Any]:
        return {"partner": partner_id, "hold": self.hold_id, "points": self.points}


@dataclass(frozen=True)
class ReverseRequest:
    """Undo ``points`` (None: all that is left) of an earn or a redemption."""

    idempotency_key: str
    entry_id: int
    points: int | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        checked_key(self.idempotency_key)
        checked_reference(self.reference)
        if self.points is not None:
            _set(self, "points", positive_points(self.points))

    def fingerprint(self, partner_id: int | None) -> dict[str, Any]:
        return {"partner": partner_id, "target": self.entry_id, "points": self.points}


@dataclass(frozen=True)
class TransferRequest:
    """A member gifts ``points`` to another member; lots move with issuer and expiry."""

    idempotency_key: str
    from_member_id: int
    to_member_id: int
    points: int
    reference: str | None = None

    def __post_init__(self) -> None:
        _set(self, "points", positive_points(self.points))
        checked_key(self.idempotency_key)
        checked_reference(self.reference)
        if self.from_member_id == self.to_member_id:
            raise InvalidInput("a member can't transfer points to themselves", field=["to"])

    def fingerprint(self, partner_id: int | None) -> dict[str, Any]:
        return {
            "from": self.from_member_id,
            "to": self.to_member_id,
            "points": self.points,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class AdjustRequest:
    """An operator's correction: positive points credit a coalition-issued lot, negative
    points debit the wallet."""

    idempotency_key: str
    member_id: int
    points: int
    reason: str
    lifetime_days: int = 365

    def __post_init__(self) -> None:
        checked_key(self.idempotency_key)
        points = self.points
        if isinstance(points, bool) or not isinstance(points, int) or points == 0:
            raise InvalidInput("points must be a non-zero whole number", field=["points"])
        if abs(points) > MAX_POINTS_PER_OPERATION:
            positive_points(abs(points))
        limits.text(self.reason, "reason", max_length=MAX_REASON_LENGTH)

    def fingerprint(self, partner_id: int | None) -> dict[str, Any]:
        return {"member": self.member_id, "points": self.points, "reason": self.reason}
