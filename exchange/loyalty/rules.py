"""The arithmetic of awards, pure and exact (docs/api.md, "rules and campaigns"):

- base = floor(amount x earnRate), the earn rate of the contract in force at occurredAt;
- a tier with earn multiplier t: floor(base x (t - 1)), issued by the coalition;
- a campaign: MULTIPLIER m: floor(base x (m - 1)); FIXED v: v; POINTS_PER_AMOUNT v:
  floor(matching items' amounts x v) (items of its category, or all items; a purchase
  without items: its amount); each capped by the campaign's maxPointsPerPurchase;
- the purchase's total capped by the contract's maxPointsPerOperation (campaign awards
  give way first, the latest campaign first, then the tier's, then the base);
- a campaign's award split between its funders by their shares, largest remainder, so the
  parts sum to the award.

Budgets and per-member limits are counters in the database; the purchase applies them
(:mod:`exchange.loyalty.purchases`) to what these rules give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal

from exchange.loyalty.conditions import Condition
from exchange.loyalty.models import AwardRule, Campaign, EffectKind, Item


def floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class Planned:
    """An award before the database's budgets and limits: its rule, points and campaign."""

    rule: AwardRule
    points: int
    campaign: Campaign | None = None


@dataclass(frozen=True)
class Live:
    """A campaign that can apply to a purchase, with its compiled condition."""

    campaign: Campaign
    condition: Condition


def base_points(amount: Decimal, earn_rate: Decimal) -> int:
    return floor(amount * earn_rate)


def tier_points(base: int, multiplier: Decimal) -> int:
    return floor(base * (multiplier - 1)) if multiplier > 1 else 0


def campaign_points(campaign: Campaign, base: int, amount: Decimal, items: Sequence[Item]) -> int:
    effect = campaign.effect
    if effect.kind == EffectKind.MULTIPLIER:
        points = floor(base * (effect.value - 1))
    elif effect.kind == EffectKind.FIXED:
        points = floor(effect.value)
    else:
        matching = [i.amount for i in items if effect.category in (None, i.category)]
        spent = sum(matching, Decimal(0)) if items else (amount if effect.category is None else 0)
        points = floor(Decimal(spent) * effect.value)
    cap = effect.max_points_per_purchase
    return max(0, min(points, cap) if cap is not None else points)


def plan_awards(
    *,
    amount: Decimal,
    items: Sequence[Item],
    earn_rate: Decimal,
    tier_multiplier: Decimal | None,
    matching: Sequence[Campaign],
    max_points: int,
) -> list[Planned]:
    """The awards of a purchase, in order (base, tier, campaigns by id), capped."""
    base = base_points(amount, earn_rate)
    planned = [Planned(AwardRule.BASE, base)]
    if tier_multiplier is not None:
        planned.append(Planned(AwardRule.TIER, tier_points(base, tier_multiplier)))
    for campaign in sorted(matching, key=lambda c: c.id):
        points = campaign_points(campaign, base, amount, items)
        planned.append(Planned(AwardRule.CAMPAIGN, points, campaign))
    return [award for award in cap_total(planned, max_points) if award.points > 0]


def cap_total(planned: Sequence[Planned], max_points: int) -> list[Planned]:
    """Trim awards from the last backwards until their total is at most ``max_points``."""
    excess = sum(award.points for award in planned) - max_points
    capped = list(planned)
    for index in reversed(range(len(capped))):
        if excess <= 0:
            break
        cut = min(excess, capped[index].points)
        capped[index] = replace(capped[index], points=capped[index].points - cut)
        excess -= cut
    return capped


def split(
    points: int, shares: Sequence[tuple[int | None, Decimal]]
) -> list[tuple[int | None, int]]:
    """``points`` divided by shares (summing to 1): each part rounded down, the points
    left over one each to the largest remainders (ties: in the given order)."""
    exact = [(funder, Decimal(points) * share) for funder, share in shares]
    parts = [floor(value) for _, value in exact]
    order = sorted(range(len(exact)), key=lambda i: -(exact[i][1] - parts[i]))
    for index in order[: points - sum(parts)]:
        parts[index] += 1
    return [(exact[i][0], parts[i]) for i in range(len(exact)) if parts[i] > 0]


def proportional(total: int, refunded: Decimal, amount: Decimal) -> int:
    """Points of an award to have taken back once ``refunded`` of ``amount`` is refunded:
    rounded down, so what is taken back never exceeds what was awarded."""
    return floor(Decimal(total) * refunded / amount)
