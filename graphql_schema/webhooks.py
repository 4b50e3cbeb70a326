"""Webhooks in the API: a partner's (or the operators') endpoints, their signing secret
(shown once), their deliveries, pings and redeliveries. Scope webhooks:write."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from exchange.events.models import Delivery as DeliveryModel
from exchange.events.models import DeliveryStatus, EndpointStatus, NewSecret
from exchange.events.models import Endpoint as EndpointModel
from exchange.kit.errors import NotFound
from exchange.usecases import webhooks as cases
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.cost import list_size
from graphql_schema.enums import describe_enum
from graphql_schema.errors import ask, mutate
from graphql_schema.types import (
    AfterArgument,
    FirstArgument,
    InputArgument,
    Node,
    PageInfo,
    UserError,
)

describe_enum(
    EndpointStatus,
    name="WebhookEndpointStatus",
    description="Whether events go to an endpoint.",
    values={
        EndpointStatus.ENABLED: "Events are sent.",
        EndpointStatus.DISABLED: "Nothing is sent: by its owner, or after 3 days of failures or"
        " a 410 Gone (updateWebhookEndpoint with enabled: true re-enables it and sends what"
        " waited).",
    },
)
describe_enum(
    DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="Where one event's delivery to one endpoint stands.",
    values={
        DeliveryStatus.PENDING: "Not delivered yet: retried with backoff.",
        DeliveryStatus.DELIVERED: "A 2xx came back.",
        DeliveryStatus.FAILED: "Given up after 3 days or a 410 Gone (redeliverWebhook sends it"
        " again).",
    },
)


def _id(global_id: str, type_name: str, field: str) -> int:
    key = ids.decode_as(global_id, type_name)
    if key is None:
        raise NotFound(f"no {type_name} has that id", field=[field])
    return key


@strawberry.type(description="One event on its way to one endpoint.")
class WebhookDelivery(Node):
    event_id: str = strawberry.field(
        description="The event's id: the webhook-id header, the same on every attempt."
    )
    event_type: str = strawberry.field(description="The event's type, e.g. points.earned.")
    status: DeliveryStatus = strawberry.field(description="Where the delivery stands.")
    attempts: int = strawberry.field(description="Requests made so far.")
    last_status_code: int | None = strawberry.field(
        description="The HTTP status of the last attempt (null: no answer)."
    )
    last_error: str | None = strawberry.field(description="Why the last attempt failed.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When it is tried next (PENDING only)."
    )
    delivered_at: datetime | None = strawberry.field(description="When a 2xx came back.")

    @classmethod
    def of(cls, delivery: DeliveryModel) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(ids.encode("WebhookDelivery", delivery.id)),
            event_id=f"evt_{delivery.event_id}",
            event_type=delivery.event_type,
            status=delivery.status,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
        )


@strawberry.type(description="A page of deliveries.")
class WebhookDeliveryEdge:
    cursor: str = strawberry.field(description="Pass as after: for the next page.")
    node: WebhookDelivery = strawberry.field(description="The delivery.")


@strawberry.type(description="Deliveries, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge] = strawberry.field(description="This page's deliveries.")
    page_info: PageInfo = strawberry.field(description="Whether there is more.")


@strawberry.type(description="Where a partner's app hears about events (Standard Webhooks).")
class WebhookEndpoint(Node):
    url: str = strawberry.field(description="The https URL events are POSTed to.")
    event_types: list[str] = strawberry.field(
        description='The event types it receives ("*": every type).', metadata=list_size(1)
    )
    status: EndpointStatus = strawberry.field(description="ENABLED or DISABLED.")
    disabled_reason: str | None = strawberry.field(
        description="Why it is disabled (its owner, 3 days of failures, a 410 Gone)."
    )
    endpoint_id: strawberry.Private[int]

    @classmethod
    def of(cls, endpoint: EndpointModel) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(ids.encode("WebhookEndpoint", endpoint.id)),
            url=endpoint.url,
            event_types=endpoint.event_types,
            status=endpoint.status,
            disabled_reason=endpoint.disabled_reason,
            endpoint_id=endpoint.id,
        )

    @strawberry.field(description="Its deliveries, newest first.")
    async def deliveries(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
        status: Annotated[
            DeliveryStatus | None,
            strawberry.argument(description="Only deliveries in this state."),
        ] = None,
    ) -> WebhookDeliveryConnection:
        endpoint_id = self.endpoint_id

        def request() -> cases.DeliveryPage:
            size, after_id = ids.page(first, after, "WebhookDelivery")
            return cases.DeliveryPage(endpoint_id, size + 1, after_id, status)

        found = await ask(info, cases.deliveries_page, request)
        size = request().first - 1  # the arguments were checked by then
        edges = [
            WebhookDeliveryEdge(cursor=d.id, node=d) for d in map(WebhookDelivery.of, found[:size])
        ]
        return WebhookDeliveryConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(found) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )


@strawberry.type(description="Endpoints, oldest first.")
class WebhookEndpointEdge:
    cursor: str = strawberry.field(description="Pass as after: for the next page.")
    node: WebhookEndpoint = strawberry.field(description="The endpoint.")


@strawberry.type(description="A page of webhook endpoints.")
class WebhookEndpointConnection:
    edges: list[WebhookEndpointEdge] = strawberry.field(description="This page's endpoints.")
    page_info: PageInfo = strawberry.field(description="Whether there is more.")


@strawberry.input(description="A new endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="An https URL (no private or loopback address).")
    event_types: list[str] = strawberry.field(
        description='Event types to receive, e.g. ["points.earned"]; ["*"]: every type.'
    )

    def request(self) -> cases.NewEndpoint:
        return cases.NewEndpoint(url=self.url, event_types=tuple(self.event_types))


@strawberry.input(description="Names an endpoint.")
class WebhookEndpointIdInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint's id.")

    def key(self) -> int:
        return _id(self.endpoint_id, "WebhookEndpoint", "endpointId")


@strawberry.input(description="What to change; what is left out stays.")
class UpdateWebhookEndpointInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    url: str | None = strawberry.field(default=None, description="A new https URL.")
    event_types: list[str] | None = strawberry.field(
        default=None, description="The event types it receives from now on."
    )
    enabled: bool | None = strawberry.field(
        default=None, description="false disables it; true re-enables it (what waited is sent)."
    )

    def request(self) -> cases.EndpointChange:
        return cases.EndpointChange(
            endpoint_id=_id(self.endpoint_id, "WebhookEndpoint", "endpointId"),
            url=self.url,
            event_types=tuple(self.event_types) if self.event_types is not None else None,
            enabled=self.enabled,
        )


@strawberry.input(description="Names a delivery to send again.")
class RedeliverWebhookInput:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery's id.")

    def key(self) -> int:
        return _id(self.delivery_id, "WebhookDelivery", "deliveryId")


@strawberry.type(description="An endpoint and, once, its secret.")
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(default=None, description="The endpoint.")
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret (whsec_...), shown only now: keep it to verify"
        " webhook-signature.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing changed."
    )

    @classmethod
    def of(cls, made: NewSecret) -> CreateWebhookEndpointPayload:
        return cls(endpoint=WebhookEndpoint.of(made.endpoint), secret=made.secret)


@strawberry.type(description="An endpoint after the change.")
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(default=None, description="The endpoint.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing changed."
    )


@strawberry.type(description="The delivery queued again.")
class RedeliverWebhookPayload:
    delivery: WebhookDelivery | None = strawberry.field(default=None, description="The delivery.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing changed."
    )


def _endpoint(endpoint: EndpointModel) -> WebhookEndpointPayload:
    return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(endpoint))


def _endpoint_failed(errors: list[UserError]) -> WebhookEndpointPayload:
    return WebhookEndpointPayload(user_errors=errors)


def _secret_failed(errors: list[UserError]) -> CreateWebhookEndpointPayload:
    return CreateWebhookEndpointPayload(user_errors=errors)


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Your webhook endpoints, oldest first (webhooks:write).")
    async def webhook_endpoints(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
    ) -> WebhookEndpointConnection:
        def request() -> cases.EndpointPage:
            size, after_id = ids.page(first, after, "WebhookEndpoint")
            return cases.EndpointPage(size + 1, after_id or 0)

        found = await ask(info, cases.endpoints_page, request)
        size = request().first - 1  # the arguments were checked by then
        edges = [
            WebhookEndpointEdge(cursor=e.id, node=e) for e in map(WebhookEndpoint.of, found[:size])
        ]
        return WebhookEndpointConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(found) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="A new webhook endpoint; its signing secret is in the payload, once."
    )
    async def create_webhook_endpoint(
        self, info: Info[Context, None], input: InputArgument[CreateWebhookEndpointInput]
    ) -> CreateWebhookEndpointPayload:
        return await mutate(
            info,
            cases.create_endpoint,
            input.request,
            CreateWebhookEndpointPayload.of,
            _secret_failed,
        )

    @strawberry.mutation(description="Change an endpoint's URL, event types or status.")
    async def update_webhook_endpoint(
        self, info: Info[Context, None], input: InputArgument[UpdateWebhookEndpointInput]
    ) -> WebhookEndpointPayload:
        return await mutate(info, cases.update_endpoint, input.request, _endpoint, _endpoint_failed)

    @strawberry.mutation(
        description="A new signing secret (in the payload, once); the old one signs too for"
        " 24 hours."
    )
    async def rotate_webhook_secret(
        self, info: Info[Context, None], input: InputArgument[WebhookEndpointIdInput]
    ) -> CreateWebhookEndpointPayload:
        return await mutate(
            info, cases.rotate_secret, input.key, CreateWebhookEndpointPayload.of, _secret_failed
        )

    @strawberry.mutation(description="Delete an endpoint: nothing more is sent to it.")
    async def delete_webhook_endpoint(
        self, info: Info[Context, None], input: InputArgument[WebhookEndpointIdInput]
    ) -> WebhookEndpointPayload:
        return await mutate(info, cases.delete_endpoint, input.key, _endpoint, _endpoint_failed)

    @strawberry.mutation(description="Send the endpoint a webhook.ping event.")
    async def ping_webhook_endpoint(
        self, info: Info[Context, None], input: InputArgument[WebhookEndpointIdInput]
    ) -> WebhookEndpointPayload:
        return await mutate(info, cases.ping_endpoint, input.key, _endpoint, _endpoint_failed)

    @strawberry.mutation(description="Send a delivered or failed delivery again (same webhook-id).")
    async def redeliver_webhook(
        self, info: Info[Context, None], input: InputArgument[RedeliverWebhookInput]
    ) -> RedeliverWebhookPayload:
        return await mutate(
            info,
            cases.redeliver,
            input.key,
            lambda delivery: RedeliverWebhookPayload(delivery=WebhookDelivery.of(delivery)),
            lambda errors: RedeliverWebhookPayload(user_errors=errors),
        )
