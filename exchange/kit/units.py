"""Points: whole numbers, never floats, within one operation's limit."""

from __future__ import annotations

from typing import NewType

from exchange.kit.errors import InvalidInput
from exchange.kit.limits import MAX_POINTS_PER_OPERATION

Points = NewType("Points", int)


def positive_points(value: object, *, field: str = "points") -> Points:
    """Validate a points amount given by a caller: an int in 1..MAX_POINTS_PER_OPERATION."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number of points", field=[field])
    if value <= 0:
        raise InvalidInput(f"{field} must be greater than zero", field=[field])
    if value > MAX_POINTS_PER_OPERATION:
        raise InvalidInput(f"{field} must be at most {MAX_POINTS_PER_OPERATION}", field=[field])
    return Points(value)
