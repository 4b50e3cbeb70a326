"""Accounts: a partner's issued and redeemed accounts (with the policy flags `partners`
sets on them), a member's wallet and held accounts, the coalition's accounts."""

from __future__ import annotations

from exchange.kit.db import Connection
from exchange.kit.errors import Kind, NotFound, Ref
from exchange.ledger import repository
from exchange.ledger.models import PartnerPolicy


async def open_partner(
    conn: Connection, *, partner_id: int, policy: PartnerPolicy | None = None
) -> None:
    """Open a partner's issued and redeemed accounts (idempotent)."""
    await repository.open_partner_accounts(
        conn, partner_id=partner_id, policy=policy or PartnerPolicy()
    )


async def set_partner_policy(conn: Connection, *, partner_id: int, policy: PartnerPolicy) -> None:
    if not await repository.set_partner_policy(conn, partner_id=partner_id, policy=policy):
        raise NotFound(
            "partner {partner} has no ledger accounts",
            field=["partnerId"],
            refs={"partner": Ref(Kind.PARTNER, partner_id)},
        )


async def open_member(conn: Connection) -> int:
    """Open a new member's wallet and held accounts; returns the member id."""
    return (await open_members(conn, count=1))[0]


async def open_members(conn: Connection, *, count: int) -> list[int]:
    """Open many members at once (a seed at scale); their ids, ascending."""
    return await repository.open_members(conn, count=count)
