"""The embedded default: a private PostgreSQL (from the ``pgserver`` wheel) in a data
directory of its own, so a newcomer needs no database server.

Only used when ``DATABASE_URL`` is unset. The server listens on a Unix socket only.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy

log = logging.getLogger(__name__)

DATABASE_NAME = "exchange"

_SERVER_SETTINGS = {
    # Sized for a laptop or a CI box; production points DATABASE_URL at a real cluster.
    "max_connections": "200",
    "shared_buffers": "256MB",
    "synchronous_commit": "on",
}


def _server(data_directory: Path) -> Any:
    with warnings.catch_warnings():
        # pgserver asks platformdirs for XDG_RUNTIME_DIR at import time and warns
        # when the machine has none; the fallback it picks is fine for us.
        warnings.simplefilter("ignore")
        import pgserver

        return pgserver.get_server(data_directory, cleanup_mode="stop")  # type: ignore[attr-defined]


def _configure(server: Any) -> bool:
    """Apply server settings once; returns True when a restart is needed."""
    current = server.psql("SHOW max_connections;")
    if _SERVER_SETTINGS["max_connections"] in current:
        return False
    statements = "".join(
        f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in _SERVER_SETTINGS.items()
    )
    server.psql(statements)
    return True


def start_embedded(home: Path, *, database: str = DATABASE_NAME) -> str:
    """Start (or join) the embedded server under ``home`` and return an asyncpg URL."""
    data_directory = home / "pgdata"
    home.mkdir(parents=True, exist_ok=True)
    server = _server(data_directory)
    if _configure(server):
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    uri: str = server.get_uri(database)
    return to_async_url(uri)


def to_async_url(url: str) -> str:
    """Normalise a libpq-style URL to SQLAlchemy's asyncpg dialect."""
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)
