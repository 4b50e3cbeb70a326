"""Calling a use case from a resolver and mapping the outcome: a mutation returns a
business failure as ``userErrors`` in its payload; a query raises a GraphQL error whose
``extensions.code`` is the domain code. Anything else is unexpected and masked by the
schema (graphql_schema.schema). Either way the message names objects by the global IDs
a client knows, never by internal numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from graphql import GraphQLError
from strawberry.types import Info

from exchange.kit.errors import DomainError
from exchange.usecases.core import UseCase
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.types import UserError

Q = TypeVar("Q")
A = TypeVar("A")
P = TypeVar("P")


def query_error(error: DomainError) -> GraphQLError:
    """The GraphQL error of a query's business failure: ``extensions.code``, and
    ``extensions.field`` when the failure names an argument."""
    extensions: dict[str, object] = {"code": str(error.code)}
    if error.field:
        extensions["field"] = list(error.field)
    return GraphQLError(error.render(ids.of_ref), extensions=extensions)


async def ask(info: Info[Context, None], use_case: UseCase[Q, A], request: Callable[[], Q]) -> A:
    """A query's use case: its result, or its business failure as a GraphQL error.
    ``request`` translates the field's arguments (and may refuse them)."""
    try:
        return await info.context.run(use_case, request())
    except DomainError as error:
        raise query_error(error) from None


async def mutate(
    info: Info[Context, None],
    use_case: UseCase[Q, A],
    request: Callable[[], Q],
    payload: Callable[[A], P],
    failed: Callable[[list[UserError]], P],
) -> P:
    """A mutation's use case: ``payload(result)``, or ``failed(userErrors)``."""
    return await perform(info.context, use_case, request, payload, failed)


async def perform(
    context: Context,
    use_case: UseCase[Q, A],
    request: Callable[[], Q],
    payload: Callable[[A], P],
    failed: Callable[[list[UserError]], P],
) -> P:
    """:func:`mutate` from the context alone, as the direct lane calls a hot mutation
    (graphql_schema.direct)."""
    try:
        result = await context.run(use_case, request())
    except DomainError as error:
        return failed([UserError.of(error)])
    return payload(result)
