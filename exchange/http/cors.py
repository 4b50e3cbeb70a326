"""Cross-origin calls from browser pages (CORS), for the origins ``EXCHANGE_CORS_ORIGINS``
names; with none named the application has no CORS middleware at all.

Starlette's CORSMiddleware, with two differences:

- a request from an origin that is not named runs as if CORS were off: no CORS headers
  (Starlette would answer its preflight 400 in plain text, with the allowed methods and
  headers), only ``Vary: Origin`` so that no cache hands its answer to a named origin;
- a preflight from a named origin that asks for a method or header we do not allow is
  400 in the GraphQL error shape, as every other refusal at the HTTP level.

It wraps the body reader, so a refusal of the body (413, 415) reaches a named origin's
page with its CORS headers, and the page can read why.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange.http.errors import graphql_error

METHODS = ("GET", "POST", "OPTIONS")
#: What a GraphQL client sends beyond the CORS-safelisted headers.
HEADERS = ("Authorization", "Content-Type")
#: What a page may read of an answer beyond the safelisted headers: when to retry (429,
#: 503) and why a token was refused (401).
EXPOSED = ("Retry-After", "WWW-Authenticate")
MAX_AGE_SECONDS = 600


class Cors(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=METHODS,
            allow_headers=HEADERS,
            expose_headers=EXPOSED,
            max_age=MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = Headers(scope=scope).get("origin") if scope["type"] == "http" else None
        if origin is None or self.is_allowed_origin(origin):
            await super().__call__(scope, receive, send)
            return

        async def varying(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, varying)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        kept = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        reason = bytes(response.body).decode()
        return graphql_error(response.status_code, f"{reason} (preflight)", headers=kept)


def cors(origins: Sequence[str]) -> list[Middleware]:
    """The CORS middleware for these origins; none without any."""
    return [Middleware(Cors, origins=origins)] if origins else []
