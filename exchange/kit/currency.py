"""Currencies: ISO 4217 codes and their minor units, from the maintained ISO table.

The table is the ``iso4217`` package (the ISO 4217 maintenance agency's list A.1,
re-released when the agency publishes an amendment); upgrading the package is how the
list is kept current. Nothing else in the code base holds a list of currencies.

A *currency* here is one that money can be counted in: an active ISO 4217 code with a
minor unit (USD 2, JPY 0, BHD 3). Codes whose minor unit is "N.A." — precious metals
(XAU), special drawing rights (XDR), the testing code XTS and "no currency" XXX — are
refused: an amount in them has no minor unit to round to.
"""

from __future__ import annotations

from decimal import Decimal

from iso4217 import Currency

from exchange.kit.errors import InvalidInput

#: code -> minor-unit digits, for every currency money can be counted in.
_MINOR_DIGITS: dict[str, int] = {
    currency.code: currency.exponent for currency in Currency if currency.exponent is not None
}


def is_currency(code: object) -> bool:
    """Whether ``code`` is an ISO 4217 currency code (upper case, as published)."""
    return isinstance(code, str) and code in _MINOR_DIGITS


def minor_digits(code: str) -> int:
    """Digits after the decimal point in the currency's minor unit: USD 2, JPY 0, BHD 3."""
    return _MINOR_DIGITS[check_currency(code, "currency")]


def check_currency(code: object, field: str) -> str:
    """``code`` if it is an ISO 4217 currency code, exactly as published (``USD``, not
    ``usd``), else :class:`InvalidInput` naming ``field``."""
    if is_currency(code):
        return str(code)
    shown = repr(code)[:40]
    raise InvalidInput(
        f"{field} must be an ISO 4217 currency code like USD, EUR or JPY, not {shown}",
        field=[field],
    )


def plain(value: Decimal) -> Decimal:
    """A decimal as people write it: 0.01000000 as 0.01, 100 as 100 (not 1E+2)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
