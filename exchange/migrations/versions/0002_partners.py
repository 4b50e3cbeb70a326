"""Partners: registry and versioned contracts, member identity and links, OAuth clients,
signing keys, revoked tokens and used client assertions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = [
    """
CREATE TABLE member_identity (
    member_id BIGINT NOT NULL,
    email_index BYTEA,
    phone_index BYTEA,
    email_ciphertext BYTEA,
    phone_ciphertext BYTEA,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    erased_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_member_identity PRIMARY KEY (member_id),
    CONSTRAINT uq_member_identity_email_index UNIQUE (email_index),
    CONSTRAINT uq_member_identity_phone_index UNIQUE (phone_index)
)
    """,
    """
CREATE TABLE partner (
    id BIGSERIAL NOT NULL,
    name TEXT NOT NULL,
    status TEXT DEFAULT 'ACTIVE' NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_partner PRIMARY KEY (id),
    CONSTRAINT ck_partner_status CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    CONSTRAINT ck_partner_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT uq_partner_name UNIQUE (name)
)
    """,
    """
CREATE TABLE revoked_token (
    jti TEXT NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    revoked_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_revoked_token PRIMARY KEY (jti)
)
    """,
    """
CREATE TABLE signing_key (
    kid TEXT NOT NULL,
    private_key_ciphertext BYTEA NOT NULL,
    public_jwk JSONB NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    activated_at TIMESTAMP WITH TIME ZONE,
    retired_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_signing_key PRIMARY KEY (kid),
    CONSTRAINT ck_signing_key_status CHECK (status IN ('NEXT', 'ACTIVE', 'RETIRED'))
)
    """,
    """
CREATE UNIQUE INDEX uq_signing_key_one_active ON signing_key (status) WHERE status IN ('NEXT', 'ACTIVE')
    """,
    """
CREATE TABLE used_client_assertion (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_used_client_assertion PRIMARY KEY (client_id, jti)
)
    """,
    """
CREATE TABLE member_link (
    partner_id BIGINT NOT NULL,
    member_ref TEXT NOT NULL,
    member_id BIGINT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_member_link PRIMARY KEY (partner_id, member_ref),
    CONSTRAINT ck_member_link_ref_length CHECK (char_length(member_ref) BETWEEN 1 AND 200),
    CONSTRAINT fk_member_link_partner_id_partner FOREIGN KEY(partner_id) REFERENCES partner (id),
    CONSTRAINT fk_member_link_member_id_member_identity FOREIGN KEY(member_id) REFERENCES member_identity (member_id)
)
    """,
    """
CREATE INDEX ix_member_link_member ON member_link (member_id, partner_id)
    """,
    """
CREATE TABLE oauth_client (
    client_id TEXT NOT NULL,
    secret_hash TEXT,
    partner_id BIGINT,
    kind TEXT NOT NULL,
    scopes TEXT[] NOT NULL,
    jwks JSONB,
    status TEXT DEFAULT 'ACTIVE' NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_oauth_client PRIMARY KEY (client_id),
    CONSTRAINT ck_oauth_client_kind CHECK (kind IN ('PARTNER', 'OPERATOR')),
    CONSTRAINT ck_oauth_client_partner CHECK ((kind = 'PARTNER') = (partner_id IS NOT NULL)),
    CONSTRAINT ck_oauth_client_status CHECK (status IN ('ACTIVE', 'REVOKED')),
    CONSTRAINT ck_oauth_client_credential CHECK (secret_hash IS NOT NULL OR jwks IS NOT NULL),
    CONSTRAINT fk_oauth_client_partner_id_partner FOREIGN KEY(partner_id) REFERENCES partner (id)
)
    """,
    """
CREATE TABLE partner_contract (
    id BIGSERIAL NOT NULL,
    partner_id BIGINT NOT NULL,
    version INTEGER NOT NULL,
    effective_from TIMESTAMP WITH TIME ZONE NOT NULL,
    currency TEXT NOT NULL,
    issue_price NUMERIC(20, 8) NOT NULL,
    redemption_price NUMERIC(20, 8) NOT NULL,
    fee_rate NUMERIC(9, 6) NOT NULL,
    funding_model TEXT NOT NULL,
    points_lifetime_days INTEGER NOT NULL,
    credit_limit_points BIGINT,
    allow_negative_reversal BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_partner_contract PRIMARY KEY (id),
    CONSTRAINT uq_partner_contract_partner_id_version UNIQUE (partner_id, version),
    CONSTRAINT ck_partner_contract_currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_partner_contract_prices CHECK (issue_price >= 0 AND redemption_price >= 0),
    CONSTRAINT ck_partner_contract_fee_rate CHECK (fee_rate >= 0 AND fee_rate < 1),
    CONSTRAINT ck_partner_contract_funding_model CHECK (funding_model IN ('PREFUNDED', 'ON_REDEMPTION')),
    CONSTRAINT ck_partner_contract_lifetime CHECK (points_lifetime_days > 0),
    CONSTRAINT ck_partner_contract_limit CHECK (credit_limit_points IS NULL OR credit_limit_points >= 0),
    CONSTRAINT fk_partner_contract_partner_id_partner FOREIGN KEY(partner_id) REFERENCES partner (id)
)
    """,
    """
CREATE INDEX ix_partner_contract_in_force ON partner_contract (partner_id, effective_from)
    """,
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in TABLES:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
