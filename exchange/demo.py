"""A small demo coalition for ``exchange serve --demo``: three partners, a few members
and some history. Seeding twice does nothing the second time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange import ledger
from exchange.ledger.models import PartnerPolicy

DEMO_CLIENT = "demo-seed"

PARTNERS = {
    1: ("Bean There Coffee", PartnerPolicy(points_lifetime_days=365)),
    2: ("Reel Cinemas", PartnerPolicy(points_lifetime_days=540)),
    3: (
        "Fresh Basket Grocers",
        PartnerPolicy(points_lifetime_days=365, credit_limit_points=10_000_000),
    ),
}


@dataclass(frozen=True)
class DemoSummary:
    seeded: bool
    partners: dict[int, str]
    members: list[int]


async def seed(conn: AsyncConnection, *, now: datetime) -> DemoSummary:
    names = {partner_id: name for partner_id, (name, _) in PARTNERS.items()}
    for partner_id, (_, policy) in PARTNERS.items():
        await ledger.open_partner(conn, partner_id=partner_id, policy=policy)
    marker = await conn.execute(
        text("SELECT member_id FROM ledger_entry WHERE client_id = :client"),
        {"client": DEMO_CLIENT},
    )
    existing = sorted({row.member_id for row in marker})
    if existing:
        return DemoSummary(seeded=False, partners=names, members=existing)
    members = [await ledger.open_member(conn) for _ in range(4)]
    key = iter(range(1, 1000))
    history = [
        (ledger.earn, 1, members[0], 1_200),
        (ledger.earn, 2, members[0], 800),
        (ledger.earn, 3, members[1], 5_000),
        (ledger.earn, 1, members[2], 300),
        (ledger.redeem, 2, members[0], 1_000),
        (ledger.redeem, 1, members[1], 1_500),
    ]
    for operation, partner_id, member_id, points in history:
        await operation(
            conn,
            client_id=DEMO_CLIENT,
            idempotency_key=f"demo-{next(key)}",
            partner_id=partner_id,
            member_id=member_id,
            points=points,
            now=now,
        )
    await ledger.transfer(
        conn,
        client_id=DEMO_CLIENT,
        idempotency_key=f"demo-{next(key)}",
        from_member_id=members[1],
        to_member_id=members[3],
        points=500,
        now=now,
    )
    return DemoSummary(seeded=True, partners=names, members=members)
