"""Request bodies, read within limits before anything parses them.

:class:`BodyReader` wraps the whole application. For each HTTP request it picks the rule
of the route (:data:`RULES`), refuses a media type the route does not accept, and reads
the body itself, counting bytes as they arrive, whatever the transfer encoding: a
declared ``Content-Length`` above the limit is refused before a byte is read, and a
chunked body is cut off at the first chunk that crosses it (413). A JSON body is then
checked before any parser sees it (``exchange.kit.limits.json_problem``: UTF-8, nesting
depth, an object at the top). Only then does the route run, over the body read so far.
A route whose rule is not ``buffered`` (``POST /bulk/earn``: up to 64 MiB, read only once
the caller's token is checked) gets the declared length and media type checked here and
reads its body itself with :func:`read_body`, within the same kind of limit.

Refusals are JSON in the route's error shape (``exchange.http.errors``): the GraphQL
shape, or RFC 6749 section 5.2 on the OAuth endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange.http.errors import graphql_error, oauth_error
from exchange.kit import limits

Refuse = Callable[[int, str], Response]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
NDJSON = "application/x-ndjson"
METHODS_WITH_A_BODY = frozenset({"POST", "PUT", "PATCH"})


def _graphql_refusal(status: int, message: str) -> Response:
    return graphql_error(status, message)


def _oauth_refusal(status: int, message: str) -> Response:
    return oauth_error(status, "invalid_request", message)


@dataclass(frozen=True)
class BodyRule:
    """What the routes under ``prefix`` take: at most ``max_bytes``, of one of the
    media types ``accepts`` (None: any), refused with ``wrong_type`` and in the shape
    ``refuse`` draws."""

    prefix: str
    max_bytes: int
    accepts: tuple[str, ...] | None
    wrong_type: int
    refuse: Refuse
    #: False: the route reads the body itself, within ``max_bytes``
    #: (:func:`read_body`), after checking the caller; the declared length and the media
    #: type are still checked here, before the route runs.
    buffered: bool = True


RULES = (
    BodyRule("/graphql", limits.GRAPHQL_BODY_BYTES, (JSON,), 415, _graphql_refusal),
    # RFC 6749 has no 415: a token endpoint answers every malformed request 400.
    BodyRule("/oauth/", limits.OAUTH_BODY_BYTES, (FORM,), 400, _oauth_refusal),
    BodyRule("/bulk/", limits.BULK_BODY_BYTES, (NDJSON,), 415, _graphql_refusal, buffered=False),
)
OTHER = BodyRule("", limits.OTHER_BODY_BYTES, None, 415, _graphql_refusal)


def rule_for(path: str) -> BodyRule:
    return next((rule for rule in RULES if path.startswith(rule.prefix)), OTHER)


def media_type(headers: Headers) -> tuple[str, str]:
    """The request's media type, lower-case, and its charset ('' if none)."""
    kind, _, parameters = headers.get("content-type", "").partition(";")
    charset = ""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return kind.strip().lower(), charset


def _type_refusal(rule: BodyRule, headers: Headers) -> Response | None:
    if rule.accepts is None:
        return None
    kind, charset = media_type(headers)
    if kind in rule.accepts and charset in ("", "utf-8"):
        return None
    accepted = " or ".join(rule.accepts)
    given = headers.get("content-type") or "none"
    return rule.refuse(
        rule.wrong_type, f"this endpoint accepts {accepted} (UTF-8); the request sent {given}"
    )


class ClientGone(Exception):
    """The client disconnected before its body was read."""


async def read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``max_bytes`` (the rest is never
    read); :class:`ClientGone` if the client goes away first."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if len(body) + len(chunk) > max_bytes:
            return None
        body += chunk
        if not message.get("more_body", False):
            return bytes(body)


def _is_json(kind: str) -> bool:
    return kind == JSON or kind.endswith("+json")


def _declared_refusal(rule: BodyRule, headers: Headers) -> Response | None:
    declared = headers.get("content-length")
    if declared is None:
        return None
    if not declared.isascii() or not declared.isdigit():
        return rule.refuse(400, "Content-Length is not a number")
    if int(declared) > rule.max_bytes:
        return _too_large(rule)
    return None


def _too_large(rule: BodyRule) -> Response:
    return rule.refuse(413, f"the request body is larger than {rule.max_bytes} bytes")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body already read, then the client's own
    messages (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


class BodyReader:
    """ASGI middleware: every HTTP request's body read within its route's rule."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = rule_for(scope["path"])
        if not rule.buffered:
            refusal = _refusal(scope, rule)
            if refusal is not None:
                await refusal(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        try:
            outcome = await _read(scope, receive, rule)
        except ClientGone:
            return
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
        else:
            await self.app(scope, _replay(outcome, receive), send)


def _refusal(scope: Scope, rule: BodyRule) -> Response | None:
    """What the headers alone refuse: a declared length above the limit, or (with a
    body) a media type the route does not take."""
    headers = Headers(scope=scope)
    refusal = _declared_refusal(rule, headers)
    if refusal is None and scope["method"] in METHODS_WITH_A_BODY:
        refusal = _type_refusal(rule, headers)
    return refusal


async def _read(scope: Scope, receive: Receive, rule: BodyRule) -> bytes | Response:
    """The body of a request, or the refusal to send instead of running the route."""
    refusal = _refusal(scope, rule)
    if refusal is not None:
        return refusal
    headers = Headers(scope=scope)
    has_body = scope["method"] in METHODS_WITH_A_BODY
    body = await read_body(receive, rule.max_bytes)
    if body is None:
        return _too_large(rule)
    if has_body and _is_json(media_type(headers)[0]):
        problem = limits.json_problem(body)
        if problem is not None:
            return rule.refuse(400, problem)
    return body
