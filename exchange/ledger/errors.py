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

from exchange.kit.errors import DomainError, ErrorCode


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
