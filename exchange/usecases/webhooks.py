"""Webhook endpoints as the API offers them (scope webhooks:write, partner and operator
clients): create, change, rotate the secret, delete, ping; their deliveries, and
redelivery. A partner's endpoints are its own; an operator's are the operators'."""

from __future__ import annotations

from dataclasses import dataclass

from exchange.events import endpoints, repository
from exchange.events.models import Delivery, DeliveryStatus, Endpoint, NewSecret
from exchange.kit.errors import InvalidInput, NotFound
from exchange.usecases.core import Call, use_case
from partners.principal import PrincipalKind

SCOPE = "webhooks:write"


def _owner(call: Call) -> int | None:
    return call.partner_id if call.principal.kind == PrincipalKind.PARTNER else None


@dataclass(frozen=True)
class NewEndpoint:
    url: str
    event_types: tuple[str, ...]


@use_case(partner=SCOPE, operator=SCOPE)
async def create_endpoint(call: Call, request: NewEndpoint) -> NewSecret:
    """A new endpoint with its signing secret (shown once)."""
    return await endpoints.create(
        call.conn,
        owner=_owner(call),
        url=request.url,
        types=request.event_types,
        keys=call.keys,
        allow_private=call.tunables.webhook_allow_private,
        created_by=call.principal.client_id,
        now=call.now,
    )


@dataclass(frozen=True)
class EndpointChange:
    endpoint_id: int
    url: str | None = None
    event_types: tuple[str, ...] | None = None
    enabled: bool | None = None


@use_case(partner=SCOPE, operator=SCOPE)
async def update_endpoint(call: Call, change: EndpointChange) -> Endpoint:
    """Change an endpoint's URL, event types or status (enabled: true re-enables it)."""
    if change.url is None and change.event_types is None and change.enabled is None:
        raise InvalidInput("give url, eventTypes or enabled", field=["endpointId"])
    return await endpoints.update(
        call.conn,
        endpoint_id=change.endpoint_id,
        url=change.url,
        types=change.event_types,
        enabled=change.enabled,
        allow_private=call.tunables.webhook_allow_private,
        now=call.now,
    )


@use_case(partner=SCOPE, operator=SCOPE)
async def rotate_secret(call: Call, endpoint_id: int) -> NewSecret:
    """A new signing secret (shown once); the old one signs too for a day."""
    return await endpoints.rotate(call.conn, endpoint_id=endpoint_id, keys=call.keys, now=call.now)


@use_case(partner=SCOPE, operator=SCOPE)
async def delete_endpoint(call: Call, endpoint_id: int) -> Endpoint:
    """Delete an endpoint: nothing more is sent to it."""
    return await endpoints.delete(call.conn, endpoint_id=endpoint_id, now=call.now)


@use_case(partner=SCOPE, operator=SCOPE)
async def ping_endpoint(call: Call, endpoint_id: int) -> Endpoint:
    """Queue a webhook.ping for the endpoint."""
    endpoint = await endpoints.get(call.conn, endpoint_id=endpoint_id)
    await repository.ping(call.conn, endpoint_id=endpoint.id, at=call.now)
    return endpoint


@dataclass(frozen=True)
class EndpointPage:
    first: int
    after_id: int = 0


@use_case(partner=SCOPE, operator=SCOPE)
async def endpoints_page(call: Call, page: EndpointPage) -> list[Endpoint]:
    """The caller's endpoints, oldest first."""
    rows = await repository.endpoints(call.conn, after_id=page.after_id, limit=page.first)
    return [endpoints.endpoint_of(row) for row in rows]


@use_case(partner=SCOPE, operator=SCOPE)
async def endpoint_by_id(call: Call, endpoint_id: int) -> Endpoint | None:
    rows = await repository.endpoints(call.conn, endpoint_ids=[endpoint_id])
    return endpoints.endpoint_of(rows[0]) if rows else None


@dataclass(frozen=True)
class DeliveryPage:
    endpoint_id: int
    first: int
    before_id: int | None = None
    status: DeliveryStatus | None = None


@use_case(partner=SCOPE, operator=SCOPE)
async def deliveries_page(call: Call, page: DeliveryPage) -> list[Delivery]:
    """An endpoint's deliveries, newest first."""
    rows = await repository.deliveries(
        call.conn,
        endpoint_id=page.endpoint_id,
        status=str(page.status) if page.status else None,
        before_id=page.before_id,
        limit=page.first,
    )
    return [endpoints.delivery_of(row) for row in rows]


@use_case(partner=SCOPE, operator=SCOPE)
async def delivery_by_id(call: Call, delivery_id: int) -> Delivery | None:
    rows = await repository.deliveries(call.conn, delivery_ids=[delivery_id], limit=1)
    return endpoints.delivery_of(rows[0]) if rows else None


@use_case(partner=SCOPE, operator=SCOPE)
async def redeliver(call: Call, delivery_id: int) -> Delivery:
    """Send a delivered or failed delivery again (same webhook-id)."""
    if not await repository.redeliver(call.conn, delivery_id=delivery_id, now=call.now):
        found = await repository.deliveries(call.conn, delivery_ids=[delivery_id], limit=1)
        if not found:
            raise NotFound("no webhook delivery has that id", field=["deliveryId"])
        raise InvalidInput("that delivery is still pending", field=["deliveryId"])
    rows = await repository.deliveries(call.conn, delivery_ids=[delivery_id], limit=1)
    return endpoints.delivery_of(rows[0])
