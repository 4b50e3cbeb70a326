"""Read models of the ledger: a member's wallet, expiring points, entries and lots."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import InvalidInput, NotFound
from exchange.ledger import repository
from exchange.ledger.models import AccountKind, ExpiringPoints, IssuerBalance, Wallet

MAX_EXPIRING_WITHIN_DAYS = 3660


async def wallet(conn: AsyncConnection, *, member_id: int) -> Wallet:
    balances = await repository.member_balances(conn, member_id=member_id)
    if AccountKind.MEMBER_WALLET not in balances:
        raise NotFound(f"member {member_id} does not exist", field=["memberId"])
    by_issuer = await repository.balance_by_issuer(conn, member_id=member_id)
    return Wallet(
        member_id=member_id,
        available=balances[AccountKind.MEMBER_WALLET],
        held=balances.get(AccountKind.MEMBER_HELD, 0),
        by_issuer=[
            IssuerBalance(issuer_partner_id=row.issuer_partner_id, points=int(row.points))
            for row in by_issuer
        ],
    )


async def expiring(
    conn: AsyncConnection, *, member_id: int, now: datetime, within_days: int = 30
) -> list[ExpiringPoints]:
    if not 0 <= within_days <= MAX_EXPIRING_WITHIN_DAYS:
        raise InvalidInput(
            f"withinDays must be between 0 and {MAX_EXPIRING_WITHIN_DAYS}",
            field=["withinDays"],
        )
    rows = await repository.expiring_lots(
        conn, member_id=member_id, now=now, until=now + timedelta(days=within_days)
    )
    return [
        ExpiringPoints(
            issuer_partner_id=row.issuer_partner_id,
            points=int(row.points),
            expires_at=row.expires_at,
        )
        for row in rows
    ]
