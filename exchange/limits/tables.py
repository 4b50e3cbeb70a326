"""The limits' one table, for Alembic's view of the schema (migration 0013 makes it;
0015 adds ``member_id``, the owner of a member's own buckets)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Numeric, Table, Text

from exchange.kit.db import metadata

limit_bucket = Table(
    "limit_bucket",
    metadata,
    Column("name", Text, primary_key=True),
    Column("client_id", Text),
    Column("member_id", BigInteger),
    Column("level", Numeric, nullable=False),
    Column("granted", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_limit_bucket_updated_at", limit_bucket.c.updated_at)
