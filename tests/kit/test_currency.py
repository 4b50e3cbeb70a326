"""Currencies come from the ISO 4217 table, with their minor units."""

from __future__ import annotations

import pytest

from exchange.kit.currency import check_currency, is_currency, minor_digits
from exchange.kit.errors import ErrorCode, InvalidInput


@pytest.mark.parametrize(("code", "digits"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("BHD", 3)])
def test_a_currency_has_its_iso_4217_minor_unit(code: str, digits: int) -> None:
    assert is_currency(code)
    assert minor_digits(code) == digits


@pytest.mark.parametrize("code", ["XYZ", "usd", "US", "USDD", "", "XAU", "XTS", "XXX", None, 840])
def test_what_is_not_an_iso_4217_currency_is_refused_naming_the_field(code: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_currency(code, "currency")

    assert not is_currency(code)
    assert (refused.value.code, refused.value.field) == (ErrorCode.INVALID_INPUT, ["currency"])
    assert "ISO 4217" in refused.value.message


def test_a_known_code_comes_back_as_given() -> None:
    assert check_currency("CHF", "rates") == "CHF"
