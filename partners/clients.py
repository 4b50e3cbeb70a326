"""OAuth clients of partners and operators. A client secret is shown once, at creation,
and stored only as a salted SHA-256 digest (secrets are 256 random bits, so a slow hash
adds nothing); verification compares in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from exchange.kit.db import Connection, sql
from exchange.kit.errors import InvalidInput, NotFound
from partners.repository import notify_auth_change
from partners.scopes import OPERATOR_SCOPES, PARTNER_SCOPES


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    kind: str
    partner_id: int | None
    scopes: frozenset[str]
    secret_hash: str | None
    jwks: dict[str, Any] | None
    active: bool

    def check_secret(self, secret: str) -> bool:
        if not self.secret_hash:
            return False
        _, salt, digest = self.secret_hash.split("$")
        return hmac.compare_digest(_digest(salt, secret), digest)


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str | None
    scopes: list[str]


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def hash_secret(secret: str) -> str:
    salt = secrets.token_hex(16)
    return f"sha256${salt}${_digest(salt, secret)}"


def check_scopes(scopes: list[str], *, operator: bool) -> list[str]:
    allowed = OPERATOR_SCOPES if operator else PARTNER_SCOPES
    wanted = sorted(set(scopes))
    if not wanted:
        raise InvalidInput("give at least one scope", field=["scopes"])
    unknown = [scope for scope in wanted if scope not in allowed]
    if unknown:
        kind = "an operator" if operator else "a partner"
        raise InvalidInput(
            f"{kind} client can't have {', '.join(unknown)}; allowed: {' '.join(sorted(allowed))}",
            field=["scopes"],
        )
    return wanted


async def create_client(
    conn: Connection,
    *,
    scopes: list[str],
    partner_id: int | None = None,
    jwks: dict[str, Any] | None = None,
) -> NewClient:
    """A client of a partner (``partner_id``) or of the operator (None). With ``jwks`` the
    client authenticates with private_key_jwt and gets no secret."""
    operator = partner_id is None
    wanted = check_scopes(scopes, operator=operator)
    if jwks is not None and not isinstance(jwks.get("keys"), list):
        raise InvalidInput("jwks must be a JSON Web Key Set with a keys list", field=["jwks"])
    client_id = f"{'op' if operator else 'pt'}_{secrets.token_hex(10)}"
    secret = None if jwks is not None else secrets.token_urlsafe(32)
    await conn.execute(
        sql(
            """
            INSERT INTO oauth_client (client_id, secret_hash, partner_id, kind, scopes, jwks)
            VALUES (:client_id, :secret_hash, :partner_id, :kind, :scopes,
                CAST(:jwks AS jsonb))
            """
        ),
        {
            "client_id": client_id,
            "secret_hash": hash_secret(secret) if secret else None,
            "partner_id": partner_id,
            "kind": "OPERATOR" if operator else "PARTNER",
            "scopes": wanted,
            "jwks": json.dumps(jwks) if jwks is not None else None,
        },
    )
    return NewClient(client_id=client_id, client_secret=secret, scopes=wanted)


async def get_client(conn: Connection, *, client_id: str) -> ClientRecord | None:
    """The client, active only if it and its partner (if any) are active."""
    row = (
        await conn.execute(
            sql(
                """
                SELECT c.client_id, c.kind, c.partner_id, c.scopes, c.secret_hash, c.jwks,
                       c.status = 'ACTIVE' AND coalesce(p.status = 'ACTIVE', true) AS active
                FROM oauth_client c LEFT JOIN partner p ON p.id = c.partner_id
                WHERE c.client_id = :client_id
                """
            ),
            {"client_id": client_id},
        )
    ).first()
    if row is None:
        return None
    return ClientRecord(
        client_id=row.client_id,
        kind=row.kind,
        partner_id=row.partner_id,
        scopes=frozenset(row.scopes),
        secret_hash=row.secret_hash,
        jwks=row.jwks,
        active=bool(row.active),
    )


async def revoke_client(conn: Connection, *, client_id: str) -> None:
    result = await conn.execute(
        sql(
            "UPDATE oauth_client SET status = 'REVOKED' WHERE client_id = :client_id"
            " RETURNING client_id"
        ),
        {"client_id": client_id},
    )
    if result.first() is None:
        raise NotFound(f"client {client_id} does not exist", field=["clientId"])
    await notify_auth_change(conn)
