"""Fixtures of the command's tests."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from exchange.migrations import upgrade


@pytest.fixture
async def scratch_database_url(server_url: str) -> AsyncIterator[str]:
    """A database of its own, for a test that corrupts it on purpose or needs it to
    itself (the demo coalition, whose partner names are fixed)."""
    name = f"exchange_scratch_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sqlalchemy.engine.make_url(server_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    await upgrade(rendered)
    yield rendered
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.dispose()
