"""The delivery rules, against a real receiver, with a clock the test moves: retries keep
the webhook-id and stop at 2xx; backoff starts within seconds and grows; 3 days of
failures or a 410 Gone disable the endpoint; a hanging receiver holds up nobody else;
one member's events arrive in order; two workers never send one event twice."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import timedelta

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from exchange.delivery import FAN_OUT_PER_ROUND, LEASE, LEASES_PER_SLOT
from exchange.events import dispatch
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from graphql_schema import ids
from tests.events.conftest import (
    Clock,
    Receiver,
    deliver_all,
    deliverer,
    earn,
    endpoint,
    hook_partner,
    link,
)
from tests.graphql.conftest import Caller, email


async def _deliveries(db: Database, endpoint_id: str) -> list[tuple[str, int, str | None]]:
    from graphql_schema import ids

    key = ids.decode_as(endpoint_id, "WebhookEndpoint")
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql("SELECT status, attempts, last_error FROM webhook_delivery"
                 " WHERE endpoint_id = :e ORDER BY event_id"),
            {"e": key},
        )  # fmt: skip
        return [tuple(row) for row in result]  # type: ignore[misc]


async def _endpoint_status(partner: Caller, endpoint_id: str) -> tuple[str, str | None]:
    found = await partner.gql(
        "query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { status disabledReason } } }",
        id=endpoint_id,
    )
    node = found["data"]["node"]
    return node["status"], node["disabledReason"]


async def _member(partner: Caller) -> str:
    ref = f"m-{secrets.token_hex(3)}"
    await link(partner, ref, email())
    return ref


async def test_retries_keep_the_webhook_id_back_off_and_stop_at_the_first_2xx(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, _ = await endpoint(shop, receiver.url("flaky"), ["points.earned"])
    receiver.answers["flaky"] = [500, 503]
    ref = await _member(shop)
    await earn(shop, ref, 10, f"k-{secrets.token_hex(3)}")
    clock = Clock()
    worker = deliverer(db, clock)

    try:
        await worker.drain()  # 500
        await worker.drain()  # not due yet: nothing sent
        after_one = len(receiver.at("flaky"))
        clock.advance(seconds=7)  # the first retry is due within ~5 s (+-20 %)
        await worker.drain()  # 503
        clock.advance(seconds=13)  # the second wait is ~10 s
        await worker.drain()  # 200
        clock.advance(hours=1)
        await worker.drain()  # delivered: never again
    finally:
        await worker.close()

    got = receiver.at("flaky")
    assert after_one == 1
    assert len(got) == 3
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert await _deliveries(db, endpoint_id) == [("DELIVERED", 3, None)]


def test_the_backoff_starts_within_seconds_doubles_and_is_capped() -> None:
    start = dispatch.FIRST_RETRY
    waits = []
    for attempts in (1, 2, 3, 12, 40):
        moment = dispatch.next_attempt(attempts, _EPOCH)
        waits.append((moment - _EPOCH).total_seconds())

    assert 0.8 * start.total_seconds() <= waits[0] <= 1.2 * start.total_seconds()
    assert 1.6 * waits[0] / 1.2 <= waits[1] <= 2.4 * waits[0] / 0.8
    assert waits[2] > waits[1] * 0.8 * 2 / 1.2 * 0.9
    assert waits[3] <= dispatch.LONGEST_WAIT.total_seconds() * 1.2
    assert waits[4] <= dispatch.LONGEST_WAIT.total_seconds() * 1.2


async def test_three_days_of_failures_fail_the_delivery_and_disable_the_endpoint(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, _ = await endpoint(shop, receiver.url("down"), ["points.earned"])
    receiver.answers["down"] = [500] * 1000
    await earn(shop, await _member(shop), 10, f"k-{secrets.token_hex(3)}")
    clock = Clock()
    worker = deliverer(db, clock)

    try:
        for _ in range(60):  # retries over three simulated days
            await worker.drain()
            clock.advance(hours=3)
    finally:
        await worker.close()

    status, reason = await _endpoint_status(shop, endpoint_id)
    [(delivery_status, attempts, error)] = await _deliveries(db, endpoint_id)
    assert delivery_status == "FAILED"
    assert error == "HTTP 500"
    assert 5 < attempts < 40
    assert status == "DISABLED"
    assert reason is not None
    assert "3 days" in reason


async def test_a_410_disables_the_endpoint_at_once_and_re_enabling_sends_what_waited(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, _ = await endpoint(shop, receiver.url("gone"), ["points.earned"])
    receiver.answers["gone"] = [410]
    ref = await _member(shop)
    await earn(shop, ref, 10, f"k-{secrets.token_hex(3)}")
    await deliver_all(db)
    await earn(shop, ref, 20, f"k-{secrets.token_hex(3)}")
    await deliver_all(db)  # disabled: nothing sent
    disabled = await _endpoint_status(shop, endpoint_id)

    enabled = await shop.gql(
        "mutation($id: ID!) { updateWebhookEndpoint(input: {endpointId: $id, enabled: true})"
        " { endpoint { status } userErrors { code } } }",
        id=endpoint_id,
    )
    await deliver_all(db)

    assert disabled == ("DISABLED", "the receiver answered 410 Gone")
    assert enabled["data"]["updateWebhookEndpoint"]["endpoint"]["status"] == "ENABLED"
    assert [r.json["data"]["points"] for r in receiver.at("gone")] == ["10", "20"]


async def test_a_hanging_receiver_holds_up_no_other_partners_deliveries(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    slow = await hook_partner(db, hooks_api)
    fast = await hook_partner(db, hooks_api)
    await endpoint(slow, receiver.url("hangs"), ["points.earned"])
    await endpoint(fast, receiver.url("answers"), ["points.earned"])
    receiver.answers["hangs"] = ["hang"] * 20
    slow_refs = [await _member(slow) for _ in range(8)]
    for ref in slow_refs:
        await earn(slow, ref, 1, f"k-{secrets.token_hex(3)}")
    fast_ref = await _member(fast)
    await earn(fast, fast_ref, 5, f"k-{secrets.token_hex(3)}")
    worker = deliverer(db, max_in_flight=4, per_endpoint=2, timeout=3.0)

    started = time.monotonic()
    try:
        while not receiver.at("answers") and time.monotonic() - started < 10:
            await worker.round()
            await asyncio.sleep(0.05)
        waited = time.monotonic() - started
    finally:
        await worker.close()

    # The slow partner has 8 deliveries hanging for 3 s each; the fast partner's arrives
    # at once: the slow one may hold at most per_endpoint of the 4 slots.
    assert [r.json["data"]["points"] for r in receiver.at("answers")] == ["5"]
    assert waited < 2.0


async def test_one_members_events_arrive_in_order_even_when_the_first_is_retried(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    await endpoint(shop, receiver.url("ordered"), ["points.earned"])
    receiver.answers["ordered"] = [500]
    ref = await _member(shop)
    for points in (1, 2, 3):
        await earn(shop, ref, points, f"k-{secrets.token_hex(3)}")
    clock = Clock()
    worker = deliverer(db, clock)

    try:
        await worker.drain()  # the first fails; the others must wait for it
        waiting = [r.json["data"]["points"] for r in receiver.at("ordered")]
        clock.advance(seconds=10)
        await worker.drain()
    finally:
        await worker.close()

    assert waiting == ["1"]
    assert [r.json["data"]["points"] for r in receiver.at("ordered")] == ["1", "1", "2", "3"]


async def test_two_workers_never_send_one_event_twice(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    await endpoint(shop, receiver.url("once"), ["points.earned"])
    refs = [await _member(shop) for _ in range(30)]
    for ref in refs:
        await earn(shop, ref, 1, f"k-{secrets.token_hex(3)}")
    first, second = deliverer(db), deliverer(db)

    try:
        await asyncio.gather(first.drain(), second.drain())
    finally:
        await asyncio.gather(first.close(), second.close())

    ids = [r.headers["webhook-id"] for r in receiver.at("once")]
    assert len(ids) == 30
    assert len(set(ids)) == 30


_EPOCH = Clock().now - timedelta(days=1)


async def test_an_endpoint_whose_secret_cannot_be_read_fails_alone(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    broken = await hook_partner(db, hooks_api)
    fine = await hook_partner(db, hooks_api)
    broken_id, _ = await endpoint(broken, receiver.url("broken"), ["points.earned"])
    await endpoint(fine, receiver.url("fine"), ["points.earned"])
    async with db.transaction(SYSTEM) as conn:  # as if sealed under another secret key
        await conn.execute(
            sql("UPDATE webhook_endpoint SET secret = :junk WHERE id = :id"),
            {"junk": b"not a sealed secret", "id": ids.decode_as(broken_id, "WebhookEndpoint")},
        )
    await earn(broken, await _member(broken), 3, f"k-{secrets.token_hex(3)}")
    await earn(fine, await _member(fine), 4, f"k-{secrets.token_hex(3)}")

    await deliver_all(db)

    assert [r.json["data"]["points"] for r in receiver.at("fine")] == ["4"]
    assert receiver.at("broken") == []
    async with db.transaction(SYSTEM) as conn:
        row = (
            await conn.execute(
                sql("SELECT status, last_error FROM webhook_delivery WHERE endpoint_id = :id"),
                {"id": ids.decode_as(broken_id, "WebhookEndpoint")},
            )
        ).one()
    assert (row.status, row.last_error) == ("PENDING", dispatch.CANNOT_SIGN)


async def test_a_worker_signs_with_the_secrets_in_force_at_each_round_not_earlier_ones(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    # Secrets are unsealed once per round and endpoint; a worker that delivered before
    # two rotations must sign what follows with the newest secret (and the one before
    # it, for its day), never with the one it used first.
    shop = await hook_partner(db, hooks_api)
    endpoint_id, first = await endpoint(shop, receiver.url("rotated"), ["points.earned"])
    ref = await _member(shop)
    worker = deliverer(db)
    try:
        await earn(shop, ref, 1, f"k-{secrets.token_hex(3)}")
        await worker.drain()
        second, third = [await _rotate(shop, endpoint_id) for _ in range(2)]
        await earn(shop, ref, 2, f"k-{secrets.token_hex(3)}")
        await worker.drain()
    finally:
        await worker.close()

    before, after = receiver.at("rotated")
    assert Webhook(first).verify(before.body, before.headers)["data"]["points"] == "1"
    assert Webhook(third).verify(after.body, after.headers)["data"]["points"] == "2"
    assert Webhook(second).verify(after.body, after.headers)["data"]["points"] == "2"
    assert len(after.headers["webhook-signature"].split(" ")) == 2
    with pytest.raises(WebhookVerificationError):
        Webhook(first).verify(after.body, after.headers)


async def _rotate(partner: Caller, endpoint_id: str) -> str:
    rotated = await partner.gql(
        "mutation($id: ID!) { rotateWebhookSecret(input: {endpointId: $id}) { secret"
        " userErrors { code } } }",
        id=endpoint_id,
    )
    secret: str = rotated["data"]["rotateWebhookSecret"]["secret"]
    return secret


async def test_a_worker_leases_at_most_its_share_of_one_endpoint_and_never_sends_on_a_lapsing_lease(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, _ = await endpoint(shop, receiver.url("slow"), ["points.earned"])
    receiver.answers["slow"] = ["hang"]
    for _ in range(6):
        await earn(shop, await _member(shop), 1, f"k-{secrets.token_hex(3)}")
    clock = Clock()
    worker = deliverer(db, clock, per_endpoint=1, timeout=1.0)
    cap = LEASES_PER_SLOT  # per_endpoint x LEASES_PER_SLOT leases of one endpoint

    try:
        leased = await worker.round()
        again = await worker.round()  # the worker still holds its share: nothing more
        await asyncio.sleep(0.3)  # the first send is under way (and hangs)
        # Now the other leases would run out before a send could end: none may start,
        # or another worker could lease and send the same event at the same time.
        clock.advance(seconds=LEASE.total_seconds() - 0.5)
        await worker.settle()
        sent_meanwhile = len(receiver.at("slow"))
        clock.advance(seconds=1)  # the leases have lapsed: the deliveries are due again
        await worker.drain()
    finally:
        await worker.close()

    assert (leased, again) == (cap, 0)
    assert sent_meanwhile == 1
    # Each sent once: the one that hung is to be tried again (not due yet), the five
    # whose leases lapsed unsent were leased again and delivered.
    assert sorted(await _deliveries(db, endpoint_id), key=str) == [
        ("DELIVERED", 1, None)] * 5 + [("PENDING", 1, "no answer within 1 s")]  # fmt: skip
    assert len(receiver.at("slow")) == 6


async def test_a_round_fans_out_a_bounded_part_of_a_backlog_and_the_rest_follows_at_once(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """One round's transaction fans out at most ``fan_out_per_round`` events (before, a
    round fanned out the whole backlog in one transaction, minutes to hours at 10 million
    events, leasing nothing until it ended); the rounds after it go on without an idle pause
    until every event is delivered."""
    shop = await hook_partner(db, hooks_api)
    await endpoint(shop, receiver.url("backlog"), ["points.earned"])
    ref = await _member(shop)
    for points in (10, 11, 12):
        await earn(shop, ref, points, f"k-{secrets.token_hex(3)}")
    clock = Clock()
    worker = deliverer(db, clock, fan_out_batch=1, fan_out_per_round=1)

    try:
        await worker.round()
        async with db.transaction(SYSTEM) as conn:
            in_the_round = (
                await conn.execute(
                    sql("SELECT count(*) FROM event_outbox WHERE fanned_out_at = :at"),
                    {"at": clock.now},
                )
            ).scalar_one()
        left_over = worker.backlog
        worker.fan_out_per_round = FAN_OUT_PER_ROUND  # other tests' events wait too
        await worker.drain()
    finally:
        await worker.close()

    assert (in_the_round, left_over) == (1, True)
    assert sorted(r.json["data"]["points"] for r in receiver.at("backlog")) == ["10", "11", "12"]
    assert worker.backlog is False
