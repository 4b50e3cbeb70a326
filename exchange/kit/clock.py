"""Time, in one place, always timezone-aware UTC; tests pass their own clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from exchange.kit.errors import InvalidInput
from exchange.kit.limits import EARLIEST, LATEST

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware(moment: datetime, name: str) -> datetime:
    """Refuse naive datetimes (a ledger time without an offset is ambiguous) and times
    outside [EARLIEST, LATEST); return the moment in UTC."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{name} must carry a UTC offset", field=[name])
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} is out of range", field=[name]) from None
    if not EARLIEST <= utc < LATEST:
        raise InvalidInput(
            f"{name} must be between {EARLIEST.year} and {LATEST.year}", field=[name]
        )
    return utc
