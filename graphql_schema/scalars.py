"""Custom scalars: BigInt (64-bit integer as a JSON string); Decimal and DateTime come
from Strawberry (exact decimal as a string; ISO 8601 with offset)."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

INT64_MAX = 2**63 - 1


def _parse_big_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("BigInt must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.lstrip("-").isdigit():
        number = int(value)
    else:
        raise ValueError("BigInt must be an integer or a string of digits")
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise ValueError("BigInt must fit in 64 bits")
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
