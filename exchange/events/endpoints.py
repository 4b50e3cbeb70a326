"""Webhook endpoints: a partner's (or the operators') URL, the event types it wants and
its signing secret, which the exchange keeps sealed (AES-GCM under a key derived from
EXCHANGE_SECRET_KEY) because it must read it back to sign, and shows only once."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from exchange.events import repository, safety
from exchange.events.models import (
    EVENT_TYPES,
    EVERY_TYPE,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    NewSecret,
)
from exchange.kit import limits
from exchange.kit.db import Connection, Row
from exchange.kit.errors import DomainError, ErrorCode, InvalidInput, NotFound
from partners import crypto
from partners.identity import IdentityKeys

SECRET_BYTES = 24
#: After a rotation the old secret signs too, so receivers can switch without a gap.
ROTATION_OVERLAP = timedelta(hours=24)
_SEALED_FOR = b"webhook-endpoint-secret"


def new_secret() -> str:
    """A signing secret in the Standard Webhooks format: whsec_ and base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def seal(keys: IdentityKeys, secret: str) -> bytes:
    return crypto.encrypt(keys.webhook_key, secret, associated=_SEALED_FOR)


def unseal(keys: IdentityKeys, sealed: bytes) -> str:
    return crypto.decrypt(keys.webhook_key, bytes(sealed), associated=_SEALED_FOR)


def event_types(given: object, field: str = "eventTypes") -> list[str]:
    """Known event types (or "*": every type), each once, sorted."""
    if not isinstance(given, list | tuple) or not given:
        raise InvalidInput(f'{field} names at least one event type (or "*")', field=[field])
    if len(given) > limits.MAX_WEBHOOK_EVENT_TYPES:
        raise InvalidInput(f"{field} names too many types", field=[field])
    unknown = [t for t in given if t != EVERY_TYPE and t not in EVENT_TYPES]
    if unknown:
        shown = ", ".join(sorted(EVENT_TYPES))
        raise InvalidInput(
            f"{field}: unknown event type {str(unknown[0])[:60]!r}; known: {shown}",
            field=[field],
        )
    return sorted(set(given))


def endpoint_of(row: Row) -> Endpoint:
    return Endpoint(
        id=int(row.id),
        partner_id=row.partner_id,
        url=row.url,
        event_types=list(row.event_types),
        status=EndpointStatus(row.status),
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
    )


def delivery_of(row: Row) -> Delivery:
    pending = row.status == DeliveryStatus.PENDING
    return Delivery(
        id=int(row.id),
        endpoint_id=int(row.endpoint_id),
        event_id=int(row.event_id),
        event_type=row.event_type,
        status=DeliveryStatus(row.status),
        attempts=int(row.attempts),
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if pending else None,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )


async def get(conn: Connection, *, endpoint_id: int) -> Endpoint:
    rows = await repository.endpoints(conn, endpoint_ids=[endpoint_id])
    if not rows:
        raise NotFound("no webhook endpoint has that id", field=["endpointId"])
    return endpoint_of(rows[0])


async def create(
    conn: Connection,
    *,
    owner: int | None,
    url: str,
    types: Sequence[str],
    keys: IdentityKeys,
    allow_private: bool,
    created_by: str,
    now: datetime,
) -> NewSecret:
    """A new endpoint, ENABLED, with a new secret (returned once)."""
    checked_types = event_types(list(types))
    checked_url = await safety.checked(url, allow_private=allow_private)
    if await repository.count_endpoints(conn, partner_id=owner) >= limits.MAX_WEBHOOK_ENDPOINTS:
        raise DomainError(
            f"at most {limits.MAX_WEBHOOK_ENDPOINTS} webhook endpoints each",
            field=["url"],
            code=ErrorCode.LIMIT_EXCEEDED,
        )
    secret = new_secret()
    endpoint_id = await repository.insert_endpoint(
        conn,
        partner_id=owner,
        url=checked_url,
        event_types=checked_types,
        secret=seal(keys, secret),
        created_by=created_by,
        now=now,
    )
    return NewSecret(await get(conn, endpoint_id=endpoint_id), secret)


async def update(
    conn: Connection,
    *,
    endpoint_id: int,
    url: str | None,
    types: Sequence[str] | None,
    enabled: bool | None,
    allow_private: bool,
    now: datetime,
) -> Endpoint:
    checked_url = await safety.checked(url, allow_private=allow_private) if url else None
    checked_types = event_types(list(types)) if types is not None else None
    if not await repository.update_endpoint(
        conn,
        endpoint_id=endpoint_id,
        url=checked_url,
        event_types=checked_types,
        enabled=enabled,
        now=now,
    ):
        raise NotFound("no webhook endpoint has that id", field=["endpointId"])
    return await get(conn, endpoint_id=endpoint_id)


async def rotate(
    conn: Connection, *, endpoint_id: int, keys: IdentityKeys, now: datetime
) -> NewSecret:
    """A new secret (returned once); the old one keeps signing for ROTATION_OVERLAP."""
    secret = new_secret()
    if not await repository.replace_secret(
        conn,
        endpoint_id=endpoint_id,
        secret=seal(keys, secret),
        keep_until=now + ROTATION_OVERLAP,
        now=now,
    ):
        raise NotFound("no webhook endpoint has that id", field=["endpointId"])
    return NewSecret(await get(conn, endpoint_id=endpoint_id), secret)


async def delete(conn: Connection, *, endpoint_id: int, now: datetime) -> Endpoint:
    endpoint = await get(conn, endpoint_id=endpoint_id)
    await repository.delete_endpoint(conn, endpoint_id=endpoint_id, now=now)
    return Endpoint(
        id=endpoint.id,
        partner_id=endpoint.partner_id,
        url=endpoint.url,
        event_types=endpoint.event_types,
        status=EndpointStatus.DISABLED,
        disabled_reason="deleted",
        created_at=endpoint.created_at,
    )
