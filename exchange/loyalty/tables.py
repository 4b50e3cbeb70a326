"""The loyalty engine's tables (the migration owns the DDL; a test checks they agree):
purchases and what they earned, campaigns with their funding, budgets and per-member
uses, tiers, and the per-member aggregates rules read (kept in the purchase's own
transaction)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from exchange.kit.db import metadata

purchase = Table(
    "purchase",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("partner_id", BigInteger, ForeignKey("partner.id"), nullable=False),
    Column("member_id", BigInteger, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("request_hash", LargeBinary, nullable=False),
    Column("amount", Numeric(20, 4), nullable=False),
    Column("currency", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("channel", Text),
    Column("store_ref", Text),
    Column("reference", Text),
    Column("items", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("points", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("client_id", "idempotency_key"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("points >= 0", name="points"),
    CheckConstraint("channel IS NULL OR channel IN ('IN_STORE', 'ONLINE', 'APP')", name="channel"),
)
Index("ix_purchase_partner", purchase.c.partner_id, purchase.c.id)
Index("ix_purchase_member", purchase.c.member_id, purchase.c.occurred_at)
# A partner's spend and active months, read from the index (migration 0023).
Index(
    "ix_purchase_partner_occurred",
    purchase.c.partner_id,
    purchase.c.occurred_at,
    postgresql_include=["member_id", "amount"],
)

purchase_award = Table(
    "purchase_award",
    metadata,
    Column("purchase_id", BigInteger, ForeignKey("purchase.id"), primary_key=True),
    Column("position", SmallInteger, primary_key=True, autoincrement=False),
    Column("rule", Text, nullable=False),
    Column("campaign_id", BigInteger, ForeignKey("campaign.id")),
    Column("funder_partner_id", BigInteger),
    Column("points", BigInteger, nullable=False),
    Column("entry_id", BigInteger, ForeignKey("ledger_entry.id"), nullable=False),
    CheckConstraint("rule IN ('BASE', 'TIER', 'CAMPAIGN')", name="rule"),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint("(rule = 'CAMPAIGN') = (campaign_id IS NOT NULL)", name="campaign"),
)
Index("ix_purchase_award_campaign_id", purchase_award.c.campaign_id)

purchase_refund = Table(
    "purchase_refund",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("purchase_id", BigInteger, ForeignKey("purchase.id"), nullable=False),
    Column("amount", Numeric(20, 4), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("request_hash", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("client_id", "idempotency_key"),
    CheckConstraint("amount > 0", name="amount_positive"),
)
Index("ix_purchase_refund_purchase_id", purchase_refund.c.purchase_id)

campaign = Table(
    "campaign",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("owner_partner_id", BigInteger, ForeignKey("partner.id")),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),
    Column("condition", Text, nullable=False),
    Column("effect_kind", Text, nullable=False),
    Column("effect_value", Numeric(20, 8), nullable=False),
    Column("effect_category", Text),
    Column("max_points_per_purchase", BigInteger),
    Column("budget_points", BigInteger),
    Column("per_member_limit", Integer),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "status IN ('DRAFT', 'AWAITING_FUNDING', 'ACTIVE', 'PAUSED', 'ENDED')", name="status"
    ),
    CheckConstraint(
        "effect_kind IN ('MULTIPLIER', 'FIXED', 'POINTS_PER_AMOUNT')", name="effect_kind"
    ),
    CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window"),
    CheckConstraint("budget_points IS NULL OR budget_points > 0", name="budget"),
    CheckConstraint("per_member_limit IS NULL OR per_member_limit > 0", name="per_member"),
)
Index("ix_campaign_status_owner", campaign.c.status, campaign.c.owner_partner_id)

campaign_funding = Table(
    "campaign_funding",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("campaign_id", BigInteger, ForeignKey("campaign.id"), nullable=False),
    Column("partner_id", BigInteger, ForeignKey("partner.id")),
    Column("share", Numeric(9, 6), nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Column("declined_at", DateTime(timezone=True)),
    CheckConstraint("share > 0 AND share <= 1", name="share"),
)
Index(
    "uq_campaign_funding_partner",
    campaign_funding.c.campaign_id,
    campaign_funding.c.partner_id,
    unique=True,
    postgresql_where=campaign_funding.c.partner_id.isnot(None),
)
Index(
    "uq_campaign_funding_coalition",
    campaign_funding.c.campaign_id,
    unique=True,
    postgresql_where=campaign_funding.c.partner_id.is_(None),
)
Index("ix_campaign_funding_partner", campaign_funding.c.partner_id)

campaign_budget_shard = Table(
    "campaign_budget_shard",
    metadata,
    Column("campaign_id", BigInteger, ForeignKey("campaign.id"), primary_key=True),
    Column("shard", SmallInteger, primary_key=True, autoincrement=False),
    Column("allotted", BigInteger, nullable=False),
    Column("spent", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint("spent >= 0 AND spent <= allotted", name="within_allotment"),
)

campaign_member_use = Table(
    "campaign_member_use",
    metadata,
    Column("campaign_id", BigInteger, ForeignKey("campaign.id"), primary_key=True),
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("uses", Integer, nullable=False),
    CheckConstraint("uses >= 0", name="uses_not_negative"),
)

tier = Table(
    "tier",
    metadata,
    Column("name", Text, primary_key=True),
    Column("qualifying_points", BigInteger, nullable=False, unique=True),
    Column("earn_multiplier", Numeric(8, 4), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("qualifying_points >= 0", name="qualifying_points"),
    CheckConstraint("earn_multiplier >= 1", name="earn_multiplier"),
)

member_tier = Table(
    "member_tier",
    metadata,
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tier", Text),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("reviewed_at", DateTime(timezone=True), nullable=False),
)

member_tier_change = Table(
    "member_tier_change",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("member_id", BigInteger, nullable=False),
    Column("from_tier", Text),
    Column("to_tier", Text),
    Column("qualifying_points", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_member_tier_change_member", member_tier_change.c.member_id, member_tier_change.c.id)

member_qualifying = Table(
    "member_qualifying",
    metadata,
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("month", Date, primary_key=True),
    Column("points", BigInteger, nullable=False),
)

member_profile = Table(
    "member_profile",
    metadata,
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("consent_cross_partner", Boolean, nullable=False, server_default=text("false")),
    Column("consent_at", DateTime(timezone=True)),
    # Coalition-wide RFM quintiles (1..5), set by the insights refresh (migration 0020).
    Column("rfm_recency", SmallInteger),
    Column("rfm_frequency", SmallInteger),
    Column("rfm_monetary", SmallInteger),
)
# The members who consented to cross-partner use, from the index alone (cross-shopping,
# the COALITION audience; migration 0026).
Index(
    "ix_member_profile_consenting",
    member_profile.c.member_id,
    postgresql_where=member_profile.c.consent_cross_partner,
)

member_partner_stats = Table(
    "member_partner_stats",
    metadata,
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("partner_id", BigInteger, primary_key=True, autoincrement=False),
    Column("purchases", Integer, nullable=False),
    Column("spend", Numeric(24, 4), nullable=False),
    Column("first_purchase_at", DateTime(timezone=True), nullable=False),
    Column("last_purchase_at", DateTime(timezone=True), nullable=False),
    # RFM quintiles (1..5) among this partner's members, set by the insights refresh.
    Column("rfm_recency", SmallInteger),
    Column("rfm_frequency", SmallInteger),
    Column("rfm_monetary", SmallInteger),
)
Index("ix_member_partner_stats_partner", member_partner_stats.c.partner_id)

member_category_stats = Table(
    "member_category_stats",
    metadata,
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("partner_id", BigInteger, primary_key=True, autoincrement=False),
    Column("category", Text, primary_key=True),
    Column("purchases", Integer, nullable=False),
    Column("spend", Numeric(24, 4), nullable=False),
    Column("last_purchase_at", DateTime(timezone=True), nullable=False),
)
