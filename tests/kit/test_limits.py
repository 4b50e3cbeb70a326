"""The shared input checks of exchange.kit.limits, as worked examples: what each accepts
right at its limit and what it refuses just past it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from exchange.kit import limits
from exchange.kit.errors import InvalidInput


def nested(depth: int, inner: str = "1") -> bytes:
    """An object whose value nests ``depth`` levels in all (the object included)."""
    return ('{"a": ' + "[" * (depth - 1) + inner + "]" * (depth - 1) + "}").encode()


def test_json_depth_is_counted_up_to_the_limit_and_refused_past_it() -> None:
    assert limits.json_problem(nested(limits.MAX_JSON_DEPTH)) is None
    assert "deeper" in str(limits.json_problem(nested(limits.MAX_JSON_DEPTH + 1)))


def test_many_openers_side_by_side_are_not_nesting() -> None:
    # More openers than the limit (so the scan runs), none deeper than three levels.
    wide = json.dumps({"items": [{"sku": [n]} for n in range(limits.MAX_JSON_DEPTH)]}).encode()

    assert limits.json_problem(wide) is None


def test_brackets_and_escaped_quotes_inside_strings_do_not_count_as_nesting() -> None:
    tricky = json.dumps({"query": '[[[{{{ \\" [[[ " ]]]' * 50, "v": ["]", "[", '"']}).encode()

    assert json.loads(tricky)  # valid JSON, shallow
    assert limits.json_problem(tricky) is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'"hello"', "object"),
        (b"[]", "object"),
        (b"", "object"),
        (b'{"a": "\xff"}', "UTF-8"),
    ],
)
def test_a_json_body_must_be_a_utf8_object(body: bytes, words: str) -> None:
    assert words in str(limits.json_problem(body))


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("1", 1),
        (str(limits.MAX_ID), limits.MAX_ID),
        (str(limits.MAX_ID + 1), None),
        ("9" * 20, None),
        ("0", None),
        ("007", None),
        ("-1", None),
        ("²", None),
        ("٣", None),
        ("", None),
    ],
)
def test_database_ids_are_ascii_digits_within_64_bits(digits: str, expected: int | None) -> None:
    assert limits.int64_digits(digits) == expected


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b", "\udfff"])
def test_text_refuses_a_nul_or_an_unpaired_surrogate(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        limits.text(bad, "memberRef", max_length=200)

    assert refused.value.field == ["memberRef"]


def test_text_holds_its_length_and_keeps_other_characters() -> None:
    assert limits.text("é😀\t", "reference", max_length=3) == "é😀\t"
    with pytest.raises(InvalidInput):
        limits.text("abcd", "reference", max_length=3)
    with pytest.raises(InvalidInput):
        limits.text("", "memberRef", max_length=3)
    assert limits.optional_text("", "reference", max_length=3) == ""


@pytest.mark.parametrize(
    "bad",
    ["1e999999", "1e-999999", "1e12", "0.0000000000001", "NaN", "-1", "0", "Infinity", 1.5],
)
def test_decimals_beyond_their_digits_or_not_positive_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        limits.decimal(bad, "rates")

    assert refused.value.field == ["rates"]


def test_decimals_within_their_digits_are_kept_exactly() -> None:
    assert limits.decimal("999999999999.999999999999", "rates") == Decimal(
        "999999999999.999999999999"
    )
    assert limits.decimal("0", "issuePrice", allow_zero=True) == 0
