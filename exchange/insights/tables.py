"""The insights package's tables (migration 0021 owns the DDL; a test checks the two
agree): custom segments, campaign targets, the selection of each targeted campaign
(treated and held out), the offers made to the treated, and when the RFM quintiles were
last recomputed (migration 0025)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from exchange.kit.db import metadata

segment = Table(
    "segment",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("owner_partner_id", BigInteger, ForeignKey("partner.id")),
    Column("name", Text, nullable=False),
    Column("condition", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("name ~ '^[A-Z][A-Z0-9_]{0,59}$'", name="name"),
)
Index(
    "uq_segment_owner_name",
    func.coalesce(segment.c.owner_partner_id, 0),
    segment.c.name,
    unique=True,
)

campaign_target = Table(
    "campaign_target",
    metadata,
    Column("campaign_id", BigInteger, ForeignKey("campaign.id"), primary_key=True),
    Column("segment", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("control_share", Numeric(5, 4), nullable=False),
    Column("offer_title", Text, nullable=False),
    Column("offer_description", Text),
    Column("treated", Integer, nullable=False, server_default=text("0")),
    Column("control", Integer, nullable=False, server_default=text("0")),
    Column("selected_at", DateTime(timezone=True)),
    CheckConstraint("audience IN ('OWN_MEMBERS', 'COALITION')", name="audience"),
    CheckConstraint("control_share >= 0 AND control_share < 1", name="control_share"),
)

campaign_selection = Table(
    "campaign_selection",
    metadata,
    Column("campaign_id", BigInteger, ForeignKey("campaign.id"), primary_key=True),
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("control", Boolean, nullable=False),
    Column("selected_at", DateTime(timezone=True), nullable=False),
)
Index("ix_campaign_selection_member_id", campaign_selection.c.member_id)

offer = Table(
    "offer",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("campaign_id", BigInteger, ForeignKey("campaign.id"), nullable=False),
    Column("member_id", BigInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Column("used_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    UniqueConstraint("campaign_id", "member_id"),
    CheckConstraint("status IN ('AVAILABLE', 'ACTIVATED', 'USED')", name="status"),
)
Index("ix_offer_member_id", offer.c.member_id)

#: When the RFM quintiles were last recomputed: one row, held by the worker that
#: recomputes them (the others skip), so neither a restart nor a second worker or server
#: recomputes them before they are due.
insights_refresh = Table(
    "insights_refresh",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("refreshed_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("id = 1", name="one_row"),
)
