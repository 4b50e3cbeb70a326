"""Strawberry at /graphql: every operation needs a verified bearer token (401 with a
``WWW-Authenticate: Bearer`` challenge otherwise); a browser GET without a query gets
GraphiQL."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from exchange import oauth_routes
from exchange.kit.clock import utc_now
from graphql_schema.context import Context
from graphql_schema.schema import schema
from partners.identity import IdentityKeys
from partners.principal import Principal

PRINCIPAL_KEY = "exchange.principal"


class _Strawberry(GraphQL[Context, None]):
    async def get_context(self, request: Any, response: Any) -> Context:
        principal: Principal = request.scope[PRINCIPAL_KEY]
        app_state = request.app.state
        return Context(
            database=app_state.database,
            principal=principal,
            identity_keys=app_state.identity_keys,
            clock=utc_now,
            request_id=request.scope.get("exchange.request_id", ""),
        )


class GraphQLEndpoint:
    def __init__(self) -> None:
        self.strawberry = _Strawberry(schema, graphql_ide="graphiql", allow_queries_via_get=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        wants_ide = (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )
        if scope["type"] == "http" and not wants_ide:
            principal = await oauth_routes.authenticate(request)
            if not isinstance(principal, Principal):
                await principal(scope, receive, send)
                return
            scope[PRINCIPAL_KEY] = principal
        scope["exchange.request_id"] = uuid.uuid4().hex
        await self.strawberry(scope, receive, send)


def identity_keys(secret: bytes) -> IdentityKeys:
    return IdentityKeys.from_secret(secret)
