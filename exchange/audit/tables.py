"""The audit log's table (the migration owns the DDL; a test checks they agree)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB

from exchange.kit.db import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    CheckConstraint("char_length(actor) BETWEEN 1 AND 300", name="actor"),
    CheckConstraint("char_length(origin) BETWEEN 1 AND 300", name="origin"),
    CheckConstraint("action ~ '^[a-z_]+\\.[a-z_]+$'", name="action"),
    CheckConstraint("char_length(subject) BETWEEN 1 AND 300", name="subject"),
    CheckConstraint("jsonb_typeof(details) = 'object'", name="details"),
)
Index("ix_audit_log_at", audit_log.c.at, audit_log.c.id)
Index("ix_audit_log_action", audit_log.c.action, audit_log.c.at)
