"""The demo coalition of `exchange serve --demo`: a history over last month and this one
that the finance team can settle as the README shows."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from exchange.app import create_app
from exchange.devtools import demo
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from exchange.loyalty import campaigns, purchases, repository, tiers
from exchange.loyalty.models import CampaignStatus
from partners.identity import IdentityKeys
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE


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


async def _gql(http: httpx.AsyncClient, token: str, query: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


BOB_BALANCE = '{ member(memberRef: "bob") { wallet { balance } } }'


async def test_with_the_demo_credentials_alice_gives_bob_points_by_his_email(
    scratch_database_url: str, tmp_path: Path
) -> None:
    summary = await seed_demo(scratch_database_url, tmp_path)
    [partner] = [c for c in summary.credentials if str(c["who"]).startswith("partner")]
    client = (str(partner["client_id"]), str(partner["client_secret"]))
    settings = Settings(
        home=tmp_path,
        database_url=scratch_database_url,
        secret_key_from_env=TEST_SECRET_KEY,
        public_url=BASE,
    )
    app = create_app(settings, sweep=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http,
    ):
        partner_token = (
            await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=client)
        ).json()["access_token"]
        bob_before = await _gql(http, partner_token, BOB_BALANCE)
        exchanged = await http.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": "alice",
                "subject_token_type": MEMBER_REF_TOKEN_TYPE,
                "scope": "wallet:read wallet:transfer",
            },
            auth=client,
        )
        assert exchanged.status_code == 200, exchanged.text
        alice = exchanged.json()["access_token"]
        alice_before = await _gql(http, alice, "{ wallet { balance } }")
        transferred = await _gql(
            http,
            alice,
            'mutation { transferPoints(input: {idempotencyKey: "gift-1", points: 150,'
            ' toEmail: "bob@example.com"}) { transaction { kind points } wallet { balance }'
            " userErrors { field code message } } }",
        )
        bob_after = await _gql(http, partner_token, BOB_BALANCE)

    assert exchanged.json()["scope"] == "wallet:read wallet:transfer"
    payload = transferred["transferPoints"]
    assert payload["userErrors"] == []
    assert payload["transaction"] == {"kind": "TRANSFER", "points": "150"}
    alice_had = int(alice_before["wallet"]["balance"])
    assert int(payload["wallet"]["balance"]) == alice_had - 150
    bob_had = int(bob_before["member"]["wallet"]["balance"])
    assert int(bob_after["member"]["wallet"]["balance"]) == bob_had + 150
