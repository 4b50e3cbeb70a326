"""While PostgreSQL is unreachable: 503 with ``Retry-After`` on every route, in the shape
each route's clients read, never a 500 and never a payload that says something happened.

Every database access goes through ``Database.transaction``, which turns a connection
that can't be made or is lost into :class:`DatabaseUnavailable`; the app maps it here
(a Starlette exception handler). GraphQL resolvers' failures arrive inside the result
instead: :func:`raise_if_unavailable` lifts them out, so a document with a field that
met the outage is answered 503 as a whole (its mutations carry idempotency keys: a
retry after the outage replays what did commit).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from exchange.kit.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

#: What clients are told to wait: the listeners retry within seconds, and the pool
#: reconnects on the first request after the database is back.
RETRY_AFTER_SECONDS = 2
GRAPHQL_RESPONSE = "application/graphql-response+json"
MESSAGE = "the database is unavailable; retry shortly"


def raise_if_unavailable(result: Any) -> None:
    """Raise the :class:`DatabaseUnavailable` behind any error of a GraphQL result."""
    for error in getattr(result, "errors", None) or ():
        original = getattr(error, "original_error", None)
        if isinstance(original, DatabaseUnavailable):
            raise original


def _body(request: Request) -> tuple[dict[str, Any], str]:
    """The 503's body in the shape the route's clients read, and its media type."""
    path, plain = request.url.path, "application/json"
    if path.startswith(("/oauth/", "/.well-known/")):  # RFC 6749
        return {"error": "temporarily_unavailable", "error_description": MESSAGE}, plain
    if path in ("/readyz", "/healthz"):
        return {"status": "unavailable"}, plain
    media = GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in request.headers.get("accept", "") else plain
    graphql_error = {"message": MESSAGE, "extensions": {"code": "SERVICE_UNAVAILABLE"}}
    return {"errors": [graphql_error]}, media


async def database_unavailable(request: Request, error: Exception) -> Response:
    """The Starlette exception handler for :class:`DatabaseUnavailable`."""
    stage = getattr(error, "stage", "?")
    cause = error.__cause__
    log.warning(
        "database unavailable (%s) on %s %s: %s",
        stage,
        request.method,
        request.url.path,
        type(cause).__name__ if cause is not None else "",
    )
    body, media = _body(request)
    return JSONResponse(
        body,
        status_code=503,
        media_type=media,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
    )
