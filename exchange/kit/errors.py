"""The root of every domain error, and the codes the edges map them to.

Tree::

    DomainError                 a business failure; the request moves nothing
    ├── InvalidInput            INVALID_INPUT: malformed or out-of-range arguments
    ├── NotFound                NOT_FOUND
    ├── Forbidden               FORBIDDEN
    └── (package roots)         e.g. exchange.ledger.errors.LedgerError

The GraphQL layer maps a DomainError to a ``userErrors`` entry, the CLI to a one-line
message and exit status; anything that is not a DomainError is unexpected and masked,
except :class:`DatabaseUnavailable`, which is no business failure and no bug either:
every edge answers it with 503 and ``Retry-After``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class ErrorCode(enum.StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    MEMBER_NOT_LINKED = "MEMBER_NOT_LINKED"
    HOLD_NOT_ACTIVE = "HOLD_NOT_ACTIVE"
    ALREADY_REVERSED = "ALREADY_REVERSED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    PERIOD_CLOSED = "PERIOD_CLOSED"
    NOT_REVERSIBLE = "NOT_REVERSIBLE"


class DomainError(Exception):
    """A business failure with a stable code, a human message and the offending field."""

    code: ErrorCode = ErrorCode.INVALID_INPUT

    def __init__(
        self,
        message: str,
        *,
        field: Sequence[str] | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = list(field) if field is not None else None
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r}, field={self.field})"


class InvalidInput(DomainError):
    code = ErrorCode.INVALID_INPUT


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached, or the connection was lost on the way.

    ``stage`` says what that means for the unit of work: ``connect`` (nothing ran),
    ``work`` (lost before commit: nothing of it was committed) or ``commit`` (lost while
    committing: it may or may not have been; a retry with the same idempotency key is
    safe). Never a DomainError: no ``userErrors`` entry may say a request did or did not
    happen when the database could not tell.
    """

    def __init__(self, stage: str) -> None:
        super().__init__(f"the database is unavailable ({stage})")
        self.stage = stage
