"""Every change that is an event writes it, whoever makes the change: the ledger's
entries (holds captured, released and expired; reversals, adjustments, expiry), tier
changes, purchases, co-funding requests and finalized settlement runs; points.expiring
once per lot, some days before it expires; retention and GDPR erasure purge them."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

import httpx

from exchange import delivery, ledger
from exchange.events import payloads, repository
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.settings import Tunables
from exchange.kit.system import SYSTEM
from exchange.loyalty import campaigns
from exchange.loyalty import repository as loyalty_repository
from exchange.loyalty.campaigns import CampaignDraft
from exchange.loyalty.models import Effect, EffectKind
from graphql_schema import ids
from partners import registry
from settlement import service as settlement_service
from tests.conftest import Factory
from tests.events.conftest import (
    Receiver,
    deliver_all,
    earn,
    endpoint,
    events_of,
    hook_partner,
    link,
)
from tests.graphql.conftest import email
from tests.partners.test_registry import TERMS, unique_name
from tests.settlement.test_runs import Period


async def test_the_ledgers_changes_are_events_whoever_makes_them(
    db: Database, make: Factory
) -> None:
    partner, member = await make.partner(), await make.member()
    now = utc_now()
    await make.earn(partner, member, 100, now=now)
    async with db.transaction(SYSTEM) as conn:
        held = [
            await ledger.hold(conn, client_id=make.client_id, partner_id=partner, now=now,
                              request=ledger.HoldRequest(make.key(), member, 10, ttl_seconds=60))
            for _ in range(3)
        ]  # fmt: skip
        hold_ids = [int(h.hold_id) for h in held if h.hold_id is not None]
        await ledger.capture(conn, client_id=make.client_id, partner_id=partner, now=now,
                             request=ledger.CaptureRequest(make.key(), hold_ids[0]))  # fmt: skip
        await ledger.release(conn, partner_id=partner, hold_id=hold_ids[1], now=now)
    await make.earn(partner, member, 5, now=now, expires_at=now + timedelta(minutes=1))
    async with db.transaction(SYSTEM) as conn:
        await ledger.release_holds_batch(conn, as_of=now + timedelta(minutes=2))
        await ledger.expire_batch(conn, as_of=now + timedelta(minutes=2))
        goodwill = ledger.AdjustRequest(make.key(), member, 7, "goodwill")
        await ledger.adjust(conn, client_id="ops", now=now, request=goodwill)

    assert await events_of(db, member) == [
        "points.earned",
        "hold.captured",
        "hold.released",
        "points.earned",
        "hold.expired",
        "points.expired",
        "points.adjusted",
    ]


async def test_a_tier_change_is_the_members_event(db: Database, make: Factory) -> None:
    member = await make.member()
    async with db.transaction(SYSTEM) as conn:
        await loyalty_repository.change_tier(conn, member_id=member, from_tier=None,
                                             to_tier="Gold", qualifying=120, reason="qualified",
                                             now=utc_now())  # fmt: skip
        facts = (await conn.execute(
            sql("SELECT partner_id, facts FROM event_outbox WHERE member_id = :m"),
            {"m": member},
        )).one()  # fmt: skip

    assert await events_of(db, member) == ["member.tier_changed"]
    assert facts.partner_id is None
    assert facts.facts == {"to": "Gold", "qualifyingPoints": 120, "reason": "qualified"}


async def test_a_recorded_purchase_and_a_funding_request_reach_the_right_partners(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    cinema = await hook_partner(db, hooks_api)
    coffee = await hook_partner(db, hooks_api)
    await endpoint(cinema, receiver.url("cinema"), ["purchase.recorded"])
    await endpoint(coffee, receiver.url("coffee"), ["campaign.funding_requested"])
    ref = f"m-{secrets.token_hex(3)}"
    await link(cinema, ref, email())
    bought = await cinema.gql(
        'mutation($r: String!) { recordPurchase(input: {idempotencyKey: "p1", memberRef: $r,'
        ' amount: "12.50", currency: "USD"}) { purchase { id } userErrors { code } } }',
        r=ref,
    )
    funders = [{"partnerId": ids.encode("Partner", p.partner_id or 0), "share": "0.5"}
               for p in (cinema, coffee)]  # fmt: skip
    asked = await cinema.gql(
        'mutation($f: [CampaignFundingInput!]) { createCampaign(input: {name: "duo",'
        ' startsAt: "2026-01-01T00:00:00+00:00", effect: {kind: FIXED, value: "5"},'
        " funding: $f}) { campaign { id } userErrors { code } } }",
        f=funders,
    )

    await deliver_all(db)

    [purchase] = receiver.at("cinema")
    [request] = receiver.at("coffee")
    assert purchase.json["data"] == {
        "memberRef": ref,
        "purchaseId": bought["data"]["recordPurchase"]["purchase"]["id"],
        "amount": "12.5000",
        "currency": "USD",
        "points": "12",
        "balance": "12",
        "occurredAt": purchase.json["data"]["occurredAt"],
    }
    assert request.json["data"]["campaignId"] == asked["data"]["createCampaign"]["campaign"]["id"]
    assert request.json["data"]["ownerId"] == ids.encode("Partner", cinema.partner_id or 0)
    assert request.json["data"]["share"] == "0.500000"


async def test_a_finalized_run_tells_each_partner_its_own_net_position(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    cinema = await period.partner(issue="0.012", redeem="0.009")
    member = await period.member()
    await period.earn(coffee, member, 1_000, day=3)
    cutoff = period.end + timedelta(days=1)
    async with db.transaction(SYSTEM) as conn:
        run = await settlement_service.run_settlement(conn, start=period.start,
                                                      end=period.end, now=cutoff)  # fmt: skip
        await settlement_service.finalize(conn, run_id=run.id, now=cutoff)
        rows = (await conn.execute(
            sql("SELECT partner_id, facts ->> 'netPosition' AS net FROM event_outbox"
                 " WHERE type = 'settlement.finalized' AND (facts ->> 'run')::bigint = :r"),
            {"r": run.id},
        )).all()  # fmt: skip

    assert {(row.partner_id, row.net) for row in rows} == {(coffee, "10.00")}
    assert cinema not in {row.partner_id for row in rows}


async def test_points_expiring_is_sent_once_per_lot_some_days_before(
    db: Database, make: Factory
) -> None:
    partner, member = await make.partner(), await make.member()
    now = utc_now()
    soon = await make.earn(partner, member, 40, now=now, expires_at=now + timedelta(days=10))
    await make.earn(partner, member, 60, now=now, expires_at=now + timedelta(days=20))
    tunables = Tunables(expiring_notice_days=14)

    await delivery.notices_and_retention(db, tunables=tunables, now=now)
    await delivery.notices_and_retention(db, tunables=tunables, now=now + timedelta(hours=1))
    first = await _expiring(db, member)
    await delivery.notices_and_retention(db, tunables=tunables, now=now + timedelta(days=7))

    assert first == [("40", soon.entry.id)]
    assert [points for points, _ in await _expiring(db, member)] == ["40", "60"]


async def _expiring(db: Database, member: int) -> list[tuple[str, int]]:
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql("SELECT facts ->> 'points', facts ->> 'lot' FROM event_outbox"
                 " WHERE member_id = :m AND type = 'points.expiring' ORDER BY id"),
            {"m": member},
        )  # fmt: skip
        lots = {int(r.id): int(r.entry_id) for r in (await conn.execute(
            sql("SELECT id, entry_id FROM ledger_lot WHERE member_id = :m"), {"m": member}
        ))}  # fmt: skip
        return [(points, lots[int(lot)]) for points, lot in result]


async def test_retention_purges_what_was_delivered_and_erasure_what_names_the_member(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    await endpoint(shop, receiver.url("kept"), ["points.earned"])
    kept, erased = f"k-{secrets.token_hex(3)}", f"e-{secrets.token_hex(3)}"
    await link(shop, kept, email())
    await link(shop, erased, email())
    await earn(shop, kept, 1, f"k-{secrets.token_hex(3)}")
    await earn(shop, erased, 2, f"k-{secrets.token_hex(3)}")
    await deliver_all(db)
    async with db.transaction(SYSTEM) as conn:
        members = dict((await conn.execute(
            sql("SELECT member_ref, member_id FROM member_link WHERE member_ref IN (:a, :b)"),
            {"a": kept, "b": erased},
        )).all())  # fmt: skip
        forgotten = await repository.forget_member(conn, member_id=members[erased])

    before = await events_of(db, members[kept])
    await delivery.notices_and_retention(
        db, tunables=Tunables(events_retention_days=30), now=utc_now() + timedelta(days=31)
    )

    assert forgotten == 1
    assert await events_of(db, members[erased]) == []
    assert before == ["points.earned"]
    assert await events_of(db, members[kept]) == []


async def test_an_offer_made_and_activated_is_the_members_event(
    db: Database, make: Factory
) -> None:
    member = await make.member()
    now = utc_now()
    async with db.transaction(SYSTEM) as conn:
        # a partner's campaign: an operator's would show in every partner's campaign list
        owner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=now)
        campaign = await campaigns.create(
            conn, owner=owner.id, created_by="events", now=now,
            draft=CampaignDraft(name="offers", starts_at=now,
                                effect=Effect(EffectKind.FIXED, Decimal(5))),
        )  # fmt: skip
        offer = (await conn.execute(
            sql("INSERT INTO offer (campaign_id, member_id, title, status, created_at)"
                 " VALUES (:c, :m, 'Two for one', 'AVAILABLE', :at) RETURNING id"),
            {"c": campaign.id, "m": member, "at": now},
        )).scalar_one()  # fmt: skip
        await conn.execute(
            sql("UPDATE offer SET status = 'ACTIVATED', activated_at = :at WHERE id = :o"),
            {"o": offer, "at": now},
        )
        rows = (await conn.execute(
            sql("SELECT partner_id, facts FROM event_outbox WHERE member_id = :m ORDER BY id"),
            {"m": member},
        )).all()  # fmt: skip

    assert await events_of(db, member) == ["offer.created", "offer.activated"]
    assert [(r.partner_id, r.facts) for r in rows] == [
        (None, {"offer": offer, "title": "Two for one"}),
        (None, {"offer": offer, "title": "Two for one"}),
    ]
    shown = payloads.data_of(rows[0].facts, member_id=member, member_ref="c-1", operator=False)
    assert shown == {
        "memberRef": "c-1",
        "offerId": ids.encode("Offer", offer),
        "title": "Two for one",
    }
