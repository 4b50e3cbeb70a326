"""Tiers, on a database of their own (tiers are coalition-wide: they would change every
other test's purchases): up at once in the purchase that qualifies, the multiplier as a
TIER award issued by the coalition, refunds taking qualifying points back, and a
downgrade only at a month end once the grace period has passed, with history kept."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from exchange import ledger
from exchange.app import create_app
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.settings import Settings, Tunables
from exchange.kit.system import SYSTEM
from exchange.loyalty import tiers
from exchange.migrations import upgrade
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, Caller
from tests.loyalty.conftest import REFUND, awards, link, partner_with, record

TIER = "query($r: String!) { member(memberRef: $r) { wallet { tier { name qualifyingPoints next pointsToNext validUntil } } } }"  # noqa: E501


@pytest.fixture(scope="module")
async def tier_db_url(server_url: str) -> AsyncIterator[str]:
    name = f"exchange_tiers_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sqlalchemy.engine.make_url(server_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    await upgrade(rendered)
    yield rendered
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.dispose()


@pytest.fixture(scope="module")
async def tier_db(tier_db_url: str) -> AsyncIterator[Database]:
    database = Database(tier_db_url, pool_size=5)
    async with database.transaction(SYSTEM) as conn:
        for name, threshold, multiplier in (("Silver", 0, "1"), ("Gold", 100, "1.5"),
                                            ("Platinum", 1000, "2")):  # fmt: skip
            await tiers.set_tier(conn, name=name, qualifying_points=threshold,
                                 earn_multiplier=Decimal(multiplier), now=utc_now())  # fmt: skip
    yield database
    async with database.transaction(SYSTEM) as conn:
        report = await ledger.verify(conn)
    await database.dispose()
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]


@pytest.fixture(scope="module")
async def tier_api(
    tier_db_url: str, tier_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    home: Path = tmp_path_factory.mktemp("tiers")
    settings = Settings(home=home, database_url=tier_db_url,
                        secret_key_from_env=TEST_SECRET_KEY, public_url=BASE)  # fmt: skip
    app = create_app(settings, sweep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def _tier(partner: Caller, ref: str) -> dict[str, Any]:
    result = await partner.gql(TIER, r=ref)
    shown: dict[str, Any] = result["data"]["member"]["wallet"]["tier"]
    return shown


async def _review(db: Database, as_of: Any) -> tuple[int, int]:
    async with db.transaction(SYSTEM) as conn:
        done = await tiers.review(conn, as_of=as_of, tunables=Tunables(), after_member=0)
    return done.members, done.downgraded


async def test_a_member_goes_up_at_once_and_earns_the_tier_multiplier_from_the_coalition(
    tier_db: Database, tier_api: httpx.AsyncClient
) -> None:
    shop = await partner_with(tier_db, tier_api)
    ref = await link(shop)

    first = await record(shop, ref, "60.00")
    silver = await _tier(shop, ref)
    qualifying = await record(shop, ref, "50.00")  # 110: Gold, from this purchase on
    gold = await _tier(shop, ref)
    boosted = await record(shop, ref, "10.00")  # base 10 + TIER floor(10 x 0.5) = 5

    assert awards(first) == [("BASE", 60)]
    assert awards(qualifying) == [("BASE", 50)]
    assert (silver["name"], silver["qualifyingPoints"], silver["next"], silver["pointsToNext"]) \
        == ("Silver", "60", "Gold", "40")  # fmt: skip
    assert (gold["name"], gold["next"], gold["pointsToNext"]) == ("Gold", "Platinum", "890")
    assert awards(boosted) == [("BASE", 10), ("TIER", 5)]
    assert boosted["purchase"]["awards"][1]["fundedBy"] is None
    assert (await _tier(shop, ref))["qualifyingPoints"] == "125"


async def test_a_downgrade_waits_for_a_month_end_and_its_grace_period(
    tier_db: Database, tier_api: httpx.AsyncClient
) -> None:
    shop = await partner_with(tier_db, tier_api)
    ref = await link(shop)
    await record(shop, ref, "120.00")  # Gold
    refundable = await record(shop, ref, "30.00")
    refund = await shop.gql(REFUND, input={"idempotencyKey": "back",
                                           "purchaseId": refundable["purchase"]["id"]})  # fmt: skip
    assert refund["data"]["refundPurchase"]["userErrors"] == []
    now = utc_now()
    first_of_next = (now.replace(day=1) + timedelta(days=32)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )

    # Within the grace period of the next month end: nothing is reviewed yet.
    within_grace = await _review(tier_db, first_of_next + timedelta(days=29))
    still_gold = await _tier(shop, ref)
    # After it: measured over the 12 months to that month end, 120 + 30 - 30 = 120 points
    # still qualify for Gold.
    after_grace = await _review(tier_db, first_of_next + timedelta(days=31))
    # Thirteen months on, this month's purchases have left the window: down to Silver.
    much_later = first_of_next.replace(year=first_of_next.year + 1) + timedelta(days=31)
    await _review(tier_db, much_later)
    async with tier_db.transaction(SYSTEM) as conn:
        history = await conn.execute(
            sql(
                "SELECT c.from_tier, c.to_tier, c.reason FROM member_tier_change c"
                " JOIN member_link l ON l.member_id = c.member_id"
                " WHERE l.member_ref = :ref ORDER BY c.id"
            ),
            {"ref": ref},
        )
        changes = [tuple(row) for row in history]

    assert within_grace[1] == 0
    assert still_gold["name"] == "Gold"
    assert after_grace[1] == 0
    assert changes == [(None, "Gold", "qualified"), ("Gold", "Silver", "review")]


async def test_refunds_take_qualifying_points_back(
    tier_db: Database, tier_api: httpx.AsyncClient
) -> None:
    shop = await partner_with(tier_db, tier_api)
    ref = await link(shop)
    bought = await record(shop, ref, "80.00")

    await shop.gql(REFUND, input={"idempotencyKey": "half", "purchaseId": bought["purchase"]["id"],
                                  "amount": "40.00"})  # fmt: skip

    shown = await _tier(shop, ref)
    assert (shown["name"], shown["qualifyingPoints"], shown["pointsToNext"]) == (
        "Silver",
        "40",
        "60",
    )
