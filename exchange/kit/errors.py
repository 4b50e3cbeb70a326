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

A message never spells an internal id itself: it names the object with a placeholder
and a :class:`Ref` (``"hold {hold} is released"``, ``refs={"hold": Ref(Kind.HOLD, 2)}``),
and each edge renders the reference the way its users know the object
(:meth:`DomainError.render`): the API as the global ID a client sent or was given, the
CLI and the logs as the plain number an operator reads in the database
(docs/decisions/0015).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from exchange.kit.invariant import invariant


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
    CONTACT_MISMATCH = "CONTACT_MISMATCH"
    CONTACT_IN_USE = "CONTACT_IN_USE"


class Kind(enum.StrEnum):
    """The kinds of object a client addresses by id, as an error message can name them."""

    TRANSACTION = "Transaction"  # a ledger entry
    HOLD = "Hold"
    PARTNER = "Partner"
    MEMBER = "Member"
    SETTLEMENT_RUN = "SettlementRun"
    PURCHASE = "Purchase"
    CAMPAIGN = "Campaign"
    WEBHOOK_ENDPOINT = "WebhookEndpoint"
    WEBHOOK_DELIVERY = "WebhookDelivery"


@dataclass(frozen=True)
class Ref:
    """An object an error message names: its kind and its internal id."""

    kind: Kind
    key: int


def plain(ref: Ref) -> str:
    """A reference as an operator reads it: the internal number (CLI, logs)."""
    return str(ref.key)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class DomainError(Exception):
    """A business failure with a stable code, a human message and the offending field.

    ``message`` is a template: each ``{name}`` of ``refs`` in it stands for an object,
    which the edge renders (:meth:`render`); any other text is left as it is.

    Its unit of work is rolled back, unless the use case raised it with ``commit``: then
    what the work wrote before refusing is kept (a failed recipient look-up is counted
    against the limit that stops members probing for e-mail addresses) and the error
    reaches the caller after the commit. Such a use case writes nothing else first."""

    code: ErrorCode = ErrorCode.INVALID_INPUT

    def __init__(
        self,
        message: str,
        *,
        field: Sequence[str] | None = None,
        code: ErrorCode | None = None,
        refs: Mapping[str, Ref] | None = None,
        commit: bool = False,
    ) -> None:
        self.template = message
        self.refs = dict(refs or {})
        unused = [name for name in self.refs if f"{{{name}}}" not in message]
        invariant(not unused, f"the message names no {unused}: {message!r}")
        super().__init__(self.render(plain))
        self.field = list(field) if field is not None else None
        self.commit = commit
        if code is not None:
            self.code = code

    def render(self, name: Callable[[Ref], str]) -> str:
        """The message with each object named by ``name(ref)``."""
        if not self.refs:
            return self.template

        def substitute(match: re.Match[str]) -> str:
            ref = self.refs.get(match[1])
            return match[0] if ref is None else name(ref)

        return _PLACEHOLDER.sub(substitute, self.template)

    @property
    def message(self) -> str:
        """The message for an operator: objects by their internal numbers (the CLI, logs).
        The API renders them as global IDs instead (graphql_schema.errors)."""
        return self.render(plain)

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
