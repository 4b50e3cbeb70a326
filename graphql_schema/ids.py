"""Opaque global IDs for the Relay ``Node`` interface: base64url of ``Type:key``.

Each ID has one spelling, the one :func:`encode` writes: anything else (padding, a sign,
leading zeros, non-ASCII digits, a key beyond 64 bits) is not one of our IDs, so it can
never reach the database as a number it can't hold."""

from __future__ import annotations

import base64
import binascii

from exchange.kit import limits
from exchange.kit.errors import InvalidInput, Kind, Ref
from exchange.kit.global_ids import encode as encode
from exchange.kit.invariant import invariant

TYPES = frozenset(
    {
        "Transaction",
        "Hold",
        "Partner",
        "Member",
        "SettlementRun",
        "Purchase",
        "Campaign",
        "WebhookEndpoint",
        "WebhookDelivery",
        "Segment",
        "Offer",
    }
)
#: The longest ID encode() writes (the longest type name and 19 digits, in base64).
MAX_LENGTH = max(
    len(base64.urlsafe_b64encode(f"{name}:".encode() + b"9" * limits.MAX_ID_DIGITS))
    for name in TYPES
)
#: The Node type of each kind of object a domain error can name.
NODE_TYPES: dict[Kind, str] = {
    Kind.TRANSACTION: "Transaction",
    Kind.HOLD: "Hold",
    Kind.PARTNER: "Partner",
    Kind.MEMBER: "Member",
    Kind.SETTLEMENT_RUN: "SettlementRun",
    Kind.PURCHASE: "Purchase",
    Kind.CAMPAIGN: "Campaign",
    Kind.WEBHOOK_ENDPOINT: "WebhookEndpoint",
    Kind.WEBHOOK_DELIVERY: "WebhookDelivery",
}
invariant(
    set(NODE_TYPES) == set(Kind) and set(NODE_TYPES.values()) <= TYPES,
    "every kind an error can name has a Node type",
)


def of_ref(ref: Ref) -> str:
    """An object a domain error names, as a client knows it: its global ID."""
    return encode(NODE_TYPES[ref.kind], ref.key)


def decode(global_id: str) -> tuple[str, int] | None:
    """(type, key), or None for anything that is not one of our IDs."""
    if not global_id.isascii() or len(global_id) > MAX_LENGTH:
        return None
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, digits = base64.urlsafe_b64decode(padded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    key = limits.int64_digits(digits)
    if type_name not in TYPES or key is None or encode(type_name, key) != global_id:
        return None
    return type_name, key


def page(first: int | None, after: str | None, type_name: str) -> tuple[int, int | None]:
    """A page's arguments: ``first`` (1 to MAX_PAGE, DEFAULT_PAGE when absent) and the key of
    the ``type_name`` object the cursor ``after`` names; INVALID_INPUT otherwise."""
    size = limits.DEFAULT_PAGE if first is None else first
    if not 1 <= size <= limits.MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {limits.MAX_PAGE}", field=["first"])
    if after is None:
        return size, None
    key = decode_as(after, type_name)
    if key is None:
        raise InvalidInput("after is not a cursor from this API", field=["after"])
    return size, key


def decode_as(global_id: str, type_name: str) -> int | None:
    decoded = decode(global_id)
    if decoded is None or decoded[0] != type_name:
        return None
    return decoded[1]
