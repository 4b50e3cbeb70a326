"""Access tokens: RFC 9068 JWTs (``typ: at+jwt``) signed ES256, verified in-process.

Verification needs no database round trip: the key set, the revoked token ids and the
suspended partners and revoked clients live in an :class:`AuthState` snapshot that the
server refreshes every few seconds and at once when told (see ``exchange.http.auth``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from exchange.kit.db import Connection, sql
from exchange.kit.limits import MAX_TOKEN_LENGTH
from partners.keys import SigningKeys
from partners.principal import Principal, PrincipalKind
from partners.repository import notify_auth_change

ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
MEMBER_TOKEN_LIFETIME = timedelta(minutes=5)
CLOCK_LEEWAY_SECONDS = 30
#: Tokens whose signature this process has checked, per published key set: a partner
#: sends the same token for minutes, and an ES256 check is a tenth of a request's CPU.
SIGNATURE_CACHE_SIZE = 4096
_checked: OrderedDict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = OrderedDict()


class InvalidToken(Exception):
    """The token is not one we accept; the message is safe to show."""


#: The longest lifetime (``exp - iat``) verification accepts, by default; a validly signed
#: token that claims more is refused (EXCHANGE_MAX_TOKEN_LIFETIME_S).
MAX_TOKEN_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    max_lifetime_seconds: int = MAX_TOKEN_LIFETIME_SECONDS

    def lifetime(self, wanted: timedelta) -> timedelta:
        """``wanted``, or the longest lifetime verification accepts if that is shorter."""
        return min(wanted, timedelta(seconds=self.max_lifetime_seconds))


@dataclass(frozen=True)
class AuthState:
    keys: KeySet
    #: Identifies the published key set: a signature checked under one set is trusted
    #: again only while the same set is published.
    keys_fingerprint: str = ""
    revoked_token_ids: frozenset[str] = frozenset()
    inactive_client_ids: frozenset[str] = frozenset()
    suspended_partner_ids: frozenset[int] = frozenset()
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def load_auth_state(conn: Connection, *, keys: SigningKeys, now: datetime) -> AuthState:
    revoked = (
        await conn.execute(
            sql("SELECT jti FROM revoked_token WHERE expires_at > :now"), {"now": now}
        )
    ).scalars()
    clients = (
        await conn.execute(sql("SELECT client_id FROM oauth_client WHERE status <> 'ACTIVE'"))
    ).scalars()
    partners = (
        await conn.execute(sql("SELECT id FROM partner WHERE status <> 'ACTIVE'"))
    ).scalars()
    published = keys.published.as_dict(private=False)
    return AuthState(
        keys=keys.published,
        keys_fingerprint=hashlib.sha256(json.dumps(published, sort_keys=True).encode()).hexdigest(),
        revoked_token_ids=frozenset(revoked),
        inactive_client_ids=frozenset(clients),
        suspended_partner_ids=frozenset(int(p) for p in partners),
        loaded_at=now,
    )


def issue(
    keys: SigningKeys,
    settings: TokenSettings,
    *,
    client_id: str,
    subject: str,
    scopes: list[str],
    now: datetime,
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    issued_at = int(now.timestamp())
    claims = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": settings.audience,
        "client_id": client_id,
        "scope": " ".join(scopes),
        "jti": secrets.token_urlsafe(16),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(lifetime.total_seconds()),
        **(extra or {}),
    }
    header = {"typ": "at+jwt", "alg": "ES256", "kid": keys.active_kid}
    return jwt.encode(header, claims, keys.active, algorithms=["ES256"]), claims


def decode(
    token: str, settings: TokenSettings, keys: KeySet, *, now: datetime, keys_fingerprint: str = ""
) -> dict[str, Any]:
    """Check signature, type and registered claims (a lifetime ``exp - iat`` no longer than
    the settings allow included); return the claims. With the key set's fingerprint, a
    signature already checked under that set is not checked again (the claims, expiry
    included, always are)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("malformed access token")
    header, claims = _signed_parts(token, keys, keys_fingerprint)
    if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        raise InvalidToken("not an access token (typ must be at+jwt)")
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": settings.issuer},
        aud={"essential": True, "value": settings.audience},
        exp={"essential": True},
        sub={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as error:
        raise InvalidToken(f"the access token is not valid: {error.description}") from error
    _check_lifetime(claims, settings, now=now)
    return dict(claims)


def _check_lifetime(claims: Any, settings: TokenSettings, *, now: datetime) -> None:
    """``exp - iat`` no longer than the settings allow; nor may ``exp`` lie further ahead
    of now than that (a token without ``iat``)."""
    expires = claims["exp"]
    lifetime = expires - claims["iat"] if "iat" in claims else 0
    reach = expires - now.timestamp() - CLOCK_LEEWAY_SECONDS
    longest = max(lifetime, reach)
    if longest > settings.max_lifetime_seconds:
        raise InvalidToken(
            f"the access token's lifetime ({int(longest)} s) is longer than the"
            f" {settings.max_lifetime_seconds} s this server accepts"
        )


def _signed_parts(
    token: str, keys: KeySet, keys_fingerprint: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    cache_key = (keys_fingerprint, token)
    if keys_fingerprint and (known := _checked.get(cache_key)) is not None:
        _checked.move_to_end(cache_key)
        return known
    try:
        decoded = jwt.decode(token, keys, algorithms=["ES256"])
    except (JoseError, ValueError) as error:
        raise InvalidToken("the access token's signature or format is invalid") from error
    parts = (dict(decoded.header), dict(decoded.claims))
    if keys_fingerprint:
        _checked[cache_key] = parts
        if len(_checked) > SIGNATURE_CACHE_SIZE:
            _checked.popitem(last=False)
    return parts


def principal_of(claims: dict[str, Any], state: AuthState) -> Principal:
    if claims["jti"] in state.revoked_token_ids:
        raise InvalidToken("the access token was revoked")
    client_id = str(claims.get("client_id", ""))
    if client_id in state.inactive_client_ids:
        raise InvalidToken("the client of this access token was revoked")
    partner_id = claims.get("partner_id")
    if partner_id is not None and int(partner_id) in state.suspended_partner_ids:
        raise InvalidToken("the partner of this access token is suspended")
    try:
        kind = PrincipalKind(claims.get("kind", ""))
    except ValueError:
        raise InvalidToken("the access token names no known kind of caller") from None
    actor = claims.get("act") or {}
    return Principal(
        kind=kind,
        client_id=client_id,
        scopes=frozenset(str(claims.get("scope", "")).split()),
        token_id=str(claims["jti"]),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        partner_id=int(partner_id) if partner_id is not None else None,
        member_id=int(claims["member_id"]) if claims.get("member_id") is not None else None,
        actor_client_id=actor.get("sub") if isinstance(actor, dict) else None,
    )


def verify(token: str, settings: TokenSettings, state: AuthState, *, now: datetime) -> Principal:
    claims = decode(token, settings, state.keys, now=now, keys_fingerprint=state.keys_fingerprint)
    return principal_of(claims, state)


async def revoke(conn: Connection, *, token_id: str, expires_at: datetime) -> None:
    await conn.execute(
        sql(
            "INSERT INTO revoked_token (jti, expires_at) VALUES (:jti, :expires_at)"
            " ON CONFLICT DO NOTHING"
        ),
        {"jti": token_id, "expires_at": expires_at},
    )
    await notify_auth_change(conn)
