"""GDPR: the operator's export shows what insights hold of a member (profiles, consent,
purchases with their personal fields, offers); erasure deletes the profiles, consent and
offers and clears the purchases' personal fields, keeping their amounts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from tests.cli.test_cli import run
from tests.insights.conftest import SINCE, bought, consent
from tests.insights.test_consent import _member_id
from tests.loyalty.conftest import link, partner_with


async def test_export_shows_and_erasure_deletes_what_insights_hold(
    db: Database, api: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    await bought(
        cafe, ref, "12.00", "2026-06-01T10:00:00+00:00",
        storeRef="store-on-main-street", reference="receipt-991",
        items=[{"sku": "latte", "category": "coffee", "amount": "12.00"}],
    )  # fmt: skip
    await consent(db, cafe, ref, True)
    member = await _member_id(db, cafe, ref)

    exported = run(["member", "export", str(member)], database_url, tmp_path)
    erased = run(["member", "erase", str(member)], database_url, tmp_path)

    assert exported.returncode == 0, exported.stderr
    held = json.loads(exported.stdout)["insights"]
    assert held["consentCrossPartner"] is True
    assert [(p["purchases"], p["spend"]) for p in held["profiles"]] == [(1, "12.0000")]
    [purchase] = held["purchases"]
    assert (purchase["storeRef"], purchase["reference"]) == ("store-on-main-street", "receipt-991")
    assert purchase["items"][0]["sku"] == "latte"
    assert erased.returncode == 0, erased.stderr
    async with db.transaction(SYSTEM) as conn:
        left = await conn.execute(
            sql(
                "SELECT (SELECT count(*) FROM member_partner_stats WHERE member_id = :m)"
                " + (SELECT count(*) FROM member_category_stats WHERE member_id = :m)"
                " + (SELECT count(*) FROM member_profile WHERE member_id = :m) AS rows,"
                " (SELECT json_agg(json_build_array(store_ref, reference, items, amount::text))"
                "  FROM purchase WHERE member_id = :m) AS purchases"
            ),
            {"m": member},
        )
        row = left.one()
    assert row.rows == 0
    assert row.purchases == [[None, None, [], "12.0000"]]
    assert (await cafe.gql("query($r: String!) { member(memberRef: $r) { id } }", r=ref))["data"][
        "member"
    ] is None
