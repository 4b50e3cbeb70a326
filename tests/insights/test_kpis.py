"""insights(from, to, partnerId): the KPIs by a worked example, the operator's view of one
partner, and k-anonymity: a cross-shopping row appears at k members, never at k - 1
(k = 3 in these tests, through EXCHANGE_K_ANONYMITY's setting)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from exchange.kit.db import Database, RowScope, sql
from exchange.kit.system import SYSTEM
from partners import clients
from tests.graphql.conftest import Caller, email, token_for
from tests.insights.conftest import SINCE, K, bought, consent, insights_operator
from tests.loyalty.conftest import gid, partner_with

INSIGHTS = """query($from: DateTime!, $to: DateTime!, $p: ID) {
  insights(from: $from, to: $to, partnerId: $p) { liabilityPoints liabilityAmount currency
    issued redeemed expired breakageRate redemptionRate activeMembers30 activeMembers90
    repeatRate spendPerMember retention { cohort members retained }
    crossShopping { category share members } } }"""
WINDOW = {"from": "2026-04-01T00:00:00+00:00", "to": "2026-07-01T00:00:00+00:00"}


async def _insights(caller: Caller, **extra: Any) -> dict[str, Any]:
    result = await caller.gql(INSIGHTS, **WINDOW, **extra)
    assert "errors" not in result, result
    found: dict[str, Any] = result["data"]["insights"]
    return found


async def _link(partner: Caller, ref: str, mail: str) -> None:
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=mail,
    )
    assert linked["data"]["linkMember"]["userErrors"] == []


async def test_the_kpis_of_a_partner_by_worked_example(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    ann, bob = f"a-{secrets.token_hex(4)}", f"b-{secrets.token_hex(4)}"
    await _link(cafe, ann, email())
    await _link(cafe, bob, email())
    await bought(cafe, ann, "10.00", "2026-04-10T10:00:00+00:00")
    await bought(cafe, ann, "20.00", "2026-05-05T10:00:00+00:00")
    await bought(cafe, bob, "30.00", "2026-05-20T10:00:00+00:00")
    redeemed = await cafe.gql(
        'mutation($r: String!) { redeemPoints(input: {idempotencyKey: "k1", memberRef: $r,'
        " points: 15}) { userErrors { code } } }",
        r=ann,
    )
    assert redeemed["data"]["redeemPoints"]["userErrors"] == []

    found = await _insights(cafe)

    assert found == {
        # 60 points earned (earn rate 1), 15 redeemed: 45 left at the 0.010 issue price
        "liabilityPoints": "45", "liabilityAmount": "0.45", "currency": "USD",
        "issued": "60", "redeemed": "15", "expired": "0",
        "breakageRate": "0.0000", "redemptionRate": "0.2500",  # 0 / 60, 15 / 60
        # nobody bought in June; both within 90 days of July 1
        "activeMembers30": 0, "activeMembers90": 2,
        "repeatRate": "0.5000",  # Ann bought twice, Bob once
        "spendPerMember": "30.00",  # 60.00 by 2 members
        "retention": [
            # Ann came in April and came back in May, not June; Bob came in May
            {"cohort": "2026-04", "members": 1, "retained": ["1.0000", "0.0000"]},
            {"cohort": "2026-05", "members": 1, "retained": ["0.0000"]},
        ],
        "crossShopping": [],
    }  # fmt: skip
    operator = await insights_operator(db, api)
    assert await _insights(operator, p=gid("Partner", cafe.partner_id or 0)) == found


async def test_a_member_who_bought_before_and_after_the_window_spends_in_it_only_if_it_bought_in_it(
    db: Database, api: httpx.AsyncClient
) -> None:
    """Spenders are counted from the profile rows: a first or last purchase in the window
    makes a spender; one before and one after it, only with a purchase in it too."""
    cafe = await partner_with(db, api, since=SINCE)
    ann, bob, carl = (f"{n}-{secrets.token_hex(4)}" for n in ("a", "b", "c"))
    for ref in (ann, bob, carl):
        await _link(cafe, ref, email())
    for ref, amount, at in (
        (ann, "10.00", "2026-02-10"), (ann, "20.00", "2026-03-05"), (ann, "5.00", "2026-04-01"),
        (bob, "30.00", "2026-03-20"),
        (carl, "40.00", "2026-02-10"), (carl, "50.00", "2026-04-02"),
    ):  # fmt: skip
        await bought(cafe, ref, amount, f"{at}T10:00:00+00:00")

    march = await cafe.gql(INSIGHTS, **{"from": "2026-03-01T00:00:00+00:00",
                                        "to": "2026-04-01T00:00:00+00:00"})  # fmt: skip

    # 50.00 spent in March by Ann and Bob; Carl bought before and after March, not in it
    assert march["data"]["insights"]["spendPerMember"] == "25.00"


async def test_a_cross_shopping_row_appears_at_k_members_and_not_at_k_minus_one(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    cinema = await partner_with(db, api, since=SINCE)
    refs = [f"m-{secrets.token_hex(4)}" for _ in range(K + 2)]
    for ref in refs:  # each one member at both (one e-mail)
        mail = email()
        await _link(cafe, ref, mail)
        await _link(cinema, ref, mail)
        await bought(cafe, ref, "5.00", "2026-06-01T10:00:00+00:00")
    for ref in refs[: K + 1]:
        await consent(db, cafe, ref, True)
    popcorn = {"items": [{"category": "popcorn", "amount": "8.00"}]}
    # the one who did not consent counts for nothing
    await bought(cinema, refs[-1], "8.00", "2026-06-10T10:00:00+00:00", **popcorn)
    for ref in refs[: K - 1]:
        await bought(cinema, ref, "8.00", "2026-06-10T10:00:00+00:00", **popcorn)

    below = await _insights(cafe)
    await bought(cinema, refs[K - 1], "8.00", "2026-06-11T10:00:00+00:00", **popcorn)
    at_k = await _insights(cafe)

    assert below["crossShopping"] == []
    # K of the K + 1 members who consented bought popcorn at the cinema
    share = f"{K / (K + 1):.4f}"
    assert at_k["crossShopping"] == [{"category": "popcorn", "share": share, "members": K}]
    # the database function takes the partner from the caller, not from its argument
    as_cafe = RowScope(kind="PARTNER", partner_id=cafe.partner_id, client_id=cafe.client_id)
    named = [cafe.partner_id, cinema.partner_id, None]
    assert [await _cross_shopping(db, as_cafe, wanted) for wanted in named] == [
        [("popcorn", K, K + 1)]
    ] * 3
    member = RowScope(kind="MEMBER", member_id=1, client_id=cafe.client_id)
    with pytest.raises(asyncpg.PostgresError, match="for partners and operators"):
        await _cross_shopping(db, member, cafe.partner_id)


async def _cross_shopping(
    db: Database, scope: RowScope, wanted: int | None
) -> list[tuple[str, int, int]]:
    async with db.transaction(scope) as conn:
        rows = await conn.execute(
            sql("SELECT * FROM insights_cross_shopping(:wanted, :since, 1)"),
            {"wanted": wanted, "since": SINCE},
        )
        return [(row.category, row.members, row.population) for row in rows]


async def test_the_kpi_and_liability_functions_count_the_callers_partner_not_the_named(
    db: Database, api: httpx.AsyncClient
) -> None:
    """insights_kpis and insights_liability run as the owner (migration 0024): what keeps
    a partner inside its own figures is insights_partner, which takes the partner from
    the caller, so naming another partner, or none, still counts the caller's own."""
    cafe = await partner_with(db, api, since=SINCE)
    cinema = await partner_with(db, api, since=SINCE)
    ann, bob = f"a-{secrets.token_hex(4)}", f"b-{secrets.token_hex(4)}"
    await _link(cafe, ann, email())
    await _link(cinema, bob, email())
    await bought(cafe, ann, "10.00", "2026-04-10T10:00:00+00:00")
    await bought(cinema, bob, "30.00", "2026-05-20T10:00:00+00:00")
    await bought(cinema, bob, "20.00", "2026-06-20T10:00:00+00:00")
    as_cafe = RowScope(kind="PARTNER", partner_id=cafe.partner_id, client_id=cafe.client_id)

    named = [cafe.partner_id, cinema.partner_id, None]
    figures = [await _owner_figures(db, as_cafe, wanted) for wanted in named]

    # cafe's own: 10 points issued and held, one purchase of 10.00 by one member
    assert figures == [((10, 1, 1, 10), [(cafe.partner_id, 10)])] * 3
    member = RowScope(kind="MEMBER", member_id=1, client_id=cafe.client_id)
    for function in ("insights_kpis(:wanted, :since, :until)", "insights_liability(:wanted)"):
        with pytest.raises(asyncpg.PostgresError, match="for partners and operators"):
            async with db.transaction(member) as conn:
                await conn.execute(
                    sql(f"SELECT * FROM {function}"),
                    {"wanted": cafe.partner_id, "since": SINCE, "until": UNTIL},
                )


UNTIL = datetime(2027, 1, 1, tzinfo=UTC)


async def _owner_figures(
    db: Database, scope: RowScope, wanted: int | None
) -> tuple[tuple[int, int, int, int], list[tuple[int | None, int]]]:
    async with db.transaction(scope) as conn:
        kpis = (
            await conn.execute(
                sql("SELECT * FROM insights_kpis(:wanted, :since, :until)"),
                {"wanted": wanted, "since": SINCE, "until": UNTIL},
            )
        ).one()
        held = await conn.execute(
            sql("SELECT * FROM insights_liability(:wanted)"), {"wanted": wanted}
        )
        return (
            (int(kpis.issued), int(kpis.purchasers), int(kpis.spenders), int(kpis.spend)),
            [(row.issuer_partner_id, int(row.points)) for row in held],
        )


async def test_a_window_that_ends_before_it_starts_or_a_missing_scope_is_refused(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    bad = await cafe.gql(INSIGHTS, **{"from": WINDOW["to"], "to": WINDOW["from"]})
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(
            conn, scopes=["points:earn"], partner_id=cafe.partner_id
        )
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    refused = await Caller(api, token, created.client_id, "").gql(INSIGHTS, **WINDOW)

    assert bad["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": ["to"]}
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_partner_keeps_its_own_figures_of_a_member_it_unlinked(
    db: Database, api: httpx.AsyncClient
) -> None:
    """Its liability still counts the points it issued to the member, and its KPIs the
    member's purchases there (its own rows, migration 0022); another partner sees none."""
    cafe = await partner_with(db, api, since=SINCE)
    cinema = await partner_with(db, api, since=SINCE)
    ann, bob = f"a-{secrets.token_hex(4)}", f"b-{secrets.token_hex(4)}"
    await _link(cafe, ann, email())
    await _link(cafe, bob, email())
    await bought(cafe, ann, "10.00", "2026-04-10T10:00:00+00:00")
    await bought(cafe, bob, "30.00", "2026-05-20T10:00:00+00:00")
    before = await _insights(cafe)
    unlinked = await cafe.gql(
        "mutation($r: String!) { unlinkMember(input: {memberRef: $r}) { userErrors { code } } }",
        r=bob,
    )
    assert unlinked["data"]["unlinkMember"]["userErrors"] == []

    after = await _insights(cafe)

    assert (before["liabilityPoints"], before["issued"], before["activeMembers90"]) == (
        "40", "40", 2,
    )  # fmt: skip
    assert after == before
    others = await _insights(cinema)
    assert (others["liabilityPoints"], others["issued"], others["activeMembers90"]) == (
        "0", "0", 0,
    )  # fmt: skip
