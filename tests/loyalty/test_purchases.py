"""Worked examples of recordPurchase and previewPurchase over HTTP: base points from the
contract's earn rate, each campaign effect kind, conditions, the caps, money checks,
replays and key reuse. Each example states its arithmetic (docs/api.md, "rules and
campaigns")."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

import httpx

from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from tests.graphql.conftest import new_operator
from tests.loyalty.conftest import (
    PREVIEW,
    RECORD,
    awards,
    balance,
    campaign,
    gid,
    link,
    partner_with,
    record,
)


async def test_base_points_are_the_amount_times_the_earn_rate_rounded_down(
    db: Database, api: httpx.AsyncClient
) -> None:
    cinema = await partner_with(db, api, earn_rate=Decimal("2.5"))
    ref = await link(cinema)

    # floor(12.50 x 2.5) = floor(31.25) = 31
    payload = await record(cinema, ref, "12.50")

    assert payload["userErrors"] == []
    assert awards(payload) == [("BASE", 31)]
    assert int(payload["purchase"]["points"]) == 31
    assert [(t["kind"], int(t["points"])) for t in payload["transactions"]] == [("EARN", 31)]
    assert int(payload["wallet"]["balance"]) == 31
    assert payload["purchase"]["awards"][0]["fundedBy"]["id"] == gid("Partner", cinema.partner_id)


async def test_a_multiplier_campaign_adds_m_minus_one_times_base(
    db: Database, api: httpx.AsyncClient
) -> None:
    cinema = await partner_with(db, api)
    ref = await link(cinema)
    bonus = await campaign(cinema, {"kind": "MULTIPLIER", "value": "2.5"})

    # base floor(40.75 x 1) = 40; "2.5x points": a bonus of floor(40 x 1.5) = 60
    payload = await record(cinema, ref, "40.75")

    assert awards(payload) == [("BASE", 40), ("CAMPAIGN", 60)]
    assert payload["purchase"]["awards"][1]["campaign"]["id"] == bonus["id"]
    assert int(payload["wallet"]["balance"]) == 100
    after = await cinema.gql(
        "query($id: ID!) { node(id: $id) { ... on Campaign { spentPoints } } }", id=bonus["id"]
    )
    assert int(after["data"]["node"]["spentPoints"]) == 60


async def test_a_fixed_bonus_on_a_first_purchase_here_is_given_once(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api)
    ref = await link(cafe)
    await campaign(cafe, {"kind": "FIXED", "value": "100"}, condition="member.purchases_here == 0")

    first = await record(cafe, ref, "3.20")
    second = await record(cafe, ref, "3.20")

    assert awards(first) == [("BASE", 3), ("CAMPAIGN", 100)]
    assert awards(second) == [("BASE", 3)]
    assert int(second["wallet"]["balance"]) == 106


async def test_points_per_amount_counts_the_matching_items_and_is_capped_per_purchase(
    db: Database, api: httpx.AsyncClient
) -> None:
    cinema = await partner_with(db, api)
    ref = await link(cinema)
    effect = {
        "kind": "POINTS_PER_AMOUNT",
        "value": "3",
        "category": "popcorn",
        "maxPointsPerPurchase": 50,
    }
    await campaign(cinema, effect)
    items = [
        {"category": "popcorn", "amount": "7.99", "sku": "POP-L"},
        {"category": "tickets", "amount": "24.00", "quantity": 2},
    ]

    # base floor(31.99) = 31; popcorn floor(7.99 x 3) = 23
    small = await record(cinema, ref, "31.99", items=items)
    # base 40; popcorn floor(20.00 x 3) = 60, capped at 50
    large = await record(cinema, ref, "40.00", items=[{"category": "popcorn", "amount": "20.00"}])

    assert awards(small) == [("BASE", 31), ("CAMPAIGN", 23)]
    assert awards(large) == [("BASE", 40), ("CAMPAIGN", 50)]


async def test_a_condition_reads_the_purchase_in_minor_units_and_its_channel_and_day(
    db: Database, api: httpx.AsyncClient
) -> None:
    cinema = await partner_with(db, api, since=utc_now() - timedelta(days=8))
    ref = await link(cinema)
    await campaign(
        cinema,
        {"kind": "FIXED", "value": "25"},
        condition='purchase.amount_minor >= 5000 && purchase.channel == "APP"'
        " && purchase.weekday in [6, 7]",
    )
    saturday = utc_now() - timedelta(days=(utc_now().isoweekday() - 6) % 7 or 7)
    at = saturday.replace(hour=15).isoformat()

    app_weekend = await record(cinema, ref, "50.00", channel="APP", occurredAt=at)
    store_weekend = await record(cinema, ref, "50.00", channel="IN_STORE", occurredAt=at)
    app_small = await record(cinema, ref, "49.99", channel="APP", occurredAt=at)

    assert awards(app_weekend) == [("BASE", 50), ("CAMPAIGN", 25)]
    assert awards(store_weekend) == [("BASE", 50)]
    assert awards(app_small) == [("BASE", 49)]


async def test_a_condition_that_fails_to_evaluate_is_false_and_the_purchase_still_counts(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    # Division by zero for every purchase: an evaluation error, never a failed purchase.
    await campaign(
        shop,
        {"kind": "FIXED", "value": "10"},
        condition="100 / (purchase.amount_minor - purchase.amount_minor) > 1",
    )

    payload = await record(shop, ref, "10.00")

    assert payload["userErrors"] == []
    assert awards(payload) == [("BASE", 10)]


async def test_a_campaign_applies_only_at_its_owner_and_only_while_active(
    db: Database, api: httpx.AsyncClient
) -> None:
    owner = await partner_with(db, api)
    other = await partner_with(db, api)
    ref_owner, ref_other = await link(owner), await link(other)
    bonus = await campaign(owner, {"kind": "FIXED", "value": "7"})

    at_other = await record(other, ref_other, "10.00")
    await owner.gql(
        "mutation($id: ID!) { pauseCampaign(input: {campaignId: $id}) { userErrors { code } } }",
        id=bonus["id"],
    )
    paused = await record(owner, ref_owner, "10.00")

    assert awards(at_other) == [("BASE", 10)]
    assert awards(paused) == [("BASE", 10)]


async def test_an_operator_campaign_applies_at_every_partner_and_the_coalition_pays(
    db: Database, api: httpx.AsyncClient
) -> None:
    first = await partner_with(db, api)
    second = await partner_with(db, api)
    operator = await new_operator(db, api)
    # Only these two partners: other tests' purchases stay as they are.
    await campaign(
        operator,
        {"kind": "FIXED", "value": "5"},
        condition=f"partner.id in [{first.partner_id}, {second.partner_id}]",
    )

    at_first = await record(first, await link(first), "1.00")
    at_second = await record(second, await link(second), "1.00")

    assert awards(at_first) == awards(at_second) == [("BASE", 1), ("CAMPAIGN", 5)]
    assert at_first["purchase"]["awards"][1]["fundedBy"] is None


async def test_the_contract_caps_points_per_purchase_campaigns_giving_way_first(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api, max_points_per_operation=100)
    ref = await link(shop)
    await campaign(shop, {"kind": "MULTIPLIER", "value": "2"})

    # base 80 + bonus 80 = 160, capped at 100: the bonus gives way (20 left for it)
    payload = await record(shop, ref, "80.00")
    # base alone above the cap: 150 -> 100, no bonus
    over = await record(shop, ref, "150.00")

    assert awards(payload) == [("BASE", 80), ("CAMPAIGN", 20)]
    assert awards(over) == [("BASE", 100)]


async def test_the_earn_rate_in_force_when_the_purchase_happened_decides(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api, since=utc_now() - timedelta(days=30))
    ref = await link(shop)
    operator = await new_operator(db, api)
    document = (
        "mutation($p: ID!, $at: DateTime!) { changeContract(input: {partnerId: $p,"
        ' effectiveFrom: $at, earnRate: "3"}) { partner { contract { earnRate } }'
        " userErrors { code field } } }"
    )
    partner_id = gid("Partner", shop.partner_id)
    past = await operator.gql(
        document, p=partner_id, at=(utc_now() - timedelta(days=1)).isoformat()
    )
    change = await operator.gql(document, p=partner_id, at=utc_now().isoformat())

    before = await record(
        shop, ref, "10.00", occurredAt=(utc_now() - timedelta(days=1)).isoformat()
    )
    after = await record(shop, ref, "10.00")

    # A change never reaches back: a settled period keeps its prices.
    assert past["data"]["changeContract"]["userErrors"] == [
        {"code": "INVALID_INPUT", "field": ["input", "effectiveFrom"]}
    ]
    assert change["data"]["changeContract"]["userErrors"] == [], change
    assert change["data"]["changeContract"]["partner"]["contract"]["earnRate"] == "3"
    assert awards(before) == [("BASE", 10)]
    assert awards(after) == [("BASE", 30)]


async def test_money_that_does_not_fit_the_contract_is_refused_on_its_field(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    future = (utc_now() + timedelta(hours=1)).isoformat()
    cases = [
        ({"amount": "10.00", "currency": "EUR"}, ["input", "currency"]),
        ({"amount": "12.505"}, ["input", "amount"]),
        ({"amount": "0"}, ["input", "amount"]),
        ({"amount": "-1"}, ["input", "amount"]),
        ({"amount": "5.00", "items": [{"category": "a", "amount": "6.00"}]}, ["input", "items"]),
        (
            {"amount": "5.00", "items": [{"category": "a", "amount": "1.001"}]},
            ["input", "items", "0", "amount"],
        ),
        ({"amount": "5.00", "occurredAt": future}, ["input", "occurredAt"]),
        ({"amount": "5.00", "occurredAt": "2001-01-01T00:00:00Z"}, ["input", "occurredAt"]),
        ({"amount": "5.00", "items": [{"category": "a", "amount": "1"}] * 201}, ["input", "items"]),
    ]
    for given, field in cases:
        payload = await record(shop, ref, **{"currency": "USD", **given})  # type: ignore[arg-type]
        assert payload["purchase"] is None, given
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
            ("INVALID_INPUT", field)
        ], given

    assert await balance(shop, ref) == 0
    listed = await shop.gql("{ purchases(first: 5) { edges { node { id } } } }")
    assert listed["data"]["purchases"]["edges"] == []


async def test_a_replay_returns_the_original_purchase_and_a_reused_key_is_refused(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    await campaign(shop, {"kind": "FIXED", "value": "10"})
    key = f"till-7-{secrets.token_hex(4)}"

    first = await record(shop, ref, "25.00", key=key)
    replay = await record(shop, ref, "25.00", key=key)
    reused = await record(shop, ref, "26.00", key=key)

    assert replay["purchase"] == first["purchase"]
    assert [t["id"] for t in replay["transactions"]] == [t["id"] for t in first["transactions"]]
    assert int(replay["wallet"]["balance"]) == 35
    assert reused["purchase"] is None
    assert [(e["code"], e["field"]) for e in reused["userErrors"]] == [
        ("IDEMPOTENCY_KEY_REUSED", ["input", "idempotencyKey"])
    ]
    assert await balance(shop, ref) == 35


async def test_a_preview_shows_the_awards_and_writes_nothing(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    await campaign(shop, {"kind": "MULTIPLIER", "value": "3"}, budgetPoints=1000)

    preview = await shop.gql(
        PREVIEW, input={"memberRef": ref, "amount": "20.00", "currency": "USD"}
    )
    payload = preview["data"]["previewPurchase"]

    assert payload["userErrors"] == []
    assert int(payload["points"]) == 60
    assert [(a["rule"], int(a["points"])) for a in payload["awards"]] == [
        ("BASE", 20),
        ("CAMPAIGN", 40),
    ]
    assert await balance(shop, ref) == 0
    listed = await shop.gql("{ purchases(first: 5) { edges { node { id } } } campaigns(first: 5)"
                            " { edges { node { spentPoints } } } }")  # fmt: skip
    assert listed["data"]["purchases"]["edges"] == []
    assert int(listed["data"]["campaigns"]["edges"][0]["node"]["spentPoints"]) == 0


async def test_a_purchase_for_a_member_the_partner_never_linked_moves_nothing(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)

    result = await shop.gql(
        RECORD,
        input={"idempotencyKey": "k", "memberRef": "nobody", "amount": "1.00", "currency": "USD"},
    )

    payload = result["data"]["recordPurchase"]
    assert payload["purchase"] is None
    assert payload["userErrors"][0]["code"] == "MEMBER_NOT_LINKED"


async def test_a_preview_counts_what_is_left_of_a_budget_and_the_members_uses(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await partner_with(db, api)
    ref = await link(shop)
    await campaign(shop, {"kind": "FIXED", "value": "40"}, budgetPoints=50)
    await campaign(shop, {"kind": "FIXED", "value": "3"}, perMemberLimit=1)
    await record(shop, ref, "1.00")  # takes 40 of the 50, and the one use

    preview = await shop.gql(PREVIEW, input={"memberRef": ref, "amount": "1.00", "currency": "USD"})

    shown = preview["data"]["previewPurchase"]
    assert [(a["rule"], int(a["points"])) for a in shown["awards"]] == [
        ("BASE", 1),
        ("CAMPAIGN", 10),
    ]
    assert int(shown["points"]) == 11


async def test_a_purchases_filter_with_a_nul_in_its_reference_is_invalid_input(
    db: Database, api: httpx.AsyncClient
) -> None:
    """PostgreSQL cannot hold a NUL: the filter refuses it as a transaction filter does,
    instead of an internal error (found by the schema fuzzer)."""
    shop = await partner_with(db, api)

    result = await shop.gql(
        "query($f: PurchaseFilter) { purchases(first: 5, filter: $f) { edges { node { id } } } }",
        f={"reference": "a\u0000b"},
    )

    assert result["data"] is None or result["data"]["purchases"] is None
    [error] = result["errors"]
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": ["filter", "reference"]}
