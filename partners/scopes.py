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
        "insights:read",
        # Delegable to a member token obtained by token exchange.
        "wallet:read",
        "wallet:transfer",
        "offers:write",
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
        "insights:read",
    }
)
#: ``consent:write`` is never delegable: a partner's token exchange refuses it; it comes
#: from the member's own sign-in (an operator records consent with ``exchange member
#: consent``).
MEMBER_SCOPES = frozenset({"wallet:read", "wallet:transfer", "offers:write", "consent:write"})
NOT_DELEGABLE = frozenset({"consent:write"})
ALL_SCOPES = PARTNER_SCOPES | OPERATOR_SCOPES | MEMBER_SCOPES


def parse_scopes(value: str | None) -> list[str]:
    """A space-separated scope string as a sorted list without duplicates."""
    return sorted(set((value or "").split()))
