"""A caller's row-level-security scope is bound in the same round trip as the
transaction's BEGIN, and never outlives the transaction it was bound for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from exchange.kit import db
from exchange.kit.db import Database, RowScope, scope_binding, sql
from exchange.kit.system import SYSTEM

READ = sql(
    "SELECT current_user, current_setting('exchange.principal_kind', true),"
    " current_setting('exchange.partner_id', true), current_setting('exchange.client_id', true)"
)


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[Database]:
    """A database of one pooled connection: every transaction reuses it."""
    database = Database(database_url, pool_size=1, max_overflow=0)
    yield database
    await database.dispose()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every plain query the driver sends (BEGIN, COMMIT, ...), by the real driver."""
    queries: list[str] = []
    original = asyncpg.Connection.execute

    async def spy(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        queries.append(query)
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "execute", spy)
    return queries


async def test_the_binding_is_sent_with_begin_in_one_round_trip(
    one_connection: Database, sent: list[str]
) -> None:
    scope = RowScope(kind="PARTNER", partner_id=42, client_id="client-42")

    async with one_connection.transaction(scope) as conn:
        seen = (await conn.execute(READ)).one()

    bindings = [query for query in sent if "set_config('role'" in query]
    assert len(bindings) == 1
    assert bindings[0].startswith("BEGIN")  # one message: BEGIN, then the binding
    assert bindings[0].endswith(scope_binding(scope))
    assert tuple(seen) == ("exchange_api", "PARTNER", "42", "client-42")


async def test_a_quote_in_a_value_stays_inside_its_literal(one_connection: Database) -> None:
    scope = RowScope(kind="PARTNER", partner_id=7, client_id="o'brien'); SELECT 1; --")

    async with one_connection.transaction(scope) as conn:
        seen = (await conn.execute(READ)).one()

    assert seen[3] == "o'brien'); SELECT 1; --"


def test_a_value_that_could_break_out_of_a_literal_is_refused() -> None:
    with pytest.raises(ValueError, match="backslash"):
        scope_binding(RowScope(kind="PARTNER", partner_id=1, client_id="a\\'b"))


async def test_a_binding_no_statement_used_does_not_reach_the_next_transaction(
    one_connection: Database,
) -> None:
    async with one_connection.transaction(RowScope(kind="PARTNER", partner_id=9)):
        pass  # nothing ran: BEGIN and the binding were never sent
    async with one_connection.transaction(SYSTEM) as conn:
        user, kind, partner, _client = (await conn.execute(READ)).one()

    assert user != "exchange_api"
    assert not kind
    assert not partner


async def test_a_failed_binding_leaves_no_open_transaction_behind(
    one_connection: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "scope_binding", lambda scope: "SELECT 1/0;")
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with one_connection.transaction(RowScope(kind="PARTNER", partner_id=3)) as conn:
            await conn.execute(READ)
    monkeypatch.undo()

    # The pool's one connection is not left inside the aborted transaction: a statement
    # there would fail ("current transaction is aborted").
    async with one_connection.transaction(SYSTEM) as conn:
        assert (await conn.execute(sql("SELECT 1"))).scalar_one() == 1
