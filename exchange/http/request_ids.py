"""A request id for every HTTP request and websocket: made here (never taken from the
client), bound to the log lines written while the request is served
(``exchange.kit.logs.REQUEST_ID``), kept in the ASGI scope for the GraphQL context
(a masked error names it) and sent back in ``X-Request-Id`` so a client can quote it."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange.kit.logs import REQUEST_ID

#: Where the id is kept in the ASGI scope.
SCOPE_KEY = "exchange.request_id"
HEADER = b"x-request-id"


class RequestIds:
    """ASGI middleware, outermost of ours: every response, a refusal included, has its id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope[SCOPE_KEY] = request_id
        bound = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (HEADER, request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            REQUEST_ID.reset(bound)
