"""Exact money: Decimal amounts in a currency's minor units, and the rounding rule.

Rounding rule (docs/decisions/0005): every priced figure is first computed exactly
(points x price, no rounding), then a group of figures that must add up to a total is
rounded together by the largest-remainder method: the total is rounded half-even to the
minor unit, each part is rounded down, and the minor units left over go one each to the
parts with the largest remainders (ties: in the parts' key order). So every rounded
total equals the sum of its rounded parts, to the minor unit.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import TypeVar

from exchange.kit.currency import minor_digits

K = TypeVar("K", bound=Hashable)


def minor_unit(currency: str) -> Decimal:
    """The currency's smallest unit: 0.01 USD, 1 JPY, 0.001 BHD (ISO 4217)."""
    return Decimal(1).scaleb(-minor_digits(currency))


def round_total(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def allocate(parts: Mapping[K, Decimal], currency: str) -> dict[K, Decimal]:
    """Round exact parts so that they sum to their rounded total (largest remainder)."""
    unit = minor_unit(currency)
    total = round_total(sum(parts.values(), Decimal(0)), currency)
    floors = {key: value.quantize(unit, rounding=ROUND_FLOOR) for key, value in parts.items()}
    left = int((total - sum(floors.values(), Decimal(0))) / unit)
    order = sorted(parts, key=lambda key: (-(parts[key] - floors[key]), str(key)))
    for key in order[:left]:
        floors[key] += unit
    return floors
