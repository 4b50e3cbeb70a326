"""Settlement's tables (the migration owns the DDL; a test checks they agree)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from exchange.kit.db import metadata

settlement_run = Table(
    "settlement_run",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("digest", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cutoff", DateTime(timezone=True), nullable=False),
    Column("finalized_at", DateTime(timezone=True)),
    Column("paid_at", DateTime(timezone=True)),
    Column("superseded_by", BigInteger, ForeignKey("settlement_run.id")),
    CheckConstraint("period_start < period_end", name="period"),
    CheckConstraint("status IN ('DRAFT', 'SUPERSEDED', 'FINALIZED', 'PAID')", name="status"),
    CheckConstraint("(status = 'SUPERSEDED') = (superseded_by IS NOT NULL)", name="superseded"),
)
Index("ix_settlement_run_period", settlement_run.c.period_start, settlement_run.c.period_end)

settlement_posting = Table(
    "settlement_posting",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, ForeignKey("settlement_run.id"), nullable=False),
    Column("account", Text, nullable=False),
    Column("amount", Numeric(24, 4), nullable=False),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
)
Index("ix_settlement_posting_run_id", settlement_posting.c.run_id)

settlement_payment = Table(
    "settlement_payment",
    metadata,
    Column("run_id", BigInteger, ForeignKey("settlement_run.id"), primary_key=True),
    Column("instruction", Integer, primary_key=True, autoincrement=False),
    Column("reference", Text, nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=False),
)
