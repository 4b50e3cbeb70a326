"""Opaque global IDs for the Relay ``Node`` interface: base64url of ``Type:key``."""

from __future__ import annotations

import base64
import binascii

TYPES = frozenset({"Transaction", "Hold", "Partner", "Member", "SettlementRun"})


def encode(type_name: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def decode(global_id: str) -> tuple[str, int] | None:
    """(type, key), or None for anything that is not one of our IDs."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, key = base64.urlsafe_b64decode(padded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if type_name not in TYPES or not key.isdigit() or len(key) > 19:
        return None
    return type_name, int(key)


def decode_as(global_id: str, type_name: str) -> int | None:
    decoded = decode(global_id)
    if decoded is None or decoded[0] != type_name:
        return None
    return decoded[1]
