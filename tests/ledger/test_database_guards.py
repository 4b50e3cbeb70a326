"""The database is the last line of defence: it refuses unbalanced entries, changes to
append-only rows and impossible balances even when the Python code is bypassed."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from exchange.kit.db import Database, metadata, sql
from exchange.kit.system import SYSTEM
from tests.conftest import Factory

UNBALANCED = """
WITH entry AS (
    INSERT INTO ledger_entry (kind, points, created_at, effective_at)
    VALUES ('ADJUSTMENT', 10, now(), now()) RETURNING id
)
INSERT INTO ledger_posting (entry_id, account_id, amount)
SELECT entry.id, a.id, 10 FROM entry, ledger_account a
WHERE a.kind = 'MEMBER_WALLET' AND a.member_id = :member
"""


async def test_an_unbalanced_entry_inserted_with_raw_sql_is_refused_at_commit(
    make: Factory,
) -> None:
    alice = await make.member()

    with pytest.raises(asyncpg.PostgresError, match=r"unbalanced|at least two"):
        async with make.db.transaction(SYSTEM) as conn:
            await conn.execute(sql(UNBALANCED), {"member": alice})

    async with make.db.transaction(SYSTEM) as conn:
        count = (
            await conn.execute(
                sql(
                    "SELECT count(*) FROM ledger_entry WHERE member_id IS NULL AND points = 10"
                    " AND kind = 'ADJUSTMENT' AND client_id IS NULL AND metadata = '{}'"
                )
            )
        ).scalar()
    assert count == 0


async def test_a_posting_added_later_to_a_balanced_entry_is_refused(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 10)

    with pytest.raises(asyncpg.PostgresError, match="unbalanced"):
        async with make.db.transaction(SYSTEM) as conn:
            await conn.execute(
                sql(
                    "INSERT INTO ledger_posting (entry_id, account_id, amount)"
                    " SELECT :entry, id, 5 FROM ledger_account"
                    " WHERE member_id = :member AND kind = 'MEMBER_WALLET'"
                ),
                {"entry": earned.entry_id, "member": alice},
            )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_posting SET amount = amount * 2 WHERE entry_id = :entry",
        "DELETE FROM ledger_posting WHERE entry_id = :entry",
        "UPDATE ledger_entry SET points = 1 WHERE id = :entry",
        "DELETE FROM ledger_entry WHERE id = :entry",
        "DELETE FROM ledger_lot_consumption WHERE entry_id = :entry",
        "TRUNCATE ledger_posting CASCADE",
    ],
)
async def test_entries_postings_and_consumptions_are_append_only(
    make: Factory, statement: str
) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 10)
    redeemed = await make.redeem(coffee, alice, 4)  # an entry with postings and consumptions

    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        async with make.db.transaction(SYSTEM) as conn:
            await conn.execute(sql(statement), {"entry": redeemed.entry_id})


async def test_a_held_balance_can_not_go_negative(make: Factory) -> None:
    alice = await make.member()

    with pytest.raises(asyncpg.PostgresError, match="held_not_negative"):
        async with make.db.transaction(SYSTEM) as conn:
            await conn.execute(
                sql(
                    "UPDATE ledger_account SET balance = -1"
                    " WHERE member_id = :member AND kind = 'MEMBER_HELD'"
                ),
                {"member": alice},
            )


async def test_the_migrated_schema_matches_the_table_definitions(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import exchange.audit.tables
    import exchange.events.tables
    import exchange.insights.tables
    import exchange.ledger.tables
    import exchange.loyalty.tables  # noqa: F401
    import partners.tables  # noqa: F401
    import settlement.tables  # noqa: F401

    def differences(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection)
        return compare_metadata(context, metadata)

    engine = create_async_engine(db.url)  # Alembic compares through SQLAlchemy
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()

    assert diff == []
