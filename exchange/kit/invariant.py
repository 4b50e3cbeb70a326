"""Assertions that survive ``python -O``.

A bare ``assert`` disappears under optimisation; ledger pre- and postconditions must
not. ``invariant()`` raises :class:`InvariantViolation`, which is never a user error:
it means the code or the data is wrong, and the unit of work must roll back.
:func:`present` is the same check for "this is not None", and hands the value back
narrowed, so a caller needs no second, type-only assertion.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class InvariantViolation(AssertionError):
    """A condition the code relies on does not hold."""


def invariant(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)


def present(value: T | None, message: str) -> T:
    """``value``, which the code relies on not being None."""
    if value is None:
        raise InvariantViolation(message)
    return value
