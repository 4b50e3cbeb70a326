"""Webhooks end to end, to a real HTTP receiver on loopback: events written with their
change (and only then), signed by the Standard Webhooks scheme (checked here by the
package's own verifier and by the spec's formula computed independently), addressed by
each partner's own memberRef, never another partner's transaction."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import httpx
import pytest
from standardwebhooks import Webhook

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
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


def _spec_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """The Standard Webhooks signature, from the specification's own words (not from
    the code that signs): base64 HMAC-SHA256, keyed by the base64 secret after whsec_,
    of "{webhook-id}.{webhook-timestamp}.{body}"."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def test_an_earn_is_delivered_signed_with_the_partners_own_ref_and_balance(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    coffee = await hook_partner(db, hooks_api)
    _, secret = await endpoint(coffee, receiver.url("coffee"), ["points.earned"])
    ref = f"cust-{secrets.token_hex(3)}"
    await link(coffee, ref, email())

    earned = await earn(coffee, ref, 250, f"k-{secrets.token_hex(4)}")
    await deliver_all(db)

    [got] = receiver.at("coffee")
    assert Webhook(secret).verify(got.body, got.headers) == got.json
    assert got.headers["webhook-signature"] == _spec_signature(secret, got.headers, got.body)
    assert got.headers["content-type"] == "application/json"
    assert got.json["type"] == "points.earned"
    assert got.json["data"] == {
        "memberRef": ref,
        "transactionId": earned["transaction"]["id"],
        "points": "250",
        "balance": "250",
    }


async def test_a_rolled_back_change_leaves_no_event_and_a_committed_one_has_exactly_one(
    db: Database,
) -> None:
    async with db.transaction(SYSTEM) as conn:
        partner_id = (await conn.execute(sql("SELECT min(id) FROM partner"))).scalar_one()
        member = await ledger.open_member(conn)

    async def earn_then_fail() -> None:
        async with db.transaction(SYSTEM) as conn:
            await ledger.earn(conn, client_id="t", partner_id=partner_id, now=utc_now(),
                              request=ledger.EarnRequest("rolled-back", member, 10))  # fmt: skip
            raise RuntimeError("the change fails after its write")

    with pytest.raises(RuntimeError):
        await earn_then_fail()
    before = await events_of(db, member)
    async with db.transaction(SYSTEM) as conn:
        await ledger.earn(conn, client_id="t", partner_id=partner_id, now=utc_now(),
                          request=ledger.EarnRequest("committed", member, 10))  # fmt: skip

    assert before == []
    assert await events_of(db, member) == ["points.earned"]


async def test_a_partner_gets_its_own_transactions_and_its_members_events_by_its_own_ref(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    coffee = await hook_partner(db, hooks_api)
    cinema = await hook_partner(db, hooks_api)
    await endpoint(coffee, receiver.url("coffee"))
    await endpoint(cinema, receiver.url("cinema"))
    shared = email()
    await link(coffee, "ada-at-coffee", shared)
    await link(cinema, "ada-at-cinema", shared)
    friend = email()
    await link(coffee, "bob-at-coffee", friend)

    await earn(coffee, "ada-at-coffee", 100, f"k-{secrets.token_hex(4)}")
    member = await coffee.member_token("ada-at-coffee", scope="wallet:read wallet:transfer")
    gift = await member.gql(
        'mutation($e: String!) { transferPoints(input: {idempotencyKey: "gift-1", points: 30,'
        " toEmail: $e}) { userErrors { code } } }",
        e=friend,
    )
    assert gift["data"]["transferPoints"]["userErrors"] == []
    await deliver_all(db)

    to_coffee = [(r.json["type"], r.json["data"].get("memberRef"), r.json["data"].get("direction"))
                 for r in receiver.at("coffee")]  # fmt: skip
    to_cinema = [(r.json["type"], r.json["data"].get("memberRef"), r.json["data"].get("direction"))
                 for r in receiver.at("cinema")]  # fmt: skip
    # The earn is coffee's transaction: cinema never hears of it. The gift is Ada's (and
    # Bob's) own event: each partner linked to them hears of it under its own ref.
    assert sorted(to_coffee, key=str) == sorted([
        ("points.earned", "ada-at-coffee", None),
        ("points.transferred", "ada-at-coffee", "sent"),
        ("points.transferred", "bob-at-coffee", "received"),
    ], key=str)  # fmt: skip
    assert [t for t in to_coffee if t[1] == "ada-at-coffee"] == to_coffee[:1] + [
        t for t in to_coffee if t[2] == "sent"
    ]  # Ada's own events in the order they happened
    assert to_cinema == [("points.transferred", "ada-at-cinema", "sent")]
    bodies = b"".join(r.body for r in receiver.at("cinema"))
    assert b"coffee" not in bodies
    assert all("counterparty" not in r.json["data"] for r in receiver.got)


async def test_an_endpoint_gets_only_the_types_it_asked_for(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    await endpoint(shop, receiver.url("redemptions"), ["points.redeemed"])
    ref = f"r-{secrets.token_hex(3)}"
    await link(shop, ref, email())
    await earn(shop, ref, 50, f"k-{secrets.token_hex(4)}")
    redeemed = await shop.gql(
        'mutation($r: String!) { redeemPoints(input: {idempotencyKey: "spend-1", memberRef: $r,'
        " points: 20}) { transaction { id } userErrors { code } } }",
        r=ref,
    )

    await deliver_all(db)

    [got] = receiver.at("redemptions")
    assert got.json["type"] == "points.redeemed"
    assert (
        got.json["data"]["transactionId"] == redeemed["data"]["redeemPoints"]["transaction"]["id"]
    )
    assert got.json["data"]["balance"] == "30"
