"""Alembic environment: async engine, and the metadata of every package's tables."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import exchange.audit.tables  # (registers the audit log's table)
import exchange.events.tables  # (registers the events' tables)
import exchange.insights.tables  # (registers the insights tables)
import exchange.ledger.tables  # (registers the ledger's tables)
import exchange.limits.tables  # (registers the shared limits' table)
import exchange.loyalty.tables  # noqa: F401  (registers the loyalty engine's tables)
import partners.tables  # noqa: F401  (registers the partners' tables)
import settlement.tables  # noqa: F401  (registers settlement's tables)
from exchange.kit.db import metadata

target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        # One migrator at a time: several workers may start together.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727001)")
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run_migrations_online() -> None:
    url = context.config.attributes["database_url"]
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `exchange db upgrade`")
run_migrations_online()
