"""The spelling of a global ID (Relay's ``Node`` ids): base64url of ``Type:key``, without
padding. The GraphQL schema reads and writes them (graphql_schema.ids); webhook payloads
carry them too, so a partner matches an event with what the API returned."""

from __future__ import annotations

import base64


def encode(type_name: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")
