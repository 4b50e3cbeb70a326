"""OAuth scopes: what each kind of principal may be granted (DESIGN.md section 5)."""

from __future__ import annotations

PARTNER_SCOPES = frozenset(
    {
        "points:earn",
        "points:redeem",
        "points:reverse",
        "members:link",
        "members:read",
        "transactions:read",
        "settlement:read",
        "campaigns:read",
        "campaigns:write",
        "webhooks:write",
        # Delegable to a member token obtained by token exchange.
        "wallet:read",
        "wallet:transfer",
    }
)
OPERATOR_SCOPES = frozenset(
    {
        "partners:admin",
        "settlement:run",
        "settlement:read:all",
        "ledger:read:all",
        "campaigns:read",
        "campaigns:write",
        "webhooks:write",
    }
)
MEMBER_SCOPES = frozenset({"wallet:read", "wallet:transfer"})
ALL_SCOPES = PARTNER_SCOPES | OPERATOR_SCOPES | MEMBER_SCOPES


def parse_scopes(value: str | None) -> list[str]:
    """A space-separated scope string as a sorted list without duplicates."""
    return sorted(set((value or "").split()))
