"""The events package's tables (migration 0019 owns the DDL, the triggers that fill the
outbox among it; a test checks the two agree)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from exchange.kit.db import metadata

outbox = Table(
    "event_outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("partner_id", BigInteger),
    Column("member_id", BigInteger),
    Column("facts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("fanned_out_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("type ~ '^[a-z_]+\\.[a-z_]+$'", name="type"),
    CheckConstraint("jsonb_typeof(facts) = 'object'", name="facts"),
)
Index(
    "ix_event_outbox_unfanned",
    outbox.c.id,
    postgresql_where=outbox.c.fanned_out_at.is_(None),
)
Index("ix_event_outbox_member", outbox.c.member_id)
Index("ix_event_outbox_created_at", outbox.c.created_at)

endpoint = Table(
    "webhook_endpoint",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("partner_id", BigInteger, ForeignKey("partner.id")),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("status", Text, nullable=False),
    Column("disabled_reason", Text),
    Column("secret", LargeBinary, nullable=False),
    Column("previous_secret", LargeBinary),
    Column("previous_secret_until", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('ENABLED', 'DISABLED')", name="status"),
    CheckConstraint("char_length(url) BETWEEN 1 AND 2000", name="url"),
    CheckConstraint("cardinality(event_types) >= 1", name="event_types"),
)
Index("ix_webhook_endpoint_partner", endpoint.c.partner_id)

delivery = Table(
    "webhook_delivery",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("endpoint_id", BigInteger, ForeignKey("webhook_endpoint.id"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("member_key", BigInteger, nullable=False, server_default=text("0")),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("first_attempt_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_delivery_endpoint_event"),
    CheckConstraint("status IN ('PENDING', 'DELIVERED', 'FAILED')", name="status"),
    CheckConstraint("attempts >= 0", name="attempts"),
    CheckConstraint("char_length(last_error) <= 500", name="error"),
)
Index(
    "ix_webhook_delivery_due",
    delivery.c.next_attempt_at,
    delivery.c.id,
    postgresql_where=delivery.c.status == "PENDING",
)
Index(
    "ix_webhook_delivery_order",
    delivery.c.endpoint_id,
    delivery.c.member_key,
    delivery.c.event_id,
    postgresql_where=delivery.c.status == "PENDING",
)
Index("ix_webhook_delivery_endpoint", delivery.c.endpoint_id, delivery.c.id)
Index("ix_webhook_delivery_created_at", delivery.c.created_at)

expiring_notice = Table(
    "expiring_notice",
    metadata,
    Column("lot_id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", BigInteger, nullable=False),
)
