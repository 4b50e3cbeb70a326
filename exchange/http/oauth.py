"""Starlette adapter for the OAuth endpoints of ``partners.oauth``, and the bearer-token
check every API route uses. Their form bodies were read within their limits, and of the
form media type, before these run (``exchange.http.body``)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exchange.http.auth import AuthRuntime
from exchange.http.errors import oauth_error
from exchange.http.throttle import FailedAuthentications
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from partners import oauth
from partners.principal import Principal
from partners.tokens import InvalidToken

_error = oauth_error


async def _http_request(request: Request) -> oauth.HttpRequest | JSONResponse:
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return _error(400, "invalid_request", "the request body is not UTF-8")
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            return _error(400, "invalid_request", f"parameter {name} is repeated")
        form[name] = value
    headers = {name.lower(): value for name, value in request.headers.items()}
    return oauth.HttpRequest(method=request.method, headers=headers, form=form)


def _response(result: oauth.HttpResponse) -> JSONResponse:
    headers = dict(result.headers)
    headers.setdefault("Cache-Control", "no-store")
    return JSONResponse(result.body, status_code=result.status, headers=headers)


def _runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.auth
    return runtime


def _failures(request: Request) -> FailedAuthentications:
    failures: FailedAuthentications = request.app.state.failed_authentications
    return failures


async def token(request: Request) -> Response:
    if (throttled := _failures(request).before(request)) is not None:
        return throttled
    parsed = await _http_request(request)
    if isinstance(parsed, JSONResponse):
        return parsed
    runtime = _runtime(request)
    context = await runtime.context()
    database: Database = request.app.state.database
    async with database.transaction(SYSTEM) as conn:
        result = await oauth.token_endpoint(conn, context, parsed, now=utc_now())
    return await _failures(request).after(request, result) or _response(result)


async def introspect(request: Request) -> Response:
    if (throttled := _failures(request).before(request)) is not None:
        return throttled
    parsed = await _http_request(request)
    if isinstance(parsed, JSONResponse):
        return parsed
    runtime = _runtime(request)
    context, state = await runtime.context(), await runtime.state()
    database: Database = request.app.state.database
    async with database.transaction(SYSTEM) as conn:
        result = await oauth.introspection_endpoint(conn, context, parsed, state, now=utc_now())
    return await _failures(request).after(request, result) or _response(result)


async def revoke(request: Request) -> Response:
    if (throttled := _failures(request).before(request)) is not None:
        return throttled
    parsed = await _http_request(request)
    if isinstance(parsed, JSONResponse):
        return parsed
    runtime = _runtime(request)
    context, state = await runtime.context(), await runtime.state()
    database: Database = request.app.state.database
    async with database.transaction(SYSTEM) as conn:
        result = await oauth.revocation_endpoint(conn, context, parsed, state, now=utc_now())
    runtime.invalidate()
    return await _failures(request).after(request, result) or _response(result)


async def jwks(request: Request) -> Response:
    context = await _runtime(request).context()
    return JSONResponse(context.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})


async def metadata(request: Request) -> Response:
    context = await _runtime(request).context()
    return JSONResponse(oauth.metadata(context))


def unauthorized(description: str) -> JSONResponse:
    """HTTP 401 with the RFC 6750 challenge."""
    safe = description.replace('"', "'")
    return JSONResponse(
        {"errors": [{"message": description, "extensions": {"code": "UNAUTHENTICATED"}}]},
        status_code=401,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{safe}"'},
    )


async def authenticate(request: Request) -> Principal | JSONResponse:
    """The principal of the request's bearer token, or the 401 to send back."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return JSONResponse(
            {
                "errors": [
                    {
                        "message": "an access token is required",
                        "extensions": {"code": "UNAUTHENTICATED"},
                    }
                ]
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="coalition-exchange"'},
        )
    try:
        return await _runtime(request).verify(credentials.strip())
    except InvalidToken as error:
        return unauthorized(str(error))


routes = [
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/introspect", introspect, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
]
