"""A use case: one thing a caller may ask of the exchange, with its permission declared
where it is defined.

:func:`use_case` wraps an ``async def f(call, request)`` and records who may call it:
which kinds of caller (partner, operator, member) and the scope each needs. The
runner (:mod:`exchange.usecases.runner`) checks the permission before anything else and
runs the use case in one unit of work under the caller's row-level-security scope; the
function itself holds the rule and never checks a scope by hand. A GraphQL field names
the use case it calls, so the scope a field needs is read where the use case is defined.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, overload

from exchange.audit import Actor
from exchange.kit.db import Connection
from exchange.kit.errors import DomainError, Forbidden
from exchange.kit.settings import Tunables
from partners.identity import IdentityKeys
from partners.principal import Principal, PrincipalKind

Q = TypeVar("Q")
A = TypeVar("A")

_WHO = {
    PrincipalKind.PARTNER: "a partner's",
    PrincipalKind.OPERATOR: "an operator's",
    PrincipalKind.MEMBER: "a member's",
}


@dataclass(frozen=True)
class Call:
    """What a use case runs with: its unit of work's connection (already under the
    caller's row scope), the caller, the time of the request, the identity keys, the
    run-time numbers of the settings and where the request came from (the client's
    address, for the audit log)."""

    conn: Connection
    principal: Principal
    now: datetime
    keys: IdentityKeys
    tunables: Tunables = field(default_factory=Tunables)
    origin: str = ""

    @property
    def actor(self) -> Actor:
        """The caller as the audit log names it: its client id and address."""
        return Actor(id=self.principal.client_id, origin=self.origin or "unknown")

    @property
    def key_owner(self) -> str:
        """Whose idempotency keys a request's key is one of: the OAuth client's. A member
        token is issued to a partner's client, so its keys are the member's own within
        that client: the partner's keys and every other member's stay apart (a key the
        partner used for one member must not collide with a gift of another)."""
        principal = self.principal
        if principal.kind == PrincipalKind.MEMBER:
            return f"{principal.client_id}#member:{principal.member_id}"
        return principal.client_id

    @property
    def partner_id(self) -> int:
        """The calling partner (the use case admits partners only where it asks)."""
        return self.principal.require_partner()


#: Fewer waiting calls than this run each in its own unit of work (decision 0006: a
#: batch costs a few statements however small, a plain earn is one).
BATCH_FROM = 3

Run = Callable[[Call, Q], Awaitable[A]]
Many = Callable[[Call, Sequence[Q]], Awaitable[list[A | DomainError]]]


@dataclass(frozen=True)
class UseCase(Generic[Q, A]):
    name: str
    #: Caller kind -> the scope it needs ("" : none); kinds absent may not call at all.
    permits: Mapping[PrincipalKind, str]
    run: Run[Q, A]
    #: The same use case for many requests of one caller in one unit of work; the runner
    #: micro-batches concurrent calls through it.
    many: Many[Q, A] | None = None
    #: Fewer waiting calls than this run each in its own unit of work.
    batch_from: int = BATCH_FROM

    def permit(self, principal: Principal) -> None:
        """FORBIDDEN unless this kind of caller may call it with the scopes it holds."""
        if principal.kind not in self.permits:
            allowed = " or ".join(_WHO[kind] for kind in self.permits)
            raise Forbidden(f"this call needs {allowed} token")
        scope = self.permits[principal.kind]
        if scope:
            principal.require(scope)


class Declare(Protocol):
    """What :func:`use_case` returns: a decorator that keeps the function's request and
    result types."""

    def __call__(self, function: Run[Q, A], /) -> UseCase[Q, A]: ...


@overload
def use_case(
    *,
    partner: str | None = None,
    operator: str | None = None,
    member: str | None = None,
    many: None = None,
    batch_from: int = ...,
) -> Declare: ...


@overload
def use_case(
    *,
    partner: str | None = None,
    operator: str | None = None,
    member: str | None = None,
    many: Many[Q, A],
    batch_from: int = ...,
) -> Callable[[Run[Q, A]], UseCase[Q, A]]: ...


def use_case(
    *,
    partner: str | None = None,
    operator: str | None = None,
    member: str | None = None,
    many: Many[Any, Any] | None = None,
    batch_from: int = BATCH_FROM,
) -> Declare | Callable[[Run[Any, Any]], UseCase[Any, Any]]:
    """Declare a use case and who may call it: each keyword names a kind of caller and
    the scope it needs (``""``: no scope); a kind left out may not call it."""
    permits = {
        kind: scope
        for kind, scope in (
            (PrincipalKind.PARTNER, partner),
            (PrincipalKind.OPERATOR, operator),
            (PrincipalKind.MEMBER, member),
        )
        if scope is not None
    }

    def declare(function: Run[Q, A]) -> UseCase[Q, A]:
        return UseCase(
            name=function.__name__, permits=permits, run=function, many=many,
            batch_from=batch_from,
        )  # fmt: skip

    return declare
