"""Batch forms of use cases whose items name a member by the partner's ref: the refs
resolved in one query, each item built into a request (or refused alone), the requests
written together, each item its own outcome in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from exchange.kit.errors import DomainError
from exchange.kit.invariant import InvariantViolation, invariant
from exchange.usecases.core import Call
from partners import identity


class Addressed(Protocol):
    @property
    def member_ref(self) -> str: ...


Item = TypeVar("Item", bound=Addressed)
Request = TypeVar("Request")
Outcome = TypeVar("Outcome")


async def for_members(
    call: Call,
    items: Sequence[Item],
    build: Callable[[Item, int], Request],
    write: Callable[[list[Request]], Awaitable[Sequence[Outcome | DomainError | None]]],
    *,
    check: Callable[[Item], None] | None = None,
    field_prefix: bool = False,
) -> list[Outcome | DomainError]:
    """Each item's outcome: ``check`` (before its ref is looked at) and ``build`` may
    refuse it alone; the rest go to one ``write``. ``field_prefix``: errors name
    ``items.<n>.<field>``."""
    members = await identity.resolve_many(
        call.conn, partner_id=call.partner_id, member_refs=[item.member_ref for item in items]
    )
    outcomes: dict[int, Outcome | DomainError] = {}
    requests: list[Request] = []
    positions: list[int] = []
    for index, item in enumerate(items):
        try:
            if check is not None:
                check(item)
            requests.append(build(item, identity.linked(members, item.member_ref)))
            positions.append(index)
        except DomainError as error:
            outcomes[index] = error
    if requests:
        for index, outcome in zip(positions, await write(requests), strict=True):
            if outcome is None:  # (present() would widen the union to object)
                raise InvariantViolation("every item has an outcome")
            outcomes[index] = outcome
    invariant(len(outcomes) == len(items), "every item has an outcome")
    done: list[Outcome | DomainError] = []
    for index in range(len(items)):
        outcome = outcomes[index]
        if isinstance(outcome, DomainError) and field_prefix:
            outcome.field = ["items", str(index), *(outcome.field or [])]
        done.append(outcome)
    return done
