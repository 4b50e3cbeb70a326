"""The ledger's domain errors, all under :class:`LedgerError`.

Tree::

    DomainError (exchange.kit.errors)
    ├── InvalidInput / NotFound        reused from the kit
    └── LedgerError
        ├── InsufficientPoints         INSUFFICIENT_POINTS
        ├── IdempotencyKeyReused       IDEMPOTENCY_KEY_REUSED
        ├── HoldNotActive              HOLD_NOT_ACTIVE
        ├── AlreadyReversed            ALREADY_REVERSED
        ├── NotReversible              NOT_REVERSIBLE
        └── LimitExceeded              LIMIT_EXCEEDED
"""

from __future__ import annotations

from exchange.kit.errors import DomainError, ErrorCode, Kind, NotFound, Ref


class LedgerError(DomainError):
    """Root of the ledger's business failures."""


class InsufficientPoints(LedgerError):
    code = ErrorCode.INSUFFICIENT_POINTS


class IdempotencyKeyReused(LedgerError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class HoldNotActive(LedgerError):
    code = ErrorCode.HOLD_NOT_ACTIVE


class AlreadyReversed(LedgerError):
    code = ErrorCode.ALREADY_REVERSED


class NotReversible(LedgerError):
    code = ErrorCode.NOT_REVERSIBLE


class LimitExceeded(LedgerError):
    code = ErrorCode.LIMIT_EXCEEDED


def unknown_member(member_id: int, field: str = "memberId") -> NotFound:
    return NotFound(
        "member {member} does not exist",
        field=[field],
        refs={"member": Ref(Kind.MEMBER, member_id)},
    )


def unknown_partner(partner_id: int | None) -> NotFound:
    """A partner (None: the coalition) whose accounts the ledger does not have."""
    if partner_id is None:
        return NotFound("the coalition's accounts are not open", field=["partnerId"])
    return NotFound(
        "partner {partner} is not known to the ledger",
        field=["partnerId"],
        refs={"partner": Ref(Kind.PARTNER, partner_id)},
    )
