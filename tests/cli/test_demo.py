"""The demo coalition of `exchange serve --demo`: a history over last month and this one
that the finance team can settle as the README shows."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from exchange.devtools import demo
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from exchange.loyalty import campaigns, purchases, repository, tiers
from exchange.loyalty.models import CampaignStatus
from partners.identity import IdentityKeys
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET_KEY


async def seed_demo(database_url: str, home: Path) -> demo.DemoSummary:
    database = Database.connect(database_url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            return await demo.seed(
                conn,
                now=utc_now(),
                keys=IdentityKeys.from_secret(TEST_SECRET_KEY.encode()),
                home=home,
            )
    finally:
        await database.dispose()


async def test_last_month_of_the_demo_settles_with_both_funding_models(
    scratch_database_url: str, tmp_path: Path
) -> None:
    first = await seed_demo(scratch_database_url, tmp_path)
    again = await seed_demo(scratch_database_url, tmp_path)
    start, end = (day.isoformat() for day in first.last_month)

    settled = run(
        ["settle", "--from", start, "--to", end, "--json"], scratch_database_url, tmp_path
    )

    assert settled.returncode == 0, settled.stderr
    document = json.loads(settled.stdout)
    assert (first.seeded, again.seeded) == (True, False)  # seeding twice adds nothing
    assert first.last_month[1].day == 1
    assert first.last_month[0] == (first.last_month[1] - timedelta(days=1)).replace(day=1)
    key = {name: f"partner:{pid}" for name, pid in first.partners.items()}
    coffee, cinema, grocer = (
        key["Bean There Coffee"],
        key["Reel Cinemas"],
        key["Fresh Basket Grocers"],
    )
    assert {b["fundingModel"] for b in document["breakdown"]} == {"PREFUNDED", "ON_REDEMPTION"}
    # Last month only (this month's 300 coffee points at the cinema stay out):
    # coffee 1,500 x 0.010 and grocer 7,000 x 0.008 issued; 1,000 coffee points at the
    # cinema x 0.009, 300 at coffee x 0.008, 1,500 grocer points at grocer x 0.007 paid by
    # the coalition; the cinema owes coffee 300 of its points x 0.008 = 2.40 and the
    # coalition 2.40 x 0.015 = 0.036 -> 0.04 (the cent left by rounding 95.336 to 95.34).
    obligations = [
        (o["debtor"], o["creditor"], o["reason"], o["amount"]) for o in document["obligations"]
    ]
    assert sorted(obligations) == sorted(
        [
            (coffee, "coalition", "issuance", "15.00"),
            (grocer, "coalition", "issuance", "56.00"),
            ("coalition", cinema, "redemption", "9.00"),
            ("coalition", coffee, "redemption", "2.40"),
            ("coalition", grocer, "redemption", "10.50"),
            (cinema, coffee, "redemption", "2.40"),
            (cinema, "coalition", "fee", "0.04"),
        ]
    )  # fmt: skip
    assert {(c["issuer"], c["redeemer"], c["points"]) for c in document["points"]["matrix"]} == {
        (coffee, cinema, 1_000),
        (coffee, coffee, 300),
        (cinema, coffee, 300),
        (grocer, grocer, 1_500),
    }


async def test_the_demo_runs_a_campaign_and_a_co_funded_one_that_rewarded_purchases(
    scratch_database_url: str, tmp_path: Path
) -> None:
    summary = await seed_demo(scratch_database_url, tmp_path)
    database = Database.connect(scratch_database_url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            running = await campaigns.everything(conn)
            ladder = await tiers.all_tiers(conn)
            bought = await purchases.load_many(
                conn,
                await repository.purchases_page(
                    conn,
                    partner_id=None,
                    member_id=None,
                    since=None,
                    until=None,
                    reference=None,
                    before_id=None,
                    limit=10,
                ),
            )
    finally:
        await database.dispose()

    cinema, coffee = summary.partners["Reel Cinemas"], summary.partners["Bean There Coffee"]
    assert {c.status for c in running} == {CampaignStatus.ACTIVE}
    [co_funded] = [c for c in running if len(c.funding) == 2]
    assert {(f.partner_id, f.accepted) for f in co_funded.funding} == {(cinema, True),
                                                                       (coffee, True)}  # fmt: skip
    assert [t.name for t in ladder] == ["Silver", "Gold", "Platinum"]
    [at_the_cinema] = [p for p in bought if p.partner_id == cinema]
    popcorn = [a for a in at_the_cinema.awards if a.campaign_id == co_funded.id]
    # 100 bonus points with popcorn, half each: 50 issued by the cinema, 50 by coffee.
    assert sorted((a.funder, a.points) for a in popcorn) == sorted([(cinema, 50), (coffee, 50)])
    assert at_the_cinema.awards[0].points == 24  # the base: 24.00 x 1
