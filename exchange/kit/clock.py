"""Time, in one place, always timezone-aware UTC; tests pass their own clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware(moment: datetime, name: str) -> datetime:
    """Refuse naive datetimes: a ledger time without an offset is ambiguous."""
    from exchange.kit.errors import InvalidInput

    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{name} must carry a UTC offset", field=[name])
    return moment.astimezone(UTC)
