"""Settlement charges each funder of a co-funded campaign for the lots it issued, with no
new settlement rule: its points are issuance like any other. The run and each funder's
statement show every campaign's cost per funder, in points and money."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from decimal import Decimal

import httpx

from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from settlement import reports, service
from settlement.models import party
from tests.loyalty.conftest import awards, campaign, gid, link, move, partner_with, record


async def test_a_statement_shows_each_campaigns_cost_per_funder(
    db: Database, api: httpx.AsyncClient
) -> None:
    # A day of its own, a few years ago (points live ten years, so they are still valid).
    days_ago = 700 + secrets.randbelow(2000)
    start = (utc_now() - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)  # fmt: skip
    end = start + timedelta(days=1)
    signed = start - timedelta(days=1)
    owner = await partner_with(db, api, since=signed, funding_model="PREFUNDED",
                                points_lifetime_days=3650)  # fmt: skip
    funder = await partner_with(
        db, api, since=signed, funding_model="PREFUNDED", issue_price=Decimal("0.020"),
        points_lifetime_days=3650,
    )  # fmt: skip
    funding = [
        {"partnerId": gid("Partner", owner.partner_id), "share": "0.6"},
        {"partnerId": gid("Partner", funder.partner_id), "share": "0.4"},
    ]
    created = await campaign(owner, {"kind": "FIXED", "value": "11"}, activate=False,
                             funding=funding, startsAt=signed.isoformat())  # fmt: skip
    await funder.gql(move("acceptCampaignFunding"), id=created["id"])
    await owner.gql(move("activateCampaign"), id=created["id"])
    ref = await link(owner)
    bought = await record(owner, ref, "10.00", occurredAt=(start + timedelta(hours=4)).isoformat())
    assert awards(bought) == [("BASE", 10), ("CAMPAIGN", 7), ("CAMPAIGN", 4)]

    async with db.transaction(SYSTEM) as conn:
        run = await service.run_settlement(conn, start=start, end=end, now=utc_now())
    campaign_id = base64.b64decode(created["id"] + "==").decode().split(":")[1]
    costs = [c for c in run.document["campaigns"] if c["campaign"] == campaign_id]

    # The owner issued 10 + 7 points at 0.010; the funder 4 at 0.020: 0.08.
    assert costs == [
        {"campaign": campaign_id, "name": created["name"], "funder": party(owner.partner_id),
         "points": 7, "amount": "0.07"},
        {"campaign": campaign_id, "name": created["name"], "funder": party(funder.partner_id),
         "points": 4, "amount": "0.08"},
    ]  # fmt: skip
    issued = run.document["points"]["byParty"]
    assert (issued[party(owner.partner_id)]["issued"], issued[party(funder.partner_id)]["issued"]) \
        == (17, 4)  # fmt: skip
    obligations = {(o["debtor"], o["reason"]): o["amount"] for o in run.document["obligations"]}
    assert obligations[(party(funder.partner_id), "issuance")] == "0.08"
    statement = reports.statement(run, funder.partner_id)
    [shown] = statement["campaigns"]
    assert {k: v for k, v in shown.items() if k != "funderName"} == costs[1]
    assert shown["funderName"].startswith("Partner ")
    page = reports.to_html(run)
    assert "Campaign costs by funder" in page
    assert created["name"] in page
