"""Strawberry at /graphql: every operation needs a verified bearer token (401 with a
``WWW-Authenticate: Bearer`` challenge otherwise); a browser GET without a query gets
GraphiQL. The body was read within its limits before this runs (``exchange.http.body``);
every error refused at the HTTP level is JSON in the GraphQL error shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.responses import Response as StarletteResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.types import ExecutionResult

from exchange.http import graphiql, oauth, unavailable
from exchange.http.errors import graphql_error
from exchange.http.persisted import PersistedQueries, PersistedQueryError
from exchange.http.request_ids import SCOPE_KEY as REQUEST_ID_KEY
from exchange.kit import limits
from graphql_schema import direct
from graphql_schema.context import Context
from graphql_schema.schema import schema
from partners.principal import Principal, PrincipalKind
from partners.tokens import InvalidToken

#: The caller of a websocket before connection_init: it may do nothing.
ANONYMOUS = Principal(
    kind=PrincipalKind.MEMBER,
    client_id="",
    scopes=frozenset(),
    token_id="",
    expires_at=datetime.fromtimestamp(0, UTC),
)

PRINCIPAL_KEY = "exchange.principal"


GRAPHQL_RESPONSE = "application/graphql-response+json"
_STATUS = "__status"
_MEDIA = "__media_type"


def _accepts_graphql_response(request: Any) -> bool:
    return GRAPHQL_RESPONSE in request.headers.get("accept", "")


class _TextFrames(ASGIWebSocketAdapter):
    """Every subscription message as a text frame. Strawberry sends the bytes of
    ``encode_json`` (orjson's) as binary frames, which the graphql-transport-ws protocol
    does not allow and the standard client (``graphql-ws``) refuses."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(self.view.encode_json_string(message))
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error


class _Strawberry(GraphQL[Context, None]):
    """GraphQL over HTTP: ``application/graphql-response+json`` when the client accepts
    it, with 4xx for a request that could not be executed at all (parse, validation or
    variable errors, no ``data``); legacy ``application/json`` (always 200) otherwise.
    Bodies are encoded with orjson; websocket messages go as text frames. A browser gets
    our GraphiQL page (:mod:`exchange.http.graphiql`). Automatic persisted queries
    (Apollo's protocol) by ``exchange.http.persisted``."""

    websocket_adapter_class = _TextFrames
    ide_page = ""
    #: Set per endpoint (GraphQLEndpoint): each app keeps its own.
    persisted: PersistedQueries

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.ide_page)

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        """The request, its query taken from the persisted queries when it sends a hash."""
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):
            data.query = self.persisted.resolve(data.query, data.extensions)
        return data

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a GET that names a persisted query by its hash."""
        named = "extensions" in request.query_params
        return not named and super().should_render_graphql_ide(request)

    def encode_json(self, data: object) -> bytes:
        try:
            return orjson.dumps(data)
        except orjson.JSONEncodeError:  # a lone surrogate a client sent, echoed in an error
            return json.dumps(data, ensure_ascii=True).encode()

    def decode_json(self, data: str | bytes) -> object:
        """JSON from the body, the query string (GET ``variables``, ``extensions``) or a
        websocket message, checked before the parser recurses into it."""
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        problem = limits.json_problem(raw)
        if problem is not None:
            raise json.JSONDecodeError(problem, raw.decode("utf-8", "replace"), 0)
        return json.loads(raw)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As Strawberry's, but a request refused at the HTTP level (no query, JSON that
        does not parse, GET for a mutation) gets JSON in the GraphQL error shape."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive))
        except HTTPException as error:
            response = graphql_error(error.status_code, error.reason)
        except PersistedQueryError as error:
            response = JSONResponse(
                {"errors": [{"message": error.message, "extensions": {"code": error.code}}]},
                status_code=error.status,
            )
        await response(scope, receive, send)

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """A hot mutation by the direct lane (graphql_schema.direct) when it takes the
        document (POST only: GET never mutates), else Strawberry's executor."""
        if request_adapter.method == "POST" and request_data.query:
            plan = direct.plan_of(request_data.query, request_data.operation_name)
            if plan is not None:
                result = await direct.execute(plan, context, request_data.variables)
                if result is not None:
                    return result
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def process_result(self, request: Any, result: Any) -> Any:
        unavailable.raise_if_unavailable(result)  # 503 for the whole document
        response: dict[str, Any] = dict(await super().process_result(request, result))
        if not _accepts_graphql_response(request):
            return response
        response[_MEDIA] = GRAPHQL_RESPONSE
        not_executed = (
            result.data is None and result.errors and all(not error.path for error in result.errors)
        )
        if not_executed:
            response.pop("data", None)
            response[_STATUS] = 400
        return response

    def create_response(self, response_data: Any, sub_response: Any) -> Any:
        status, media = 200, "application/json"
        if isinstance(response_data, dict):
            status = response_data.pop(_STATUS, 200)
            media = response_data.pop(_MEDIA, "application/json")
        response = StarletteResponse(
            self.encode_json(response_data), status_code=status, media_type=media
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    async def get_context(self, request: Any, response: Any) -> Context:
        app_state = request.app.state
        principal: Principal = request.scope.get(PRINCIPAL_KEY) or ANONYMOUS
        return Context(
            runner=app_state.runner,
            principal=principal,
            request_id=request.scope.get(REQUEST_ID_KEY, ""),
            notifications=app_state.notifications,
            authenticate=app_state.auth.verify,
            cost_limits=app_state.cost_limits,
            origin=request.client.host if request.client else "",
        )

    async def on_ws_connect(self, context: Context) -> Any:
        """graphql-transport-ws: the token comes in connection_init, as
        ``{"Authorization": "Bearer <token>"}``; without a valid one the socket closes
        with 4403."""
        params = context.connection_params or {}
        header = str(params.get("Authorization") or params.get("authorization") or "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or context.authenticate is None:
            raise ConnectionRejectionError({"reason": "an access token is required"})
        try:
            context.principal = await context.authenticate(token.strip())
        except InvalidToken as error:
            raise ConnectionRejectionError({"reason": str(error)}) from None
        return {"kind": str(context.principal.kind)}


class GraphQLEndpoint:
    def __init__(self, public_url: str) -> None:
        self.strawberry = _Strawberry(schema, graphql_ide="graphiql", allow_queries_via_get=True)
        self.strawberry.ide_page = graphiql.page(public_url)
        self.strawberry.persisted = PersistedQueries()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # authenticated in connection_init
            await self.strawberry(scope, receive, send)
            return
        request = Request(scope, receive)
        wants_ide = (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )
        if scope["type"] == "http" and not wants_ide:
            principal = await oauth.authenticate(request)
            if not isinstance(principal, Principal):
                await principal(scope, receive, send)
                return
            scope[PRINCIPAL_KEY] = principal
        await self.strawberry(scope, receive, send)
