"""How a statement written in code reaches asyncpg: ``:name`` parameters numbered once,
casts and times left alone, a missing value refused before anything is sent, rows read
by position, name and attribute, and the rows a write changed counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=1, max_overflow=0)
    yield database
    await database.dispose()


def test_each_parameter_is_numbered_once_and_casts_and_times_are_left_alone() -> None:
    statement = sql(
        "SELECT :a, CAST(:b AS int), x::text, '00:00:00', :a_2 FROM t WHERE y = :b AND z = :a"
    )

    assert statement.text == (
        "SELECT $1, CAST($2 AS int), x::text, '00:00:00', $3 FROM t WHERE y = $2 AND z = $1"
    )
    assert statement.names == ("a", "b", "a_2")


def test_a_name_run_into_a_cast_is_not_taken_for_a_shorter_name() -> None:
    # ':name::text' is not a parameter (write CAST(:name AS text)); it must not become
    # '$1e::text' by matching ':nam'.
    assert sql("SELECT :name::text").names == ()


async def test_rows_read_by_position_name_and_attribute(database: Database) -> None:
    async with database.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql("SELECT CAST(:n AS int) AS n, CAST(:s AS text) AS label, '{\"a\": 1}'::jsonb AS j"),
            {"n": 7, "s": "seven"},
        )

    row = result.one()
    assert (row[0], row["label"], row.n) == (7, "seven", 7)
    assert row.j == {"a": 1}  # JSON comes back as Python values
    with pytest.raises(AttributeError):
        _ = row.missing


async def test_a_missing_value_is_refused_before_anything_is_sent(database: Database) -> None:
    with database.watching() as sent, pytest.raises(TypeError, match="no value for m"):
        async with database.transaction(SYSTEM) as conn:
            await conn.execute(sql("SELECT CAST(:n AS int) + CAST(:m AS int)"), {"n": 1})

    assert sent == []


async def test_a_write_says_how_many_rows_it_changed(database: Database) -> None:
    async with database.transaction(SYSTEM) as conn:
        await conn.execute(sql("CREATE TEMPORARY TABLE counted (n int) ON COMMIT DROP"))
        inserted = await conn.affected(
            sql("INSERT INTO counted SELECT generate_series(1, CAST(:k AS int))"), {"k": 5}
        )
        updated = await conn.affected(sql("UPDATE counted SET n = n + 1 WHERE n > 3"))

    assert (inserted, updated) == (5, 2)
