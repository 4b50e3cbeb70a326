"""The connection pool and the unit of work.

One request, one transaction: the edge (the use-case runner, a CLI command, a background
task) opens :meth:`Database.transaction`, passes the connection to the use case, and the
context manager commits on success or rolls back on any exception. Domain code never
commits.

Every transaction names who it acts for. A caller's :class:`RowScope` runs it as the
``exchange_api`` role under row-level security for that caller (docs/decisions/0004);
work that has no caller (the token endpoint, sweeps, the CLI) passes the system scope
of :mod:`exchange.kit.system`, which only those entry points may import (an
import-linter contract). There is no transaction without a scope. The binding is sent
in the same round trip as the transaction's BEGIN (decision 0019).

Statements run on asyncpg directly (decision 0025): written in code with ``:name``
parameters (:func:`sql`), prepared once per connection, rows read by name or attribute.
SQLAlchemy describes the schema (the tables, for Alembic's migrations) and runs nothing.

A write that must reach another caller's rows (a transfer credits the recipient's
wallet) is admitted only for the ids a use case names with :func:`grant` once it has
checked the right to act on them, and only where the policies say such a write goes
(docs/decisions/0009).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
import sqlalchemy
from sqlalchemy import MetaData

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


class Row(asyncpg.Record):  # type: ignore[misc]
    """A result row: by position, by column name (``row["id"]``) and as an attribute
    (``row.id``). A column named like one of the record's methods (``keys``, ``values``,
    ``items``, ``get``) must be read by name."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Statement:
    """A statement written in code, ready for the driver: ``:name`` parameters numbered
    (``$1``...), and the names in the order the driver takes their values."""

    text: str
    names: tuple[str, ...]


#: ``:name``, but not a ``::type`` cast or a time like ``00:00``.
_PARAMETER = re.compile(r"(?<![:\w\\]):([A-Za-z_]\w*)(?![:\w])")


@lru_cache(maxsize=2048)
def sql(statement: str) -> Statement:
    """A statement written in code with ``:name`` parameters, numbered once (the cache is
    keyed by the string, so only for statements written in code)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return Statement(_PARAMETER.sub(number, statement), tuple(names))


class Result:
    """The rows a statement returned."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)

    def all(self) -> list[Row]:
        return self._rows

    def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Row:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar(self) -> Any:
        """The first column of the first row (None without a row)."""
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self._rows)}")
        return self.scalar()

    def scalars(self) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self._rows]


Observer = Callable[[str], None]


class Connection:
    """One transaction's connection, as use cases and repositories see it: statements
    run on asyncpg directly (prepared, binary protocol), the transaction begun with the
    first of them, in the same round trip as the caller's row-security binding."""

    __slots__ = ("_begin", "_begun", "_observers", "_raw")

    def __init__(self, raw: asyncpg.Connection, begin: str, observers: list[Observer]) -> None:
        self._raw = raw
        self._begin = begin
        self._begun = False
        self._observers = observers

    async def execute(
        self, statement: Statement | str, params: Mapping[str, Any] | None = None
    ) -> Result:
        """Run a statement (from :func:`sql`, or its text) with its named parameters."""
        query, args = await self._ready(statement, params)
        rows: list[Row] = await self._raw.fetch(query, *args)
        return Result(rows)

    async def affected(
        self, statement: Statement | str, params: Mapping[str, Any] | None = None
    ) -> int:
        """Run a statement that returns no rows; how many rows it inserted, updated or
        deleted (its command tag)."""
        query, args = await self._ready(statement, params)
        status: str = await self._raw.execute(query, *args)
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def _ready(
        self, statement: Statement | str, params: Mapping[str, Any] | None
    ) -> tuple[str, list[Any]]:
        """The statement's text and its values in order, the transaction begun."""
        if isinstance(statement, str):
            statement = sql(statement)
        given = params or {}
        try:
            args = [given[name] for name in statement.names]
        except KeyError as missing:
            raise TypeError(f"no value for {missing.args[0]} in {statement.text!r}") from None
        if not self._begun:
            await self._send_begin()
        for observe in self._observers:
            observe(statement.text)
        return statement.text, args

    async def copy_records(
        self, table: str, *, records: list[tuple[Any, ...]], columns: list[str]
    ) -> None:
        """Rows into ``table`` by COPY, in this transaction."""
        if not self._begun:
            await self._send_begin()
        await self._raw.copy_records_to_table(table, records=records, columns=columns)

    async def _send_begin(self) -> None:
        self._begun = True
        for observe in self._observers:
            observe(self._begin)
        await self._raw.execute(self._begin)

    async def _commit(self) -> None:
        if self._begun:
            await self._raw.execute("COMMIT")

    async def _rollback(self) -> None:
        if self._begun and not self._raw.is_closed():
            with suppress(Exception):
                await self._raw.execute("ROLLBACK")


def _literal(value: str) -> str:
    """A string literal for a binding sent without parameters (the simple protocol). The
    values are ours (a scope's kind, ids, an OAuth client id), and refused if they hold
    what a literal could be broken out of."""
    if "\x00" in value or "\\" in value:
        raise ValueError("a row scope value holds a NUL or a backslash")
    return "'" + value.replace("'", "''") + "'"


def scope_binding(scope: RowScope) -> str:
    """The statement that binds ``scope`` to a transaction (row-level security reads
    these settings, migration 0003); sent after BEGIN in the same round trip."""
    return (
        "SELECT set_config('role', 'exchange_api', true),"
        f" set_config('exchange.principal_kind', {_literal(scope.kind)}, true),"
        f" set_config('exchange.partner_id', {_literal(str(scope.partner_id or ''))}, true),"
        f" set_config('exchange.member_id', {_literal(str(scope.member_id or ''))}, true),"
        f" set_config('exchange.client_id', {_literal(scope.client_id)}, true);"
    )


_GRANT = sql(
    "SELECT set_config('exchange.granted_members', concat_ws(',',"
    " nullif(current_setting('exchange.granted_members', true), ''),"
    " CAST(:members AS text)), true),"
    " set_config('exchange.granted_partners', concat_ws(',',"
    " nullif(current_setting('exchange.granted_partners', true), ''),"
    " CAST(:partners AS text)), true)"
)


async def grant(
    conn: Connection, *, members: Iterable[int] = (), partners: Iterable[int] = ()
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


def _json_decoder(value: bytes) -> Any:
    return json.loads(value)


def _jsonb_encoder(value: str) -> bytes:
    return b"\x01" + value.encode()


def _jsonb_decoder(value: bytes) -> Any:
    return json.loads(value[1:])


async def _setup_codecs(connection: asyncpg.Connection) -> None:
    """JSON read as Python values and written from JSON text, for every new connection."""
    await connection.set_type_codec(
        "json", encoder=str.encode, decoder=_json_decoder, schema="pg_catalog", format="binary"
    )
    await connection.set_type_codec(
        "jsonb",
        encoder=_jsonb_encoder,
        decoder=_jsonb_decoder,
        schema="pg_catalog",
        format="binary",
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool: every setting a
    transaction makes is its own (``set_config(..., true)``, ``SET LOCAL``), so asyncpg's
    reset (a round trip of RESET ALL, UNLISTEN and CLOSE) is not needed."""


class Database:
    """The pool and the unit of work (asyncpg directly: decision 0025): a pool of up to
    ``pool_size`` + ``max_overflow`` (default as many again) connections, opened on
    demand and kept while in use (closed after five idle minutes); a connection not had
    within ``pool_timeout_seconds`` fails the transaction as unavailable (a 503)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int | None = None,
        pool_timeout_seconds: float = 30,
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.max_overflow = pool_size if max_overflow is None else max_overflow
        self.pool_timeout_seconds = pool_timeout_seconds
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._observers: list[Observer] = []

    async def _opened_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                pool = asyncpg.create_pool(
                    libpq_url(self.url),
                    min_size=0,
                    max_size=self.pool_size + self.max_overflow,
                    init=_setup_codecs,
                    reset=_keep_session,
                    record_class=Row,
                    statement_cache_size=1024,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    server_settings={"application_name": "exchange"},
                )
                await pool
                self._pool = pool
        return self._pool

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        """The statements this process sends while the block runs, for tests and
        benchmarks: each transaction's ``BEGIN`` (with the row-security binding it
        carries: ``BEGIN; SELECT set_config(...)``), then its statements."""
        seen: list[str] = []
        self._observers.append(seen.append)
        try:
            yield seen
        finally:
            self._observers.remove(seen.append)

    @asynccontextmanager
    async def transaction(self, scope: Scope) -> AsyncIterator[Connection]:
        """A unit of work: commits when the block succeeds, rolls back otherwise.

        A caller's ``scope`` (every API request) runs it as ``exchange_api`` under
        row-level security for that caller; the system scope runs it as the owner. A
        database that can't be reached, or a connection lost on the way, raises
        :class:`DatabaseUnavailable` (saying at which stage), whatever the driver said.
        """
        if not isinstance(scope, RowScope | SystemScope):
            raise TypeError(f"a transaction needs a scope, not {scope!r}")
        begin = f"BEGIN; {scope_binding(scope)}" if isinstance(scope, RowScope) else "BEGIN"
        stage = "connect"
        try:
            pool = await self._opened_pool()
            async with pool.acquire(timeout=self.pool_timeout_seconds) as raw:
                stage = "work"
                connection = Connection(raw, begin, self._observers)
                try:
                    yield connection
                    stage = "commit"
                    await connection._commit()
                except BaseException as error:
                    if isinstance(error, Exception) and is_disconnect(error):
                        raw.terminate()  # never back into the pool
                    elif stage == "work":
                        await connection._rollback()
                    raise
        except DatabaseUnavailable:
            raise
        except Exception as error:
            if stage == "connect" or is_disconnect(error):
                if stage != "connect":
                    # One connection found dead: the server most likely dropped them all
                    # (a restart, a failover). The others are replaced as they are next
                    # used, rather than each failing a request first.
                    await self.renew()
                raise DatabaseUnavailable(stage) from error
            raise

    async def renew(self) -> None:
        """Replace the pool's connections as they are next used (the server restarted)."""
        if self._pool is not None:
            await self._pool.expire_connections()

    async def dispose(self) -> None:
        """Close the pool (a later transaction opens a new one)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except TimeoutError:
                pool.terminate()


def libpq_url(database_url: str) -> str:
    """A database URL as asyncpg takes it (``postgresql://``), from any of the forms the
    settings accept (``postgresql+asyncpg://`` included)."""
    url = sqlalchemy.engine.make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


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
        cause, seen = cause.__cause__, seen + 1


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
        if isinstance(cause, asyncpg.PostgresConnectionError | ConnectionError):
            return True
        if isinstance(cause, asyncpg.InternalClientError):
            return True  # the protocol out of step: a server that hung up mid-message
        if isinstance(cause, asyncpg.InterfaceError) and "closed" in str(cause):
            return True  # the connection was closed under the statement
        sqlstate = str(getattr(cause, "sqlstate", "") or "")
        if sqlstate in DISCONNECT_SQLSTATES or sqlstate.startswith("08"):
            return True
    return False
