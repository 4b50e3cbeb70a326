"""Assertions that survive ``python -O``.

A bare ``assert`` disappears under optimisation; ledger pre- and postconditions must
not. ``invariant()`` raises :class:`InvariantViolation`, which is never a user error:
it means the code or the data is wrong, and the unit of work must roll back.
"""

from __future__ import annotations


class InvariantViolation(AssertionError):
    """A condition the code relies on does not hold."""


def invariant(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)
