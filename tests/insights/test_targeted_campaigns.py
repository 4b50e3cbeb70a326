"""Targeted campaigns: the audience selected at creation, a control share held out at
random (recorded, no offer), offers in the wallet, activation, the offer.created event to
partners the member is linked to, and the report whose uplift is computed here by hand;
a COALITION audience reaches consenting members the owner cannot see."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from tests.graphql.conftest import Caller, email
from tests.insights.conftest import NOW, SINCE, Clock, K, bought, consent
from tests.insights.test_consent import _member_id
from tests.loyalty.conftest import CREATE, link, move, partner_with

REPORT = """query($id: ID!) { campaignReport(campaignId: $id) { reach activated
  treated { members purchasers spend } control { members purchasers spend } uplift
  pointsCost moneyCost currency } }"""
OFFERS = (
    "query($r: String!) { member(memberRef: $r) { wallet { offers { id title status"
    " expiresAt campaign { id name } } } } }"
)
ACTIVATE = """mutation($input: ActivateOfferInput!) { activateOffer(input: $input) {
  offer { id status } userErrors { code field message } } }"""
LATER = datetime(2026, 7, 10, 12, 0, tzinfo=NOW.tzinfo)


@contextmanager
def moved(clock: Clock, to: datetime) -> Iterator[None]:
    clock.now = to
    try:
        yield
    finally:
        clock.now = NOW


async def _targeted(owner: Caller, target: dict[str, Any], **extra: Any) -> dict[str, Any]:
    given = {
        "name": f"win back {secrets.token_hex(3)}",
        "startsAt": "2026-06-30T00:00:00+00:00",
        "endsAt": "2026-08-01T00:00:00+00:00",
        "effect": {"kind": "FIXED", "value": "20"},
        "target": target,
        **extra,
    }
    created = await owner.gql(CREATE, input=given)
    assert "errors" not in created, created
    payload: dict[str, Any] = created["data"]["createCampaign"]
    return payload


async def _groups(db: Database, campaign_id: str) -> dict[int, bool]:
    """member -> held out, as recorded (read as the system: no caller may)."""
    from graphql_schema import ids

    key = ids.decode_as(campaign_id, "Campaign")
    async with db.transaction(SYSTEM) as conn:
        rows = await conn.execute(
            sql("SELECT member_id, control FROM campaign_selection WHERE campaign_id = :c"),
            {"c": key},
        )
        return {int(r.member_id): bool(r.control) for r in rows}


async def test_a_control_group_gets_no_offer_and_the_report_shows_the_uplift(
    db: Database, api: httpx.AsyncClient, clock: Clock
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    refs = [await link(cafe) for _ in range(20)]
    for ref in refs:
        await bought(cafe, ref, "10.00", "2026-06-01T10:00:00+00:00")  # ACTIVE at NOW
    outsider = await link(cafe)  # no purchase: in no segment

    created = await _targeted(
        cafe, {"segment": "ACTIVE", "controlShare": "0.5", "offerTitle": "Your next latte"}
    )

    assert created["userErrors"] == []
    campaign_id = created["campaign"]["id"]
    started = await cafe.gql(move("activateCampaign"), id=campaign_id)
    assert started["data"]["activateCampaign"]["userErrors"] == []
    member_of = {await _member_id(db, cafe, ref): ref for ref in refs}
    groups = await _groups(db, campaign_id)
    assert set(groups) == set(member_of)  # every ACTIVE member, the outsider not
    treated = [member_of[m] for m, held in groups.items() if not held]
    control = [member_of[m] for m, held in groups.items() if held]
    assert len(treated) >= K
    assert len(control) >= K
    for ref in treated:
        [offer] = (await cafe.gql(OFFERS, r=ref))["data"]["member"]["wallet"]["offers"]
        assert (offer["title"], offer["status"]) == ("Your next latte", "AVAILABLE")
        assert offer["expiresAt"] == "2026-08-01T00:00:00+00:00"
        assert offer["campaign"]["id"] == campaign_id
    for ref in (*control, outsider):
        assert (await cafe.gql(OFFERS, r=ref))["data"]["member"]["wallet"]["offers"] == []

    member = await cafe.member_token(treated[0], scope="wallet:read offers:write")
    [offer] = (await member.gql("{ wallet { offers { id } } }"))["data"]["wallet"]["offers"]
    activated = await member.gql(ACTIVATE, input={"offerId": offer["id"]})
    assert activated["data"]["activateOffer"] == {
        "offer": {"id": offer["id"], "status": "ACTIVATED"}, "userErrors": [],
    }  # fmt: skip
    with moved(clock, LATER):
        for ref in treated[:3]:
            await bought(cafe, ref, "20.00", "2026-07-05T10:00:00+00:00")
        await bought(cafe, control[0], "10.00", "2026-07-05T10:00:00+00:00")
        report = (await cafe.gql(REPORT, id=campaign_id))["data"]["campaignReport"]

    t, c = len(treated), len(control)
    # uplift: treated conversion minus control conversion, by hand
    uplift = (Decimal(3) / t - Decimal(1) / c).quantize(Decimal("0.0001"))
    assert report == {
        "reach": t, "activated": 1,
        "treated": {"members": t, "purchasers": 3, "spend": "60.00"},
        "control": {"members": c, "purchasers": 1, "spend": "10.00"},
        "uplift": str(uplift),
        # FIXED 20 only for the member who activated its offer (a targeted campaign
        # rewards no one else: not the control group), at the cafe's 0.010 issue price
        "pointsCost": "20", "moneyCost": "0.20", "currency": "USD",
    }  # fmt: skip
    used = (await member.gql("{ wallet { offers { status } } }"))["data"]["wallet"]["offers"]
    assert used == [{"status": "USED"}]  # the purchase after activation used it


async def test_each_offer_is_announced_to_partners_the_member_is_linked_to(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    refs = [await link(cafe) for _ in range(2)]
    for ref in refs:
        await bought(cafe, ref, "10.00", "2026-06-01T10:00:00+00:00")

    created = await _targeted(
        cafe, {"segment": "ACTIVE", "controlShare": "0", "offerTitle": "Two for one"}
    )

    assert created["userErrors"] == []
    members = [await _member_id(db, cafe, ref) for ref in refs]
    async with db.transaction(SYSTEM) as conn:
        rows = await conn.execute(
            sql(
                "SELECT member_id, partner_id, facts ->> 'title' AS title FROM event_outbox"
                " WHERE type = 'offer.created' AND member_id = ANY(:m) ORDER BY member_id"
            ),
            {"m": members},
        )
        events = [(r.member_id, r.partner_id, r.title) for r in rows]
    # a member's event: fanned out to every partner linked to the member
    assert events == [(m, None, "Two for one") for m in sorted(members)]


async def test_a_coalition_audience_reaches_consenting_members_the_owner_cannot_see(
    db: Database, api: httpx.AsyncClient
) -> None:
    cinema = await partner_with(db, api, since=SINCE)
    cafe = await partner_with(db, api, since=SINCE)
    lapsed = []
    for n in range(4):  # bought at the cafe long ago: LAPSED coalition-wide
        ref = f"c-{secrets.token_hex(4)}"
        await cafe.gql(
            "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
            " { userErrors { code } } }",
            r=ref,
            e=email(),
        )
        await bought(cafe, ref, "10.00", "2025-12-01T10:00:00+00:00")
        if n < 3:
            await consent(db, cafe, ref, True)
        lapsed.append(ref)

    created = await _targeted(
        cinema,
        {"segment": "LAPSED", "audience": "COALITION", "controlShare": "0",
         "offerTitle": "A film on us"},
    )  # fmt: skip

    assert created["userErrors"] == []
    campaign_id = created["campaign"]["id"]
    chosen = await _groups(db, campaign_id)
    mine = {await _member_id(db, cafe, ref) for ref in lapsed[:3]}
    assert mine <= set(chosen)  # the three who consented (and any other such member)
    assert await _member_id(db, cafe, lapsed[3]) not in chosen
    report = (await cinema.gql(REPORT, id=campaign_id))["data"]["campaignReport"]
    assert report["reach"] == len(chosen)
    assert report["control"] is None  # nobody held out: below k
    for ref in lapsed[:3]:  # the cinema can not see them
        hidden = await cinema.gql(OFFERS, r=ref)
        assert hidden["data"]["member"] is None
        shown = await cafe.gql(OFFERS, r=ref)
        [offer] = shown["data"]["member"]["wallet"]["offers"]
        assert offer["title"] == "A film on us"
        assert offer["campaign"] is None  # the cafe neither owns nor funds it


async def test_a_bad_target_is_refused_and_creates_nothing(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    cases = [
        ({"segment": "WHALES", "offerTitle": "x"}, ["input", "target", "segment"]),
        ({"segment": "ACTIVE", "offerTitle": "x", "controlShare": "1"},
         ["input", "target", "controlShare"]),
        ({"segment": "ACTIVE", "offerTitle": ""}, ["input", "target", "offerTitle"]),
    ]  # fmt: skip
    for target, field in cases:
        payload = await _targeted(cafe, target)
        assert payload["campaign"] is None
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
            ("INVALID_INPUT", field)
        ]
