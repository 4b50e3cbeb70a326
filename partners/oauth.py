"""The OAuth 2 authorization server, on authlib's grant and client-authentication code.

Endpoints (framework-neutral: a :class:`HttpRequest` in, a :class:`HttpResponse` out;
``exchange.http.oauth`` adapts Starlette):

- token (RFC 6749 client credentials; RFC 8693 token exchange for member tokens),
  clients authenticate with ``client_secret_basic``, ``client_secret_post`` or
  ``private_key_jwt`` (RFC 7523, each assertion ``jti`` accepted once);
- introspection (RFC 7662) and revocation (RFC 7009, a ``jti`` denylist);
- metadata (RFC 8414) and the JWKS.

authlib's hooks are synchronous and our database is not, so each request first loads,
asynchronously, the client it claims to be (and, for token exchange, the member its ref
names) and then runs authlib over that snapshot; writes (a used assertion, a revoked
token) happen after, in the same transaction.

Every malformed request gets an RFC 6749 section 5.2 error before any of that: a value
with a NUL or beyond its length, Basic credentials that are not UTF-8, a client
assertion that is not a compact JWS or nests too deep (``invalid_request``). A client
that fails to authenticate, however it fails, is told ``invalid_client`` "client
authentication failed" and no more.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InsecureTransportError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant, ClientCredentialsGrant
from authlib.oauth2.rfc6749.grants.base import TokenEndpointMixin
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import KeySet

from exchange.kit import limits
from exchange.kit.db import Connection, sql
from exchange.kit.errors import DomainError
from exchange.kit.limits import MAX_FORM_VALUE
from partners import clients as client_store
from partners import identity
from partners import tokens as token_service
from partners.clients import ClientRecord
from partners.keys import SigningKeys
from partners.scopes import ALL_SCOPES, MEMBER_SCOPES, NOT_DELEGABLE, parse_scopes
from partners.tokens import AuthState, InvalidToken, TokenSettings

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URN)
MEMBER_REF_TOKEN_TYPE = "urn:coalition-exchange:params:oauth:token-type:member-ref"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
CLIENT_AUTHENTICATION_FAILED = "client authentication failed"
#: A compact JWS: three base64url parts (the signature may be empty only to be refused).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    headers: dict[str, str]  # lower-case names
    form: dict[str, str]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: The client failed to authenticate (``invalid_client``): the edge throttles that.
    authentication_failed: bool = False
    #: The registered clients such a request claimed to be (unknown ids are left out).
    failed_client_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OAuthContext:
    keys: SigningKeys
    settings: TokenSettings

    @property
    def token_url(self) -> str:
        return f"{self.settings.issuer}/oauth/token"


class _Headers(dict[str, str]):
    """authlib asks for 'Authorization'; Starlette hands us lower-case names."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, uri: str, request: HttpRequest) -> None:
        super().__init__(request.method, uri, headers=_Headers(request.headers))
        self._form = request.form
        self.payload = BasicOAuth2Payload(request.form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, record: ClientRecord) -> None:
        self.record = record

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.record.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method == "private_key_jwt":
            return self.record.jwks is not None
        return method in ("client_secret_basic", "client_secret_post") and bool(
            self.record.secret_hash
        )

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            return True
        return (
            grant_type == TOKEN_EXCHANGE
            and self.record.kind == "PARTNER"
            and "members:read" in self.record.scopes
        )


class _ClientRefused(InvalidClientError):  # type: ignore[misc]
    """An ``invalid_client`` whose description is ours to tell (a suspended client)."""


class _PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, audiences: list[str], seen: list[tuple[str, str, int]]) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._audiences = audiences
        self._seen = seen

    def get_audiences(self) -> list[str]:
        return self._audiences

    def validate_jti(self, claims: dict[str, Any], jti: object) -> bool:
        # Uniqueness is checked against the database once authlib is done; what is
        # stored must be a storable id and a time within range.
        expires = claims["exp"]
        if (
            not isinstance(jti, str)
            or not 1 <= len(jti) <= limits.MAX_ASSERTION_ID_LENGTH
            or limits.unsafe(jti)
            or not isinstance(expires, int)
            or not limits.EARLIEST.timestamp() <= expires < limits.LATEST.timestamp()
        ):
            raise InvalidClientError(description=CLIENT_AUTHENTICATION_FAILED)
        self._seen.append((str(claims["sub"]), jti, expires))
        return True

    def resolve_client_public_key(self, client: _Client) -> KeySet:
        if client.record.jwks is None:  # the client has no key: it can't sign
            raise InvalidClientError(description=CLIENT_AUTHENTICATION_FAILED)
        return KeySet.import_key_set(client.record.jwks)  # type: ignore[arg-type]


def _check_scope_subset(requested: str | None, client: _Client) -> None:
    wanted = set(parse_scopes(requested))
    over = wanted - client.record.scopes
    if over:
        raise InvalidScopeError(description=f"the client may not ask for: {' '.join(sorted(over))}")


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        super().validate_requested_scope()
        _check_scope_subset(self.request.payload.scope, self.request.client)


class _TokenExchange(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """RFC 8693: a partner client trades its own authentication and a member ref it
    linked for a short-lived token of that member (``act`` names the partner)."""

    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                description="token exchange needs a partner client with members:read"
            )
        self.request.client = client
        form = self.request.form
        if form.get("subject_token_type") != MEMBER_REF_TOKEN_TYPE:
            raise InvalidRequestError(
                description=f"subject_token_type must be {MEMBER_REF_TOKEN_TYPE}"
            )
        wanted = set(parse_scopes(self.request.payload.scope)) or {"wallet:read"}
        if wanted & NOT_DELEGABLE:
            raise InvalidScopeError(
                description="consent:write comes from the member's own sign-in;"
                " no partner may delegate it"
            )
        if not wanted <= MEMBER_SCOPES:
            raise InvalidScopeError(description="a member token carries member scopes only")
        for scope in ("wallet:transfer", "offers:write"):
            if scope in wanted and scope not in client.record.scopes:
                raise InvalidScopeError(description=f"the client may not delegate {scope}")
        member_id = self.server.member_of(client.record.partner_id, form.get("subject_token"))
        if member_id is None:
            raise InvalidGrantError(description="no member is linked to that member ref")
        self.request.user = member_id
        self.request.exchanged_scope = " ".join(sorted(wanted))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(
            user=self.request.user,
            scope=self.request.exchanged_scope,
            include_refresh_token=False,
        )
        token["issued_token_type"] = ACCESS_TOKEN_TYPE
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _Server(AuthorizationServer):  # type: ignore[misc]
    """One per request, over the snapshot that request loaded."""

    def __init__(
        self,
        context: OAuthContext,
        now: datetime,
        known_clients: dict[str, ClientRecord | None],
        members: dict[tuple[int | None, str], int],
    ) -> None:
        super().__init__(scopes_supported=sorted(ALL_SCOPES))
        self.context = context
        self.now = now
        self.known_clients = known_clients
        self.members = members
        self.seen_assertions: list[tuple[str, str, int]] = []
        self.issued: list[dict[str, Any]] = []
        self.register_grant(_ClientCredentials)
        self.register_grant(_TokenExchange)
        self.register_client_auth_method(
            "private_key_jwt",
            _PrivateKeyJwt([context.token_url, context.settings.issuer], self.seen_assertions),
        )
        self.register_token_generator("default", self._generate)

    def query_client(self, client_id: str) -> _Client | None:
        record = self.known_clients.get(client_id)
        if record is None:
            return None
        if not record.active:
            raise _ClientRefused(
                description="the client or its partner is suspended or revoked", status_code=401
            )
        return _Client(record)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> _Client:
        """authlib's, but its refusals name internals (a list of methods, a JOSE
        message, whether a client exists): a client is told only that it failed."""
        try:
            client: _Client = super().authenticate_client(request, methods, endpoint)
        except _ClientRefused:
            raise
        except InvalidClientError as error:
            raise InvalidClientError(
                description=CLIENT_AUTHENTICATION_FAILED, status_code=error.status_code
            ) from None
        return client

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal listeners here."""

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are self-contained JWTs; nothing to store."""

    def member_of(self, partner_id: int | None, member_ref: str | None) -> int | None:
        return self.members.get((partner_id, member_ref or ""))

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> HttpResponse:
        return HttpResponse(status=status, body=body, headers=list(headers))

    def _generate(
        self,
        grant_type: str,
        client: _Client,
        user: int | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        record = client.record
        scopes = parse_scopes(scope) or sorted(record.scopes)
        if user is None:
            extra: dict[str, Any] = {"kind": record.kind}
            if record.partner_id is not None:
                extra["partner_id"] = record.partner_id
            subject, lifetime = record.client_id, token_service.ACCESS_TOKEN_LIFETIME
        else:
            extra = {
                "kind": "MEMBER",
                "member_id": user,
                "partner_id": record.partner_id,
                "act": {"sub": record.client_id},
            }
            subject, lifetime = f"member:{user}", token_service.MEMBER_TOKEN_LIFETIME
        lifetime = self.context.settings.lifetime(lifetime)  # what verification accepts
        access_token, claims = token_service.issue(
            self.context.keys,
            self.context.settings,
            client_id=record.client_id,
            subject=subject,
            scopes=scopes,
            now=self.now,
            lifetime=lifetime,
            extra=extra,
        )
        self.issued.append(claims)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(lifetime.total_seconds()),
            "scope": " ".join(scopes),
        }


def _invalid_request(description: str) -> HttpResponse:
    return HttpResponse(
        400,
        {"error": "invalid_request", "error_description": description},
        [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
    )


def _insecure() -> HttpResponse:
    return HttpResponse(
        400,
        {
            "error": "invalid_request",
            "error_description": "EXCHANGE_PUBLIC_URL must be https (or a loopback http URL)",
        },
        [("Cache-Control", "no-store")],
    )


def _claimed_client_ids(request: HttpRequest) -> set[str]:
    """Every client id the request could authenticate as, read without trusting it."""
    claimed = set()
    if request.form.get("client_id"):
        claimed.add(request.form["client_id"])
    authorization = request.headers.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
            claimed.add(decoded.split(":", 1)[0])
        except (binascii.Error, UnicodeDecodeError):
            pass
    assertion = request.form.get("client_assertion")
    if assertion:
        sub = _unverified_sub(assertion)  # a peek only; authlib verifies the assertion
        if isinstance(sub, str):
            claimed.add(sub)
    ids = {unquote(c) for c in claimed if c and len(c) <= limits.MAX_CLIENT_ID_LENGTH}
    return {c for c in ids if not limits.unsafe(c)}


def _unverified_sub(assertion: str) -> Any:
    try:
        payload = assertion.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get("sub")
    except (IndexError, ValueError, binascii.Error, AttributeError):
        return None


async def _snapshot(
    conn: Connection, request: HttpRequest
) -> tuple[dict[str, ClientRecord | None], dict[tuple[int | None, str], int]]:
    known = {
        client_id: await client_store.get_client(conn, client_id=client_id)
        for client_id in _claimed_client_ids(request)
    }
    members: dict[tuple[int | None, str], int] = {}
    ref = request.form.get("subject_token")
    if request.form.get("grant_type") == TOKEN_EXCHANGE and ref:
        for record in known.values():
            if record is not None and record.partner_id is not None:
                try:
                    member_id = await identity.resolve(
                        conn, partner_id=record.partner_id, member_ref=ref
                    )
                except DomainError:  # not linked, or not a valid ref: no member
                    continue
                members[(record.partner_id, ref)] = member_id
    return known, members


def _check_form(request: HttpRequest) -> HttpResponse | None:
    """``invalid_request`` for a request malformed before any client is looked up."""
    if request.method != "POST":
        return _invalid_request("use POST")
    if any(len(value) > MAX_FORM_VALUE for value in request.form.values()):
        return _invalid_request("a form value is too long")
    if any(limits.unsafe(text) for pair in request.form.items() for text in pair):
        return _invalid_request("a form parameter contains a NUL character")
    if not _basic_credentials_readable(request.headers.get("authorization", "")):
        return _invalid_request("the Authorization header is not valid Basic credentials")
    assertion = request.form.get("client_assertion")
    if assertion is not None and not _well_formed_assertion(assertion):
        return _invalid_request("client_assertion is not a compact JWS")
    return None


def _basic_credentials_readable(authorization: str) -> bool:
    """Basic credentials must be base64 of UTF-8 with no NUL (percent-escapes included);
    any other scheme is not ours to judge here."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return not limits.unsafe(unquote(decoded))


def _well_formed_assertion(assertion: str) -> bool:
    """Three base64url parts whose header and payload are JSON objects that nest no
    deeper than the JSON limit (authlib parses the payload before it checks anything)."""
    if not _COMPACT_JWS.fullmatch(assertion):
        return False
    for part in assertion.split(".")[:2]:
        try:
            decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            return False
        if limits.json_problem(decoded) is not None:
            return False
    return True


async def _record_assertions(conn: Connection, server: _Server) -> HttpResponse | None:
    """Accept each client assertion's jti once (RFC 7523 section 3, item 7)."""
    for client_id, jti, expires in server.seen_assertions:
        inserted = await conn.execute(
            sql(
                "INSERT INTO used_client_assertion (client_id, jti, expires_at)"
                " VALUES (:client_id, :jti, :expires_at) ON CONFLICT DO NOTHING RETURNING jti"
            ),
            {
                "client_id": client_id,
                "jti": jti,
                "expires_at": datetime.fromtimestamp(expires, UTC),
            },
        )
        if inserted.first() is None:
            error = InvalidClientError(description="this client assertion was already used")
            status, body, headers = error()
            return HttpResponse(status, body, list(headers))
    return None


def _noting_failure(response: HttpResponse, known: dict[str, ClientRecord | None]) -> HttpResponse:
    """``response``, marked as a failed client authentication when it is one."""
    if response.body.get("error") != "invalid_client":
        return response
    claimed = frozenset(client_id for client_id, record in known.items() if record is not None)
    return replace(response, authentication_failed=True, failed_client_ids=claimed)


async def token_endpoint(
    conn: Connection, context: OAuthContext, request: HttpRequest, *, now: datetime
) -> HttpResponse:
    refused = _check_form(request)
    if refused is not None:
        return refused
    known, members = await _snapshot(conn, request)
    server = _Server(context, now, known, members)
    try:
        oauth_request = _Request(context.token_url, request)
    except InsecureTransportError:
        return _insecure()
    response: HttpResponse = server.create_token_response(oauth_request)
    if response.status == 200:
        replayed = await _record_assertions(conn, server)
        if replayed is not None:
            return _noting_failure(replayed, known)
    return _noting_failure(response, known)


async def _authenticated(
    conn: Connection,
    context: OAuthContext,
    request: HttpRequest,
    endpoint: str,
    now: datetime,
) -> tuple[_Client | None, HttpResponse | None]:
    refused = _check_form(request)
    if refused is not None:
        return None, refused
    known, _ = await _snapshot(conn, request)
    server = _Server(context, now, known, {})
    try:
        client = server.authenticate_client(
            _Request(context.token_url, request), AUTH_METHODS, endpoint
        )
    except InsecureTransportError:
        return None, _insecure()
    except OAuth2Error as error:
        status, body, headers = error()
        return None, _noting_failure(HttpResponse(status, body, list(headers)), known)
    replayed = await _record_assertions(conn, server)
    return client, replayed if replayed is None else _noting_failure(replayed, known)


async def introspection_endpoint(
    conn: Connection,
    context: OAuthContext,
    request: HttpRequest,
    state: AuthState,
    *,
    now: datetime,
) -> HttpResponse:
    """RFC 7662: a client may introspect its own tokens; an operator client any token."""
    client, refused = await _authenticated(conn, context, request, "introspection", now)
    if refused is not None or client is None:
        return refused or _invalid_request("client authentication failed")
    inactive = HttpResponse(200, {"active": False}, [("Cache-Control", "no-store")])
    try:
        claims = token_service.decode(
            request.form.get("token", ""), context.settings, state.keys, now=now
        )
        token_service.principal_of(claims, state)
    except InvalidToken:
        return inactive
    owner = claims.get("client_id")
    if client.record.kind != "OPERATOR" and owner != client.record.client_id:
        return inactive
    body = {"active": True, "token_type": "Bearer"}
    body.update(
        {
            k: claims[k]
            for k in (
                "scope",
                "client_id",
                "sub",
                "exp",
                "iat",
                "nbf",
                "iss",
                "aud",
                "jti",
                "kind",
                "partner_id",
                "member_id",
                "act",
            )
            if k in claims
        }
    )
    return HttpResponse(200, body, [("Cache-Control", "no-store")])


async def revocation_endpoint(
    conn: Connection,
    context: OAuthContext,
    request: HttpRequest,
    state: AuthState,
    *,
    now: datetime,
) -> HttpResponse:
    """RFC 7009: the client that a token was issued to (or its actor) may revoke it; an
    unknown or invalid token gets the same 200, so nothing leaks."""
    client, refused = await _authenticated(conn, context, request, "revocation", now)
    if refused is not None or client is None:
        return refused or _invalid_request("client authentication failed")
    try:
        claims = token_service.decode(
            request.form.get("token", ""), context.settings, state.keys, now=now
        )
    except InvalidToken:
        return HttpResponse(200, {})
    actor = (claims.get("act") or {}).get("sub")
    if client.record.client_id in (claims.get("client_id"), actor):
        await token_service.revoke(
            conn,
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    return HttpResponse(200, {})


def metadata(context: OAuthContext) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    issuer = context.settings.issuer
    return {
        "issuer": issuer,
        "token_endpoint": context.token_url,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": sorted(ALL_SCOPES),
        "response_types_supported": [],
    }
