"""A member's profile: kept in the purchase's own transaction, lowered by refunds, RFM
quintiles after a refresh; a partner reads its own purchases with its own members only."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx

from exchange.insights import profiles
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from tests.cli.test_cli import run
from tests.graphql.conftest import new_operator
from tests.insights.conftest import SINCE, bought, profile_of, refresh
from tests.loyalty.conftest import REFUND, link, partner_with, record


async def test_a_profile_counts_the_partners_own_purchases_as_they_are_recorded(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    cinema = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    await bought(cafe, ref, "10.00", "2026-06-01T10:00:00+00:00")
    await bought(cafe, ref, "20.50", "2026-06-11T10:00:00+00:00")
    await bought(cafe, ref, "5.00", "2026-06-21T10:00:00+00:00")
    elsewhere = await link(cinema)  # another partner's purchases are not the cafe's
    await bought(cinema, elsewhere, "99.00", "2026-06-20T10:00:00+00:00")

    profile = (await profile_of(cafe, ref))["profile"]

    assert profile["firstPurchaseAt"] == "2026-06-01T10:00:00+00:00"
    assert profile["lastPurchaseAt"] == "2026-06-21T10:00:00+00:00"
    assert profile["purchasesHere"] == 3
    assert profile["spendHere"] == "35.5"
    # 20 days from the first to the last, over 2 intervals
    assert profile["meanDaysBetweenPurchases"] == "10.00"
    assert profile["rfm"] is None  # until the next refresh
    assert profile["consentCrossPartner"] is False


async def test_a_refund_takes_its_amount_back_from_the_spend(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    payload = await record(cafe, ref, "40.00", occurredAt="2026-06-01T10:00:00+00:00")

    refunded = await cafe.gql(
        REFUND,
        input={"idempotencyKey": "r-1", "purchaseId": payload["purchase"]["id"], "amount": "15"},
    )

    assert refunded["data"]["refundPurchase"]["userErrors"] == []
    profile = (await profile_of(cafe, ref))["profile"]
    assert profile["spendHere"] == "25"
    assert profile["purchasesHere"] == 1


async def test_rfm_quintiles_rank_a_partners_members_after_a_refresh(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    refs = [await link(cafe) for _ in range(5)]
    # member i: i + 1 purchases of 10 x (i + 1), the last on June (i + 1)
    for i, ref in enumerate(refs):
        for n in range(i + 1):
            await bought(cafe, ref, f"{10 * (i + 1)}.00", f"2026-05-{n + 1:02d}T10:00:00+00:00")
        await bought(cafe, ref, "1.00", f"2026-06-{i + 1:02d}T10:00:00+00:00")

    await refresh(db)

    scores = [(await profile_of(cafe, ref))["profile"]["rfm"] for ref in refs]
    # five members, one per fifth: the least recent, least frequent and lowest spend is 1
    assert scores == [{"recency": q, "frequency": q, "monetary": q} for q in (1, 2, 3, 4, 5)]


async def test_a_partner_reads_no_profile_of_a_member_it_did_not_link(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    cinema = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    await bought(cafe, ref, "10.00", "2026-06-01T10:00:00+00:00")

    result = await cinema.gql("query($r: String!) { member(memberRef: $r) { profile "
                              "{ purchasesHere } segments } }", r=ref)  # fmt: skip

    assert result["data"] is None or result["data"]["member"] is None
    operator = await new_operator(db, api)
    refused = await operator.gql(
        "query($r: String!) { member(memberRef: $r) { profile { purchasesHere } } }", r=ref
    )
    assert refused["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "NOT_FOUND")


async def test_the_refresh_command_recomputes_quintiles(
    db: Database, api: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    await bought(cafe, ref, "10.00", "2026-06-01T10:00:00+00:00")

    refreshed = run(["insights", "refresh"], database_url, tmp_path)

    assert refreshed.returncode == 0, refreshed.stderr
    assert refreshed.stdout.startswith("RFM refreshed:")
    # the cafe's only member: every quintile its own
    assert (await profile_of(cafe, ref))["profile"]["rfm"] == {
        "recency": 1, "frequency": 1, "monetary": 1,
    }  # fmt: skip


async def test_a_periodic_refresh_waits_until_it_is_due_and_skips_one_under_way(
    db: Database, api: httpx.AsyncClient
) -> None:
    """serve's periodic refresh reads when the quintiles were last recomputed from the
    database (a restarted or second worker does not recompute them early) and skips
    while another transaction recomputes them."""
    cafe = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    await bought(cafe, ref, "10.00", "2026-06-01T10:00:00+00:00")
    hour = timedelta(hours=1)
    start = utc_now()
    async with db.transaction(SYSTEM) as conn:
        await profiles.refresh(conn, now=start)

    not_yet = await _refresh_if_due(db, now=start + hour - timedelta(seconds=1), every=hour)
    async with db.transaction(SYSTEM) as holder:  # another worker, recomputing
        await holder.execute(sql("SELECT 1 FROM insights_refresh FOR UPDATE"))
        under_way = await _refresh_if_due(db, now=start + 2 * hour, every=hour)
    due = await _refresh_if_due(db, now=start + hour, every=hour)
    then = await _refresh_if_due(db, now=start + hour + timedelta(minutes=59), every=hour)

    assert (not_yet, under_way, then) == (None, None, None)
    assert due is not None
    async with db.transaction(SYSTEM) as conn:  # as it was: later tests' clocks are real
        await profiles.refresh(conn, now=utc_now())


async def _refresh_if_due(
    db: Database, *, now: datetime, every: timedelta
) -> tuple[int, int] | None:
    async with db.transaction(SYSTEM) as conn:
        return await profiles.refresh_if_due(conn, now=now, every=every)
