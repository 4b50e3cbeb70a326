"""Managing webhook endpoints over GraphQL: the secret shown once, rotation with a day of
overlap, pings, the delivery log and redelivery, deletion, who may see what, and the
addresses webhooks may never reach (SSRF), refused when the endpoint is made and again
when a delivery would go out."""

from __future__ import annotations

import secrets

import httpx
from standardwebhooks import Webhook

from exchange.kit.db import Database
from exchange.kit.settings import Tunables
from tests.events.conftest import (
    CREATE,
    Receiver,
    deliver_all,
    earn,
    endpoint,
    hook_operator,
    hook_partner,
    link,
)
from tests.graphql.conftest import email

DELIVERIES = """query($id: ID!, $status: WebhookDeliveryStatus) { node(id: $id) {
  ... on WebhookEndpoint { deliveries(first: 10, status: $status) { edges { node {
    id eventId eventType status attempts lastStatusCode lastError deliveredAt } } } } } }"""


async def test_a_new_endpoint_shows_its_secret_once_and_lists_without_it(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, secret = await endpoint(shop, receiver.url("a"), ["points.earned", "hold.expired"])

    listed = await shop.gql("{ webhookEndpoints(first: 5) { edges { node { id url eventTypes"
                            " status } } } }")  # fmt: skip

    assert secret.startswith("whsec_")
    assert len(secret) > 30
    assert listed["data"]["webhookEndpoints"]["edges"] == [
        {"node": {"id": endpoint_id, "url": receiver.url("a"),
                  "eventTypes": ["hold.expired", "points.earned"], "status": "ENABLED"}}
    ]  # fmt: skip
    assert secret not in str(listed)


async def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, old = await endpoint(shop, receiver.url("rotating"))
    rotated = await shop.gql(
        "mutation($id: ID!) { rotateWebhookSecret(input: {endpointId: $id}) { secret"
        " userErrors { code } } }",
        id=endpoint_id,
    )
    new = rotated["data"]["rotateWebhookSecret"]["secret"]

    pinged = await shop.gql(
        "mutation($id: ID!) { pingWebhookEndpoint(input: {endpointId: $id})"
        " { endpoint { id } userErrors { code } } }",
        id=endpoint_id,
    )
    await deliver_all(db)

    [got] = receiver.at("rotating")
    assert new.startswith("whsec_")
    assert new != old
    assert pinged["data"]["pingWebhookEndpoint"]["userErrors"] == []
    assert got.json["type"] == "webhook.ping"
    assert got.json["data"] == {"endpointId": endpoint_id}
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(got.body, got.headers) == got.json
    assert Webhook(old).verify(got.body, got.headers) == got.json


async def test_the_delivery_log_shows_attempts_and_a_redelivery_keeps_the_webhook_id(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, _ = await endpoint(shop, receiver.url("log"), ["points.earned"])
    ref = f"m-{secrets.token_hex(3)}"
    await link(shop, ref, email())
    await earn(shop, ref, 10, f"k-{secrets.token_hex(3)}")
    await deliver_all(db)

    log = await shop.gql(DELIVERIES, id=endpoint_id, status="DELIVERED")
    [edge] = log["data"]["node"]["deliveries"]["edges"]
    again = await shop.gql(
        "mutation($id: ID!) { redeliverWebhook(input: {deliveryId: $id})"
        " { delivery { status } userErrors { code } } }",
        id=edge["node"]["id"],
    )
    await deliver_all(db)

    assert edge["node"]["eventType"] == "points.earned"
    assert (edge["node"]["attempts"], edge["node"]["lastStatusCode"]) == (1, 200)
    assert again["data"]["redeliverWebhook"]["delivery"]["status"] == "PENDING"
    first, second = receiver.at("log")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == edge["node"]["eventId"]


async def test_a_deleted_endpoint_gets_nothing_more(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)
    endpoint_id, _ = await endpoint(shop, receiver.url("deleted"))
    deleted = await shop.gql(
        "mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id})"
        " { endpoint { status } userErrors { code } } }",
        id=endpoint_id,
    )
    ref = f"m-{secrets.token_hex(3)}"
    await link(shop, ref, email())
    await earn(shop, ref, 10, f"k-{secrets.token_hex(3)}")
    await deliver_all(db)
    listed = await shop.gql("{ webhookEndpoints(first: 5) { edges { node { id } } } }")

    assert deleted["data"]["deleteWebhookEndpoint"]["endpoint"]["status"] == "DISABLED"
    assert receiver.at("deleted") == []
    assert listed["data"]["webhookEndpoints"]["edges"] == []


async def test_another_partner_sees_nothing_and_a_client_without_the_scope_is_refused(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    owner = await hook_partner(db, hooks_api)
    other = await hook_partner(db, hooks_api)
    unscoped = await hook_partner(db, hooks_api, scopes="points:earn members:link")
    endpoint_id, _ = await endpoint(owner, receiver.url("mine"))

    seen = await other.gql("query($id: ID!) { node(id: $id) { id } }", id=endpoint_id)
    pinged = await other.gql(
        "mutation($id: ID!) { pingWebhookEndpoint(input: {endpointId: $id})"
        " { userErrors { code } } }",
        id=endpoint_id,
    )
    refused = await unscoped.gql(CREATE, url=receiver.url("x"), types=["*"])

    assert seen["data"]["node"] is None
    assert [e["code"] for e in pinged["data"]["pingWebhookEndpoint"]["userErrors"]] == ["NOT_FOUND"]
    assert [e["code"] for e in refused["data"]["createWebhookEndpoint"]["userErrors"]] == [
        "FORBIDDEN"
    ]


async def test_event_types_are_checked(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    shop = await hook_partner(db, hooks_api)

    unknown = await shop.gql(CREATE, url=receiver.url("t"), types=["points.stolen"])
    empty = await shop.gql(CREATE, url=receiver.url("t"), types=[])

    for answer in (unknown, empty):
        errors = answer["data"]["createWebhookEndpoint"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [
            ("INVALID_INPUT", ["input", "eventTypes"])
        ]


async def test_an_operators_endpoint_hears_every_partner_and_names_members_by_global_id(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    operator = await hook_operator(db, hooks_api)
    await endpoint(operator, receiver.url("operator"), ["points.earned"])
    shop = await hook_partner(db, hooks_api)
    ref = f"m-{secrets.token_hex(3)}"
    await link(shop, ref, email())
    await earn(shop, ref, 7, f"k-{secrets.token_hex(3)}")

    await deliver_all(db)

    mine = [r for r in receiver.at("operator") if r.json["data"]["points"] == "7"]
    assert len(mine) >= 1
    assert "memberRef" not in mine[-1].json["data"]
    assert mine[-1].json["data"]["memberId"]


async def test_addresses_webhooks_may_not_reach_are_refused_when_made(
    db: Database, api: httpx.AsyncClient
) -> None:
    shop = await hook_partner(db, api)  # the ordinary app: private addresses not allowed
    refused = [
        "http://93.184.216.34/hook",  # not https
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://user:pass@93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
        "https:///nohost",
    ]
    for url in refused:
        answer = await shop.gql(CREATE, url=url, types=["*"])
        errors = answer["data"]["createWebhookEndpoint"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [("INVALID_INPUT", ["input", "url"])], (
            url
        )

    allowed = await shop.gql(CREATE, url="https://93.184.216.34/hook", types=["*"])
    assert allowed["data"]["createWebhookEndpoint"]["userErrors"] == []


async def test_a_delivery_to_an_address_that_is_not_allowed_is_refused_when_it_would_go_out(
    db: Database, hooks_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    # Made while private addresses were allowed (as DNS rebinding would make it look):
    # the deliverer checks the resolved address again and sends nothing.
    shop = await hook_partner(db, hooks_api)
    endpoint_id, _ = await endpoint(shop, receiver.url("inside"), ["points.earned"])
    ref = f"m-{secrets.token_hex(3)}"
    await link(shop, ref, email())
    await earn(shop, ref, 10, f"k-{secrets.token_hex(3)}")

    await deliver_all(db, tunables=Tunables(webhook_allow_private=False))

    log = await shop.gql(DELIVERIES, id=endpoint_id, status=None)
    [edge] = log["data"]["node"]["deliveries"]["edges"]
    assert receiver.at("inside") == []
    assert edge["node"]["status"] == "PENDING"
    assert edge["node"]["lastError"].startswith("refused")
