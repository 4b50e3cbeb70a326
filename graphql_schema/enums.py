"""Domain enums in the schema: each registered under its GraphQL name, with a description
of the type and of every value. The domain imports no strawberry, so what a value means
to a client is written here, where the schema is."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

import strawberry
from strawberry.types.enum import has_enum_definition

from exchange.kit.invariant import InvariantViolation, invariant

E = TypeVar("E", bound=enum.Enum)


def describe_enum(cls: type[E], *, name: str, description: str, values: Mapping[E, str]) -> None:
    """Register ``cls`` as the GraphQL enum ``name``; ``values`` describes every member."""
    invariant(set(values) == set(cls), f"describe every value of {name}, and only those")
    registered = strawberry.enum(cls, name=name, description=description)
    if not has_enum_definition(registered):
        raise InvariantViolation(f"{name} is registered")
    for value in registered.__strawberry_definition__.values:
        value.description = values[cls[value.name]]
