"""The async engine and the unit of work.

One request, one transaction: the edge (the use-case runner, a CLI command, a background
task) opens :meth:`Database.transaction`, passes the connection to the use case, and the
context manager commits on success or rolls back on any exception. Domain code never
commits.

Every transaction names who it acts for. A caller's :class:`RowScope` runs it as the
``exchange_api`` role under row-level security for that caller (docs/decisions/0004);
work that has no caller (the token endpoint, sweeps, the CLI) passes the system scope
of :mod:`exchange.kit.system`, which only those entry points may import (an
import-linter contract). There is no transaction without a scope. The binding is sent
in the same round trip as the transaction's BEGIN (:class:`ScopedConnection`,
decision 0019).

A write that must reach another caller's rows (a transfer credits the recipient's
wallet) is admitted only for the ids a use case names with :func:`grant` once it has
checked the right to act on them, and only where the policies say such a write goes
(docs/decisions/0009).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy import MetaData, TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from exchange.kit.embedded import start_embedded, to_async_url
from exchange.kit.errors import DatabaseUnavailable
from exchange.kit.settings import Settings

#: One metadata for every package's tables, so Alembic sees the whole schema.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded server (started on demand)."""
    if settings.database_url:
        return to_async_url(settings.database_url)
    return start_embedded(settings.ensure_home())


@dataclass(frozen=True)
class RowScope:
    """Who a transaction acts for, as row-level security sees it (migration 0003).

    ``kind`` is OPERATOR, PARTNER or MEMBER; ``client_id`` the OAuth client the caller
    acts through (it owns that client's limit buckets, migration 0013). Bound per
    transaction; a transaction bound to no scope but running as ``exchange_api`` sees no
    partner-scoped row at all.
    """

    kind: str
    partner_id: int | None = None
    member_id: int | None = None
    client_id: str = ""


class SystemScope:
    """Work with no caller, as the owning role (row-level security does not restrict
    it). The one instance is :data:`exchange.kit.system.SYSTEM`."""

    def __init__(self, _token: object) -> None:
        if _token is not _SYSTEM_TOKEN:
            raise TypeError("the system scope is exchange.kit.system.SYSTEM")

    def __repr__(self) -> str:
        return "SYSTEM"


_SYSTEM_TOKEN = object()

CONNECT_TIMEOUT_SECONDS = 5

Scope = RowScope | SystemScope


@lru_cache(maxsize=1024)
def sql(statement: str) -> TextClause:
    """A textual statement, built once: ``text()`` parses the bind parameters out of the
    string on every call, which costs more CPU than sending the statement. Only for
    statements written in code (the cache is keyed by the string)."""
    return text(statement)


_BIND_SCOPE = text(
    "SELECT set_config('role', 'exchange_api', true),"
    " set_config('exchange.principal_kind', :kind, true),"
    " set_config('exchange.partner_id', :partner_id, true),"
    " set_config('exchange.member_id', :member_id, true),"
    " set_config('exchange.client_id', :client_id, true)"
)


class ScopedConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that sends a pending row-security binding in the same round
    trip as the BEGIN of its next transaction: asyncpg starts a transaction with a plain
    query (the simple protocol), which may hold several statements, so ``BEGIN; SELECT
    set_config(...)`` costs one round trip instead of two. The binding is consumed by that
    BEGIN; :meth:`Database.transaction` clears one that no statement used."""

    pending_binding: str | None = None

    async def execute(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (asyncpg's signature, overridden)
    ) -> str:
        binding = self.pending_binding
        if binding is None or args or not query.startswith("BEGIN"):
            status: str = await super().execute(query, *args, timeout=timeout)
            return status
        self.pending_binding = None
        try:
            status = await super().execute(f"{query} {binding}", timeout=timeout)
        except BaseException:
            # BEGIN may have succeeded and the binding failed: never hand the connection
            # back inside an aborted transaction asyncpg does not know it started.
            if not self.is_closed() and self._protocol.is_in_transaction():
                with suppress(Exception):
                    await super().execute("ROLLBACK")
            raise
        return status


def _literal(value: str) -> str:
    """A string literal for a binding sent without parameters (the simple protocol). The
    values are ours (a scope's kind, ids, an OAuth client id), and refused if they hold
    what a literal could be broken out of."""
    if "\x00" in value or "\\" in value:
        raise ValueError("a row scope value holds a NUL or a backslash")
    return "'" + value.replace("'", "''") + "'"


def scope_binding(scope: RowScope) -> str:
    """The statement that binds ``scope`` (the same settings as :data:`_BIND_SCOPE`)."""
    return (
        "SELECT set_config('role', 'exchange_api', true),"
        f" set_config('exchange.principal_kind', {_literal(scope.kind)}, true),"
        f" set_config('exchange.partner_id', {_literal(str(scope.partner_id or ''))}, true),"
        f" set_config('exchange.member_id', {_literal(str(scope.member_id or ''))}, true),"
        f" set_config('exchange.client_id', {_literal(scope.client_id)}, true);"
    )


async def _bind(connection: AsyncConnection, scope: RowScope) -> ScopedConnection | None:
    """Bind ``scope`` to the transaction ``connection`` has begun: with its BEGIN when that
    is still to be sent (the connection returned, to clear the binding after), else by a
    statement of its own."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    not_begun = getattr(raw.dbapi_connection, "_transaction", False) is None
    if isinstance(driver, ScopedConnection) and not_begun:
        driver.pending_binding = scope_binding(scope)
        return driver
    await connection.execute(
        _BIND_SCOPE,
        {
            "kind": scope.kind,
            "partner_id": str(scope.partner_id or ""),
            "member_id": str(scope.member_id or ""),
            "client_id": scope.client_id,
        },
    )
    return None


_GRANT = text(
    "SELECT set_config('exchange.granted_members', concat_ws(',',"
    " nullif(current_setting('exchange.granted_members', true), ''),"
    " CAST(:members AS text)), true),"
    " set_config('exchange.granted_partners', concat_ws(',',"
    " nullif(current_setting('exchange.granted_partners', true), ''),"
    " CAST(:partners AS text)), true)"
)


async def grant(
    conn: AsyncConnection, *, members: Iterable[int] = (), partners: Iterable[int] = ()
) -> None:
    """Let this transaction write where row-level security admits granted ids: for
    ``members``, their wallet account and new lots (a transfer's recipient); for
    ``partners``, their issued account, its shards and EARN entries issued from it (a
    co-funded campaign's funder). Nothing else of theirs becomes visible; a later
    transaction has no grant. Call it only after checking the caller may act on them.
    Grants add up within a transaction."""
    member_ids = [int(member_id) for member_id in members]
    partner_ids = [int(partner_id) for partner_id in partners]
    if not member_ids and not partner_ids:
        return
    await conn.execute(
        _GRANT,
        {
            "members": ",".join(map(str, member_ids)) or None,
            "partners": ",".join(map(str, partner_ids)) or None,
        },
    )


@dataclass
class Database:
    engine: AsyncEngine

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int | None = None,
        pool_timeout_seconds: float = 30,
    ) -> Database:
        """An engine of ``pool_size`` kept connections and ``max_overflow`` (default as
        many again) opened beyond them for one use; a connection not had within
        ``pool_timeout_seconds`` fails the transaction as unavailable (a 503)."""
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size if max_overflow is None else max_overflow,
            pool_timeout=pool_timeout_seconds,
            pool_pre_ping=False,
            # A server that does not answer fails the request in seconds (a 503), not
            # after asyncpg's default minute.
            connect_args={
                "server_settings": {"application_name": "exchange"},
                "timeout": CONNECT_TIMEOUT_SECONDS,
                # The row-security binding rides with BEGIN (one round trip less).
                "connection_class": ScopedConnection,
            },
        )
        return cls(engine=engine)

    @asynccontextmanager
    async def transaction(self, scope: Scope) -> AsyncIterator[AsyncConnection]:
        """A unit of work: commits when the block succeeds, rolls back otherwise.

        A caller's ``scope`` (every API request) runs it as ``exchange_api`` under
        row-level security for that caller; the system scope runs it as the owner. A
        database that can't be reached, or a connection lost on the way, raises
        :class:`DatabaseUnavailable` (saying at which stage), whatever the driver said.
        """
        if not isinstance(scope, RowScope | SystemScope):
            raise TypeError(f"a transaction needs a scope, not {scope!r}")
        stage = "connect"
        try:
            async with self.engine.begin() as connection:
                stage = "work"
                bound = await _bind(connection, scope) if isinstance(scope, RowScope) else None
                try:
                    yield connection
                finally:
                    if bound is not None:  # unused when the block ran no statement
                        bound.pending_binding = None
                stage = "commit"
        except DatabaseUnavailable:
            raise
        except Exception as error:
            if stage == "connect" or is_disconnect(error):
                raise DatabaseUnavailable(stage) from error
            raise

    async def dispose(self) -> None:
        await self.engine.dispose()


#: SQLSTATEs of failures that a fresh attempt of the same transaction may not meet:
#: deadlock_detected and serialization_failure.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


#: SQLSTATEs that mean the connection is gone or the server will not serve it: class 08
#: (connection exceptions), admin/crash shutdown, cannot connect now, too many
#: connections.
DISCONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _causes(error: BaseException) -> Iterator[BaseException]:
    cause: BaseException | None = error
    seen = 0
    while cause is not None and seen < 10:
        yield cause
        cause, seen = cause.__cause__ or getattr(cause, "orig", None), seen + 1


def is_transient(error: BaseException) -> bool:
    """A database failure that rolling back and running the unit of work again cures: a
    deadlock, a serialization failure, or a connection lost before commit (the rerun
    takes a fresh one; nothing of the lost attempt was committed)."""
    for cause in _causes(error):
        if getattr(cause, "sqlstate", None) in TRANSIENT_SQLSTATES:
            return True
        if isinstance(cause, DatabaseUnavailable) and cause.stage == "work":
            return True
    return False


def is_disconnect(error: BaseException) -> bool:
    """The connection is gone (or the server refuses to serve it), as opposed to a
    statement the database refused."""
    for cause in _causes(error):
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True  # SQLAlchemy saw the connection go
        if isinstance(cause, asyncpg.PostgresConnectionError):
            return True
        sqlstate = str(getattr(cause, "sqlstate", "") or "")
        if sqlstate in DISCONNECT_SQLSTATES or sqlstate.startswith("08"):
            return True
    return False
