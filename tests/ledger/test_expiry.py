"""Worked examples: expiry sweeps lots past their date into coalition breakage,
attributed to the issuing partner."""

from __future__ import annotations

from datetime import timedelta

from exchange import ledger
from exchange.kit.system import SYSTEM
from tests.conftest import NOW, Factory
from tests.ledger.helpers import lots


async def _expire_all(make: Factory, as_of):  # type: ignore[no-untyped-def]
    total = 0
    while True:
        async with make.db.transaction(SYSTEM) as conn:
            batch = await ledger.expire_batch(conn, as_of=as_of, limit=50)
        if batch.members == 0:
            return total
        total += batch.points


async def test_expiry_moves_what_is_left_of_expired_lots_into_breakage(make: Factory) -> None:
    coffee = await make.partner()
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 100, expires_at=NOW + timedelta(days=5))
    await make.earn(cinema, alice, 40, expires_at=NOW + timedelta(days=50))
    await make.redeem(cinema, alice, 30)  # 30 of coffee's lot; 70 left to expire
    as_of = NOW + timedelta(days=6)

    await _expire_all(make, as_of)

    wallet = await make.wallet(alice)
    assert wallet.balance == 40
    assert [(lot.issuer_partner_id, lot.remaining) for lot in await lots(make.db, alice)] == [
        (coffee, 0),
        (cinema, 40),
    ]
    async with make.db.transaction(SYSTEM) as conn:
        rows = await conn.execute(
            "SELECT c.kind, c.points, c.issuer_partner_id FROM ledger_lot_consumption c"
            " JOIN ledger_lot l ON l.id = c.lot_id"
            f" WHERE l.member_id = {int(alice)} AND c.kind = 'EXPIRY'"
        )
        assert [tuple(row) for row in rows] == [("EXPIRY", 70, coffee)]


async def test_expiry_runs_are_idempotent_by_construction(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 10, expires_at=NOW + timedelta(days=1))
    as_of = NOW + timedelta(days=2)

    await _expire_all(make, as_of)
    second = await _expire_all(make, as_of)

    assert second == 0
    assert (await make.wallet(alice)).balance == 0


async def test_points_not_yet_expired_are_reported_as_expiring(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 10, expires_at=NOW + timedelta(days=20))
    await make.earn(coffee, alice, 15, expires_at=NOW + timedelta(days=90))

    async with make.db.transaction(SYSTEM) as conn:
        soon = await ledger.expiring(conn, member_id=alice, now=NOW, within_days=30)

    assert [(e.issuer_partner_id, e.points, e.expires_at) for e in soon] == [
        (coffee, 10, NOW + timedelta(days=20))
    ]
