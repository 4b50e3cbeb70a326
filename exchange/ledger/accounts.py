"""Accounts: a partner's issued and redeemed accounts (with the policy flags `partners`
sets on them), a member's wallet and held accounts, the coalition's accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import NotFound
from exchange.ledger import repository
from exchange.ledger.models import AccountKind, PartnerPolicy


async def open_partner(
    conn: AsyncConnection, *, partner_id: int, policy: PartnerPolicy | None = None
) -> None:
    """Open a partner's issued and redeemed accounts (idempotent)."""
    await repository.open_partner_accounts(
        conn, partner_id=partner_id, policy=policy or PartnerPolicy()
    )


async def set_partner_policy(
    conn: AsyncConnection, *, partner_id: int, policy: PartnerPolicy
) -> None:
    if not await repository.set_partner_policy(conn, partner_id=partner_id, policy=policy):
        raise NotFound(f"partner {partner_id} has no ledger accounts", field=["partnerId"])


async def open_member(conn: AsyncConnection) -> int:
    """Open a new member's wallet and held accounts; returns the member id."""
    return (await open_members(conn, count=1))[0]


async def open_members(conn: AsyncConnection, *, count: int) -> list[int]:
    """Open many members at once (a seed at scale); their ids, ascending."""
    return await repository.open_members(conn, count=count)


async def partner_account(conn: AsyncConnection, partner_id: int, kind: AccountKind) -> Row[Any]:
    """A partner's account with its policy flags, or NOT_FOUND."""
    account = await repository.partner_account(conn, partner_id=partner_id, kind=kind)
    if account is None:
        raise NotFound(f"partner {partner_id} is not known to the ledger", field=["partnerId"])
    return account


async def coalition_account(conn: AsyncConnection, kind: AccountKind) -> int:
    return await repository.coalition_account_id(conn, kind=kind)
