"""The ``exchange`` command. Every subcommand has ``--help``; bad arguments print one line
on stderr and exit with status 2; a failure prints one line and exits with status 1;
no traceback ever reaches the user."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, NoReturn

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, resolve_database_url
from exchange.kit.errors import DomainError
from exchange.kit.settings import Settings


class UsageError(Exception):
    """Bad arguments: exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, e.g. {value}+00:00")
    return moment


def build_parser() -> Parser:
    parser = Parser(prog="exchange", description="The coalition points exchange.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = commands.add_parser("serve", help="migrate the database and serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="seed a small demo coalition")

    database = commands.add_parser("db", help="database schema")
    database_commands = database.add_subparsers(
        dest="db_command", required=True, parser_class=Parser
    )
    database_commands.add_parser("upgrade", help="apply every migration")

    verify = commands.add_parser("verify", help="check every ledger invariant")
    verify.add_argument("--json", action="store_true")

    expire = commands.add_parser("expire", help="expire lots and release expired holds")
    expire.add_argument("--as-of", type=_timestamp, help="ISO 8601 time with offset (default: now)")
    expire.add_argument("--json", action="store_true")
    return parser


def _database(settings: Settings) -> Database:
    """The database, migrated to the latest revision (a no-op when it already is)."""
    from exchange.migrations import upgrade_sync

    url = resolve_database_url(settings)
    upgrade_sync(url)
    return Database.connect(url, pool_size=2)


def _run(coroutine_function: Callable[[Database], Coroutine[Any, Any, int]]) -> int:
    database = _database(Settings.from_environment())

    async def main() -> int:
        try:
            return await coroutine_function(database)
        finally:
            await database.dispose()

    return asyncio.run(main())


def command_db_upgrade(args: argparse.Namespace) -> int:
    from exchange.migrations import upgrade_sync

    upgrade_sync(resolve_database_url(Settings.from_environment()))
    print("database is at the latest revision")
    return 0


def command_verify(args: argparse.Namespace) -> int:
    async def verify(database: Database) -> int:
        async with database.transaction() as conn:
            report = await ledger.verify(conn)
        if args.json:
            print(json.dumps({"ok": report.ok, "checks": [c.__dict__ for c in report.checks]}))
        else:
            for check in report.checks:
                print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}")
                for example in check.examples:
                    print(f"        e.g. {example}")
            print("all invariants hold" if report.ok else "LEDGER INVARIANTS BROKEN")
        return 0 if report.ok else 1

    return _run(verify)


def command_expire(args: argparse.Namespace) -> int:
    as_of: datetime = args.as_of or utc_now()

    async def expire(database: Database) -> int:
        released = members = points = 0
        while True:
            async with database.transaction() as conn:
                count = await ledger.release_holds_batch(conn, as_of=as_of)
            released += count
            if count == 0:
                break
        while True:
            async with database.transaction() as conn:
                batch = await ledger.expire_batch(conn, as_of=as_of)
            if batch.members == 0:
                break
            members += batch.members
            points += batch.points
            if not args.json:
                print(f"… {members} members, {points} points expired", file=sys.stderr)
        summary = {
            "asOf": as_of.isoformat(),
            "holdsReleased": released,
            "members": members,
            "pointsExpired": points,
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"released {released} expired holds; expired {points} points"
                f" of {members} members as of {as_of.isoformat()}"
            )
        return 0

    return _run(expire)


def command_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from exchange.migrations import upgrade_sync

    if not 1 <= args.port <= 65535:
        raise UsageError("--port must be between 1 and 65535")
    if not 1 <= args.workers <= 64:
        raise UsageError("--workers must be between 1 and 64")
    settings = Settings.from_environment()
    url = resolve_database_url(settings)
    upgrade_sync(url)
    where = "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.home}"
    print(f"database: {where} (migrated)")
    if args.demo:
        _seed_demo(url)
    os.environ["DATABASE_URL"] = url  # workers join the same database
    print(f"serving http://{args.host}:{args.port}/  (health: /healthz, readiness: /readyz)")
    uvicorn.run(
        "exchange.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
    )
    return 0


def _seed_demo(url: str) -> None:
    from exchange.demo import seed

    async def run() -> None:
        database = Database.connect(url, pool_size=1)
        try:
            async with database.transaction() as conn:
                summary = await seed(conn, now=utc_now())
        finally:
            await database.dispose()
        state = "seeded" if summary.seeded else "already seeded"
        print(
            f"demo coalition {state}: partners "
            + ", ".join(f"{pid} {name}" for pid, name in summary.partners.items())
            + f"; members {summary.members}"
        )

    asyncio.run(run())


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": command_serve,
    "db": command_db_upgrade,
    "verify": command_verify,
    "expire": command_expire,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(f"exchange: error: {error}", file=sys.stderr)
        return 2
    except DomainError as error:
        print(f"exchange: error: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the last line of defence: one line, never a traceback
        print(f"exchange: error: {type(error).__name__}: {_first_line(error)}", file=sys.stderr)
        return 1


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "unexpected failure"


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
