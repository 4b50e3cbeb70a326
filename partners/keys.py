"""Access-token signing keys: ES256 (P-256) keys made with `cryptography`, stored in the
database with the private half encrypted (AES-GCM under a key derived from
EXCHANGE_SECRET_KEY), so every server process signs and verifies with the same set.

Rotation without downtime: there is always a NEXT key published in the JWKS before it
signs anything. ``rotate`` retires ACTIVE (still published until tokens it signed have
expired), promotes NEXT to ACTIVE and makes a new NEXT. See docs/decisions/0003.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeySet

from exchange.kit.db import Connection, sql
from partners import crypto
from partners.repository import notify_auth_change


class SigningKeyUnreadable(RuntimeError):
    """The database's signing keys were sealed under another EXCHANGE_SECRET_KEY."""


#: A retired key stays published this long after retirement (longer than any token).
RETIRED_KEY_PUBLISHED_FOR = timedelta(hours=2)


@dataclass(frozen=True)
class SigningKeys:
    """The keys one process uses: the one to sign with and the set to verify against."""

    active_kid: str
    active: ECKey
    published: KeySet

    def jwks(self) -> dict[str, Any]:
        return dict(self.published.as_dict(private=False))


def _encryption_key(secret: bytes) -> bytes:
    return crypto.derive_key(secret, "signing-key-encryption")


def _new_key(secret: bytes) -> tuple[str, bytes, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    kid = f"es256-{secrets.token_hex(6)}"
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    sealed = crypto.encrypt(_encryption_key(secret), pem, associated=kid.encode())
    public = ECKey.import_key(pem).as_dict(private=False)
    public.update({"kid": kid, "use": "sig", "alg": "ES256"})
    return kid, sealed, public


async def _insert(conn: Connection, secret: bytes, status: str, now: datetime) -> str:
    kid, sealed, public = _new_key(secret)
    await conn.execute(
        sql(
            """
            INSERT INTO signing_key (kid, private_key_ciphertext, public_jwk, status,
                created_at, activated_at)
            VALUES (:kid, :sealed, CAST(:public AS jsonb), :status, :now,
                CASE WHEN :status = 'ACTIVE' THEN CAST(:now AS timestamptz) END)
            """
        ),
        {"kid": kid, "sealed": sealed, "public": json.dumps(public), "status": status, "now": now},
    )
    return kid


async def ensure_keys(conn: Connection, *, secret: bytes, now: datetime) -> None:
    """Make the ACTIVE and NEXT keys if missing (first start)."""
    await conn.execute(sql("SELECT pg_advisory_xact_lock(727300)"))
    statuses = set(
        (
            await conn.execute(sql("SELECT status FROM signing_key WHERE status <> 'RETIRED'"))
        ).scalars()
    )
    if "ACTIVE" not in statuses:
        await _insert(conn, secret, "ACTIVE", now)
    if "NEXT" not in statuses:
        await _insert(conn, secret, "NEXT", now)


async def rotate(conn: Connection, *, secret: bytes, now: datetime) -> str:
    """Retire ACTIVE, promote NEXT, make a new NEXT; returns the new active kid."""
    await ensure_keys(conn, secret=secret, now=now)
    await conn.execute(
        sql("UPDATE signing_key SET status = 'RETIRED', retired_at = :now WHERE status = 'ACTIVE'"),
        {"now": now},
    )
    promoted = await conn.execute(
        sql(
            "UPDATE signing_key SET status = 'ACTIVE', activated_at = :now"
            " WHERE status = 'NEXT' RETURNING kid"
        ),
        {"now": now},
    )
    kid = str(promoted.scalar_one())
    await _insert(conn, secret, "NEXT", now)
    await notify_auth_change(conn)
    return kid


async def load(conn: Connection, *, secret: bytes, now: datetime) -> SigningKeys:
    rows = (
        await conn.execute(
            sql(
                """
                SELECT kid, status, private_key_ciphertext, public_jwk FROM signing_key
                WHERE status <> 'RETIRED' OR retired_at > :cutoff
                ORDER BY created_at
                """
            ),
            {"cutoff": now - RETIRED_KEY_PUBLISHED_FOR},
        )
    ).all()
    active = [row for row in rows if row.status == "ACTIVE"]
    if not active:
        raise LookupError("no active signing key; run `exchange keys rotate` or start serve")
    row = active[0]
    try:
        pem = crypto.decrypt(
            _encryption_key(secret), bytes(row.private_key_ciphertext), associated=row.kid.encode()
        )
    except InvalidTag:
        raise SigningKeyUnreadable(
            "the signing keys in this database were encrypted under another"
            " EXCHANGE_SECRET_KEY; every process sharing a database needs the same one"
        ) from None
    private = ECKey.import_key(pem, {"kid": row.kid, "alg": "ES256", "use": "sig"})
    published = KeySet([ECKey.import_key(dict(r.public_jwk)) for r in rows])
    return SigningKeys(active_kid=row.kid, active=private, published=published)
