"""The loyalty engine: purchases and their awards, campaigns (budgets, per-member uses,
co-funding), tiers, per-member aggregates; contracts gain an earn rate and a maximum of
points per operation; the coalition gets an account to issue points from.

Row-level security: a partner sees its own purchases (and their awards and refunds), the
campaigns it owns or funds and the operator's, and the aggregates, tiers and uses of
members it linked (the rules read them; the API shows a partner only its own purchases);
a member its own rows; an operator everything.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
PARTNER = "exchange_principal_partner()"
OPERATOR = f"{KIND} = 'OPERATOR'"


def member_rows(table: str) -> str:
    """A member's rows: the operator's, a partner's that linked the member, the member's.
    Correlated EXISTS (one index lookup per row), never IN over every link the partner
    has (PostgreSQL would hash all of them for each statement)."""
    linked = (
        f"EXISTS (SELECT 1 FROM member_link l WHERE l.member_id = {table}.member_id"
        f" AND l.partner_id = {PARTNER})"
    )
    return (
        f"{OPERATOR} OR ({KIND} = 'PARTNER' AND {linked})"
        f" OR ({KIND} = 'MEMBER' AND member_id = exchange_principal_member())"
    )


def of_visible(table: str, parent: str, key: str) -> str:
    """Rows that belong to a parent row the caller sees (through the parent's policy)."""
    return f"EXISTS (SELECT 1 FROM {parent} x WHERE x.id = {table}.{key})"


OWN_PURCHASE = (
    f"{OPERATOR} OR ({KIND} = 'PARTNER' AND partner_id = {PARTNER})"
    f" OR ({KIND} = 'MEMBER' AND member_id = exchange_principal_member())"
)
# Campaigns and their funding refer to each other; a policy that read the other table
# through its own policy would recurse, so one function (run as the owner) decides.
CAMPAIGN_FUNDED = """
    CREATE FUNCTION exchange_funds_campaign(target bigint) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
        SELECT EXISTS (SELECT 1 FROM campaign_funding f WHERE f.campaign_id = target
                       AND f.partner_id = exchange_principal_partner())
    $$
"""
CAMPAIGN = (
    f"{OPERATOR} OR ({KIND} = 'PARTNER' AND (owner_partner_id IS NULL"
    f" OR owner_partner_id = {PARTNER} OR exchange_funds_campaign(id)))"
)
LEDGER = [
    "ALTER TABLE ledger_account DROP CONSTRAINT ck_ledger_account_kind",
    """
    ALTER TABLE ledger_account ADD CONSTRAINT ck_ledger_account_kind CHECK (kind IN (
        'MEMBER_WALLET', 'MEMBER_HELD', 'PARTNER_ISSUED', 'PARTNER_REDEEMED',
        'COALITION_BREAKAGE', 'COALITION_ADJUSTMENTS', 'COALITION_ISSUED'))
    """,
    "ALTER TABLE ledger_account ADD COLUMN max_points_per_operation BIGINT",
    """
    ALTER TABLE ledger_account ADD CONSTRAINT ck_ledger_account_max_points
    CHECK (max_points_per_operation IS NULL OR max_points_per_operation > 0)
    """,
    """
    UPDATE ledger_account SET max_points_per_operation = 1000000
    WHERE kind IN ('PARTNER_ISSUED', 'PARTNER_REDEEMED')
    """,
    "INSERT INTO ledger_account (kind, sharded) VALUES ('COALITION_ISSUED', true)",
    """
    INSERT INTO ledger_account_shard (account_id, shard)
    SELECT a.id, s FROM ledger_account a, generate_series(0, 15) AS s
    WHERE a.kind = 'COALITION_ISSUED'
    """,
    """
    ALTER TABLE partner_contract
        ADD COLUMN earn_rate NUMERIC(20, 8) DEFAULT 1 NOT NULL,
        ADD COLUMN max_points_per_operation BIGINT DEFAULT 1000000 NOT NULL,
        ADD CONSTRAINT ck_partner_contract_earn_rate CHECK (earn_rate >= 0),
        ADD CONSTRAINT ck_partner_contract_max_points CHECK (max_points_per_operation > 0)
    """,
]

TABLES = [
    """
    CREATE TABLE campaign (
        id BIGSERIAL NOT NULL,
        owner_partner_id BIGINT,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        starts_at TIMESTAMP WITH TIME ZONE NOT NULL,
        ends_at TIMESTAMP WITH TIME ZONE,
        condition TEXT NOT NULL,
        effect_kind TEXT NOT NULL,
        effect_value NUMERIC(20, 8) NOT NULL,
        effect_category TEXT,
        max_points_per_purchase BIGINT,
        budget_points BIGINT,
        per_member_limit INTEGER,
        created_by TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_campaign PRIMARY KEY (id),
        CONSTRAINT fk_campaign_owner_partner_id_partner FOREIGN KEY (owner_partner_id)
            REFERENCES partner (id),
        CONSTRAINT ck_campaign_status CHECK (status IN ('DRAFT', 'AWAITING_FUNDING', 'ACTIVE', 'PAUSED', 'ENDED')),
        CONSTRAINT ck_campaign_effect_kind CHECK (effect_kind IN ('MULTIPLIER', 'FIXED', 'POINTS_PER_AMOUNT')),
        CONSTRAINT ck_campaign_window CHECK (ends_at IS NULL OR ends_at > starts_at),
        CONSTRAINT ck_campaign_budget CHECK (budget_points IS NULL OR budget_points > 0),
        CONSTRAINT ck_campaign_per_member CHECK (per_member_limit IS NULL OR per_member_limit > 0)
    )
    """,
    "CREATE INDEX ix_campaign_status_owner ON campaign (status, owner_partner_id)",
    """
    CREATE TABLE campaign_funding (
        id BIGSERIAL NOT NULL,
        campaign_id BIGINT NOT NULL,
        partner_id BIGINT,
        share NUMERIC(9, 6) NOT NULL,
        accepted_at TIMESTAMP WITH TIME ZONE,
        declined_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_campaign_funding PRIMARY KEY (id),
        CONSTRAINT fk_campaign_funding_campaign_id_campaign FOREIGN KEY (campaign_id)
            REFERENCES campaign (id),
        CONSTRAINT fk_campaign_funding_partner_id_partner FOREIGN KEY (partner_id)
            REFERENCES partner (id),
        CONSTRAINT ck_campaign_funding_share CHECK (share > 0 AND share <= 1)
    )
    """,
    """CREATE UNIQUE INDEX uq_campaign_funding_partner ON campaign_funding (campaign_id, partner_id)
    WHERE partner_id IS NOT NULL""",
    """CREATE UNIQUE INDEX uq_campaign_funding_coalition ON campaign_funding (campaign_id)
    WHERE partner_id IS NULL""",
    "CREATE INDEX ix_campaign_funding_partner ON campaign_funding (partner_id)",
    """
    CREATE TABLE campaign_budget_shard (
        campaign_id BIGINT NOT NULL,
        shard SMALLINT NOT NULL,
        allotted BIGINT NOT NULL,
        spent BIGINT DEFAULT 0 NOT NULL,
        CONSTRAINT pk_campaign_budget_shard PRIMARY KEY (campaign_id, shard),
        CONSTRAINT fk_campaign_budget_shard_campaign_id_campaign FOREIGN KEY (campaign_id)
            REFERENCES campaign (id),
        CONSTRAINT ck_campaign_budget_shard_within_allotment CHECK (spent >= 0 AND spent <= allotted)
    )
    """,
    """
    CREATE TABLE campaign_member_use (
        campaign_id BIGINT NOT NULL,
        member_id BIGINT NOT NULL,
        uses INTEGER NOT NULL,
        CONSTRAINT pk_campaign_member_use PRIMARY KEY (campaign_id, member_id),
        CONSTRAINT fk_campaign_member_use_campaign_id_campaign FOREIGN KEY (campaign_id)
            REFERENCES campaign (id),
        CONSTRAINT ck_campaign_member_use_uses_not_negative CHECK (uses >= 0)
    )
    """,
    """
    CREATE TABLE purchase (
        id BIGSERIAL NOT NULL,
        partner_id BIGINT NOT NULL,
        member_id BIGINT NOT NULL,
        client_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        request_hash BYTEA NOT NULL,
        amount NUMERIC(20, 4) NOT NULL,
        currency TEXT NOT NULL,
        occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
        channel TEXT,
        store_ref TEXT,
        reference TEXT,
        items JSONB DEFAULT '[]'::jsonb NOT NULL,
        points BIGINT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_purchase PRIMARY KEY (id),
        CONSTRAINT fk_purchase_partner_id_partner FOREIGN KEY (partner_id) REFERENCES partner (id),
        CONSTRAINT uq_purchase_client_id_idempotency_key UNIQUE (client_id, idempotency_key),
        CONSTRAINT ck_purchase_amount_positive CHECK (amount > 0),
        CONSTRAINT ck_purchase_points CHECK (points >= 0),
        CONSTRAINT ck_purchase_channel CHECK (channel IS NULL OR channel IN ('IN_STORE', 'ONLINE', 'APP'))
    )
    """,
    "CREATE INDEX ix_purchase_partner ON purchase (partner_id, id)",
    "CREATE INDEX ix_purchase_member ON purchase (member_id, occurred_at)",
    "CREATE INDEX ix_purchase_partner_occurred ON purchase (partner_id, occurred_at)",
    """
    CREATE TABLE purchase_award (
        purchase_id BIGINT NOT NULL,
        position SMALLINT NOT NULL,
        rule TEXT NOT NULL,
        campaign_id BIGINT,
        funder_partner_id BIGINT,
        points BIGINT NOT NULL,
        entry_id BIGINT NOT NULL,
        CONSTRAINT pk_purchase_award PRIMARY KEY (purchase_id, position),
        CONSTRAINT fk_purchase_award_purchase_id_purchase FOREIGN KEY (purchase_id)
            REFERENCES purchase (id),
        CONSTRAINT fk_purchase_award_campaign_id_campaign FOREIGN KEY (campaign_id)
            REFERENCES campaign (id),
        CONSTRAINT fk_purchase_award_entry_id_ledger_entry FOREIGN KEY (entry_id)
            REFERENCES ledger_entry (id),
        CONSTRAINT ck_purchase_award_rule CHECK (rule IN ('BASE', 'TIER', 'CAMPAIGN')),
        CONSTRAINT ck_purchase_award_points_positive CHECK (points > 0),
        CONSTRAINT ck_purchase_award_campaign CHECK ((rule = 'CAMPAIGN') = (campaign_id IS NOT NULL))
    )
    """,
    "CREATE INDEX ix_purchase_award_campaign_id ON purchase_award (campaign_id)",
    """
    CREATE TABLE purchase_refund (
        id BIGSERIAL NOT NULL,
        purchase_id BIGINT NOT NULL,
        amount NUMERIC(20, 4) NOT NULL,
        points BIGINT NOT NULL,
        client_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        request_hash BYTEA NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_purchase_refund PRIMARY KEY (id),
        CONSTRAINT fk_purchase_refund_purchase_id_purchase FOREIGN KEY (purchase_id)
            REFERENCES purchase (id),
        CONSTRAINT uq_purchase_refund_client_id_idempotency_key UNIQUE (client_id, idempotency_key),
        CONSTRAINT ck_purchase_refund_amount_positive CHECK (amount > 0)
    )
    """,
    "CREATE INDEX ix_purchase_refund_purchase_id ON purchase_refund (purchase_id)",
    """
    CREATE TABLE tier (
        name TEXT NOT NULL,
        qualifying_points BIGINT NOT NULL,
        earn_multiplier NUMERIC(8, 4) NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_tier PRIMARY KEY (name),
        CONSTRAINT uq_tier_qualifying_points UNIQUE (qualifying_points),
        CONSTRAINT ck_tier_qualifying_points CHECK (qualifying_points >= 0),
        CONSTRAINT ck_tier_earn_multiplier CHECK (earn_multiplier >= 1)
    )
    """,
    """
    CREATE TABLE member_tier (
        member_id BIGINT NOT NULL,
        tier TEXT,
        since TIMESTAMP WITH TIME ZONE NOT NULL,
        reviewed_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_member_tier PRIMARY KEY (member_id)
    )
    """,
    """
    CREATE TABLE member_tier_change (
        id BIGSERIAL NOT NULL,
        member_id BIGINT NOT NULL,
        from_tier TEXT,
        to_tier TEXT,
        qualifying_points BIGINT NOT NULL,
        reason TEXT NOT NULL,
        at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_member_tier_change PRIMARY KEY (id)
    )
    """,
    "CREATE INDEX ix_member_tier_change_member ON member_tier_change (member_id, id)",
    """
    CREATE TABLE member_qualifying (
        member_id BIGINT NOT NULL,
        month DATE NOT NULL,
        points BIGINT NOT NULL,
        CONSTRAINT pk_member_qualifying PRIMARY KEY (member_id, month)
    )
    """,
    """
    CREATE TABLE member_profile (
        member_id BIGINT NOT NULL,
        consent_cross_partner BOOLEAN DEFAULT false NOT NULL,
        consent_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_member_profile PRIMARY KEY (member_id)
    )
    """,
    """
    CREATE TABLE member_partner_stats (
        member_id BIGINT NOT NULL,
        partner_id BIGINT NOT NULL,
        purchases INTEGER NOT NULL,
        spend NUMERIC(24, 4) NOT NULL,
        first_purchase_at TIMESTAMP WITH TIME ZONE NOT NULL,
        last_purchase_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_member_partner_stats PRIMARY KEY (member_id, partner_id)
    )
    """,
    "CREATE INDEX ix_member_partner_stats_partner ON member_partner_stats (partner_id)",
    """
    CREATE TABLE member_category_stats (
        member_id BIGINT NOT NULL,
        partner_id BIGINT NOT NULL,
        category TEXT NOT NULL,
        purchases INTEGER NOT NULL,
        spend NUMERIC(24, 4) NOT NULL,
        last_purchase_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_member_category_stats PRIMARY KEY (member_id, partner_id, category)
    )
    """,
]

APPEND_ONLY = ["purchase_award", "purchase_refund", "member_tier_change"]

POLICIES = {
    "purchase": (OWN_PURCHASE, OWN_PURCHASE),
    **{
        table: (of_visible(table, "purchase", "purchase_id"),) * 2
        for table in ("purchase_award", "purchase_refund")
    },
    "campaign": (CAMPAIGN, CAMPAIGN),
    **{
        table: (of_visible(table, "campaign", "campaign_id"),) * 2
        for table in ("campaign_funding", "campaign_budget_shard")
    },
    **{
        table: (member_rows(table),) * 2
        for table in (
            "campaign_member_use",
            "member_tier",
            "member_tier_change",
            "member_qualifying",
            "member_profile",
            "member_partner_stats",
            "member_category_stats",
        )
    },
}


def _security() -> list[str]:
    statements = [
        CAMPAIGN_FUNDED,
        "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO exchange_api",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO exchange_api",
        "GRANT SELECT ON tier TO exchange_api",
    ]
    for table, (using, check) in POLICIES.items():
        statements.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        statements.append(f"CREATE POLICY own_rows ON {table} USING ({using}) WITH CHECK ({check})")
    for table in APPEND_ONLY:
        statements.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
    return statements


def upgrade() -> None:
    connection = op.get_bind()
    for statement in (*LEDGER, *TABLES, *_security()):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
