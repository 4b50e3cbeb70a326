"""The arithmetic of awards, exactly: a campaign's award split between funders by largest
remainder always sums to the award and gives each funder its share within one point; a
refund's proportion never takes back more than was awarded; the cap trims campaigns first."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from exchange.loyalty.models import AwardRule
from exchange.loyalty.rules import Planned, cap_total, proportional, split


@given(points=st.integers(min_value=0, max_value=10**9), weights=st.lists(
    st.integers(min_value=1, max_value=999), min_size=1, max_size=10))  # fmt: skip
def test_a_split_sums_to_the_award_and_each_part_is_within_one_point_of_its_share(
    points: int, weights: list[int]
) -> None:
    total = sum(weights)
    funders = [(index, Decimal(w) / Decimal(total)) for index, w in enumerate(weights)]
    # shares that are not exact sums of six decimals still split exactly what is given
    parts = dict(split(points, funders))

    assert sum(parts.values()) == points
    for funder, share in funders:
        assert abs(parts.get(funder, 0) - points * share) < 1


def test_a_split_gives_the_leftover_point_to_the_largest_remainder() -> None:
    assert split(11, [(1, Decimal("0.6")), (2, Decimal("0.4"))]) == [(1, 7), (2, 4)]
    assert split(1, [(1, Decimal("0.5")), (2, Decimal("0.5"))]) == [(1, 1)]


@given(points=st.integers(min_value=0, max_value=10**9),
       amount_cents=st.integers(min_value=1, max_value=10**9),
       refunds=st.lists(st.integers(min_value=1, max_value=10**9), max_size=6))  # fmt: skip
def test_refunds_in_proportion_never_take_back_more_than_was_awarded(
    points: int, amount_cents: int, refunds: list[int]
) -> None:
    amount = Decimal(amount_cents) / 100
    refunded = Decimal(0)
    taken = 0
    for cents in refunds:
        refunded = min(amount, refunded + Decimal(cents) / 100)
        owed = proportional(points, refunded, amount) - taken
        assert owed >= 0
        taken += owed
    assert taken <= points
    assert proportional(points, amount, amount) == points


def test_the_cap_trims_the_latest_award_first() -> None:
    planned = [Planned(AwardRule.BASE, 80), Planned(AwardRule.TIER, 40),
               Planned(AwardRule.CAMPAIGN, 80)]  # fmt: skip

    capped = cap_total(planned, 100)

    assert [a.points for a in capped] == [80, 20, 0]
