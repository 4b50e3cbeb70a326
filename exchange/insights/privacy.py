"""GDPR for insights: what an export adds (profiles, consent, purchases with their
personal fields, offers) and what an erasure deletes (run by the operator's ``exchange
member export|erase``, in the same transaction as the identity's)."""

from __future__ import annotations

from typing import Any

from exchange.insights import repository
from exchange.kit.db import Connection


async def export(conn: Connection, *, member_id: int) -> dict[str, Any]:
    row = await repository.member_export(conn, member_id=member_id)
    return {
        "profiles": row.profiles,
        "consentCrossPartner": bool(row.consent),
        "purchases": row.purchases,
        "offers": row.offers,
    }


async def erase(conn: Connection, *, member_id: int) -> int:
    """Delete the member's insights and clear its purchases' personal fields; the
    purchases cleared."""
    return await repository.forget_member(conn, member_id=member_id)
