"""Tables of the partners package: registry and versioned contracts, member identity and
links, OAuth clients, signing keys, revoked tokens and used client assertions."""

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
    LargeBinary,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from exchange.kit.db import metadata

partner = Table(
    "partner",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False, server_default=text("'ACTIVE'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('ACTIVE', 'SUSPENDED')", name="status"),
    CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="name_length"),
)

partner_contract = Table(
    "partner_contract",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("partner_id", BigInteger, ForeignKey("partner.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("currency", Text, nullable=False),
    Column("issue_price", Numeric(20, 8), nullable=False),
    Column("redemption_price", Numeric(20, 8), nullable=False),
    Column("fee_rate", Numeric(9, 6), nullable=False),
    Column("funding_model", Text, nullable=False),
    Column("points_lifetime_days", Integer, nullable=False),
    Column("credit_limit_points", BigInteger),
    Column("allow_negative_reversal", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("earn_rate", Numeric(20, 8), nullable=False, server_default=text("1")),
    Column("max_points_per_operation", BigInteger, nullable=False, server_default=text("1000000")),
    UniqueConstraint("partner_id", "version"),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
    CheckConstraint("issue_price >= 0 AND redemption_price >= 0", name="prices"),
    CheckConstraint("fee_rate >= 0 AND fee_rate < 1", name="fee_rate"),
    CheckConstraint("funding_model IN ('PREFUNDED', 'ON_REDEMPTION')", name="funding_model"),
    CheckConstraint("points_lifetime_days > 0", name="lifetime"),
    CheckConstraint("credit_limit_points IS NULL OR credit_limit_points >= 0", name="limit"),
    CheckConstraint("earn_rate >= 0", name="earn_rate"),
    CheckConstraint("max_points_per_operation > 0", name="max_points"),
)
Index(
    "ix_partner_contract_in_force", partner_contract.c.partner_id, partner_contract.c.effective_from
)

member_identity = Table(
    "member_identity",
    metadata,
    Column("member_id", BigInteger, primary_key=True, autoincrement=False),
    Column("email_index", LargeBinary, unique=True),
    Column("phone_index", LargeBinary, unique=True),
    Column("email_ciphertext", LargeBinary),
    Column("phone_ciphertext", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("erased_at", DateTime(timezone=True)),
)

member_link = Table(
    "member_link",
    metadata,
    Column("partner_id", BigInteger, ForeignKey("partner.id"), primary_key=True),
    Column("member_ref", Text, primary_key=True),
    Column("member_id", BigInteger, ForeignKey("member_identity.member_id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("char_length(member_ref) BETWEEN 1 AND 200", name="ref_length"),
)
Index("ix_member_link_member", member_link.c.member_id, member_link.c.partner_id)
# A partner's members read from the index alone (cross-shopping; migration 0026).
Index("ix_member_link_partner_member", member_link.c.partner_id, member_link.c.member_id)

oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("secret_hash", Text),
    Column("partner_id", BigInteger, ForeignKey("partner.id")),
    Column("kind", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("jwks", JSONB),
    Column("status", Text, nullable=False, server_default=text("'ACTIVE'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("kind IN ('PARTNER', 'OPERATOR')", name="kind"),
    CheckConstraint("(kind = 'PARTNER') = (partner_id IS NOT NULL)", name="partner"),
    CheckConstraint("status IN ('ACTIVE', 'REVOKED')", name="status"),
    CheckConstraint("secret_hash IS NOT NULL OR jwks IS NOT NULL", name="credential"),
)

signing_key = Table(
    "signing_key",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("private_key_ciphertext", LargeBinary, nullable=False),
    Column("public_jwk", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("activated_at", DateTime(timezone=True)),
    Column("retired_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('NEXT', 'ACTIVE', 'RETIRED')", name="status"),
)
Index(
    "uq_signing_key_one_active",
    signing_key.c.status,
    unique=True,
    postgresql_where=signing_key.c.status.in_(["NEXT", "ACTIVE"]),
)

revoked_token = Table(
    "revoked_token",
    metadata,
    Column("jti", Text, primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

used_client_assertion = Table(
    "used_client_assertion",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("jti", Text, primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
