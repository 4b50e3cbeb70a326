"""Custom scalars: BigInt (64-bit integer as a JSON string); Decimal and DateTime come
from Strawberry (exact decimal as a string; ISO 8601 with offset)."""

from __future__ import annotations

from typing import NewType

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

INT64_MAX = 2**63 - 1


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= len(str(INT64_MAX))


def _parse_big_int(value: object) -> int:
    """A BigInt a client sent (a literal or a variable): an integer, or a string of ASCII
    digits with an optional minus, within 64 bits. A refusal is a GraphQLError: the
    client's mistake, shown as it is (any other exception would be masked as ours)."""
    if isinstance(value, bool):
        raise GraphQLError("BigInt must be an integer, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _digits(value.removeprefix("-")):
        number = int(value)
    else:
        raise GraphQLError("BigInt must be an integer or a string of at most 19 ASCII digits")
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise GraphQLError("BigInt must fit in 64 bits")
    return number


BigInt = NewType("BigInt", int)

#: Python type -> GraphQL scalar (StrawberryConfig's ``scalar_map``).
SCALAR_MAP: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A 64-bit integer, as a JSON string.",
        serialize=str,
        parse_value=_parse_big_int,
    )
}
