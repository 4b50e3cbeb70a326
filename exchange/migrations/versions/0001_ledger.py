"""The points ledger: accounts, entries, postings, lots, consumptions, holds.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = [
    """
CREATE TABLE ledger_account (
    id BIGSERIAL NOT NULL,
    kind TEXT NOT NULL,
    partner_id BIGINT,
    member_id BIGINT,
    balance BIGINT DEFAULT 0 NOT NULL,
    sharded BOOLEAN NOT NULL,
    credit_limit_points BIGINT,
    points_lifetime_days INTEGER,
    allow_negative_reversal BOOLEAN DEFAULT false NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_ledger_account PRIMARY KEY (id),
    CONSTRAINT ck_ledger_account_kind CHECK (kind IN ('MEMBER_WALLET', 'MEMBER_HELD', 'PARTNER_ISSUED', 'PARTNER_REDEEMED', 'COALITION_BREAKAGE', 'COALITION_ADJUSTMENTS')),
    CONSTRAINT ck_ledger_account_owner CHECK ((kind LIKE 'MEMBER_%') = (member_id IS NOT NULL) AND (kind LIKE 'PARTNER_%') = (partner_id IS NOT NULL)),
    CONSTRAINT ck_ledger_account_held_not_negative CHECK (kind <> 'MEMBER_HELD' OR balance >= 0),
    CONSTRAINT ck_ledger_account_sharded_balance_in_shards CHECK (NOT sharded OR balance = 0),
    CONSTRAINT ck_ledger_account_limit CHECK (credit_limit_points IS NULL OR credit_limit_points >= 0),
    CONSTRAINT ck_ledger_account_lifetime CHECK (points_lifetime_days IS NULL OR points_lifetime_days > 0)
)
    """,
    """
CREATE UNIQUE INDEX uq_ledger_account_coalition ON ledger_account (kind) WHERE partner_id IS NULL AND member_id IS NULL
    """,
    """
CREATE UNIQUE INDEX uq_ledger_account_member ON ledger_account (member_id, kind) WHERE member_id IS NOT NULL
    """,
    """
CREATE UNIQUE INDEX uq_ledger_account_partner ON ledger_account (partner_id, kind) WHERE partner_id IS NOT NULL
    """,
    """
CREATE TABLE ledger_entry (
    id BIGSERIAL NOT NULL,
    kind TEXT NOT NULL,
    partner_id BIGINT,
    member_id BIGINT,
    counterparty_member_id BIGINT,
    points BIGINT NOT NULL,
    client_id TEXT,
    idempotency_key TEXT,
    request_hash BYTEA,
    reference TEXT,
    target_entry_id BIGINT,
    hold_id BIGINT,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    effective_at TIMESTAMP WITH TIME ZONE NOT NULL,
    metadata JSONB DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT pk_ledger_entry PRIMARY KEY (id),
    CONSTRAINT ck_ledger_entry_kind CHECK (kind IN ('EARN', 'REDEEM', 'HOLD', 'CAPTURE', 'RELEASE', 'REVERSAL', 'EXPIRY', 'TRANSFER', 'ADJUSTMENT')),
    CONSTRAINT ck_ledger_entry_points_positive CHECK (points > 0),
    CONSTRAINT ck_ledger_entry_idempotency CHECK ((client_id IS NULL) = (idempotency_key IS NULL)),
    CONSTRAINT ck_ledger_entry_key_length CHECK (char_length(idempotency_key) <= 200),
    CONSTRAINT ck_ledger_entry_reference_length CHECK (char_length(reference) <= 200),
    CONSTRAINT fk_ledger_entry_target_entry_id_ledger_entry FOREIGN KEY(target_entry_id) REFERENCES ledger_entry (id)
)
    """,
    """
CREATE INDEX ix_ledger_entry_effective_at ON ledger_entry (effective_at)
    """,
    """
CREATE INDEX ix_ledger_entry_member ON ledger_entry (member_id, id)
    """,
    """
CREATE INDEX ix_ledger_entry_partner ON ledger_entry (partner_id, id)
    """,
    """
CREATE INDEX ix_ledger_entry_target ON ledger_entry (target_entry_id) WHERE target_entry_id IS NOT NULL
    """,
    """
CREATE UNIQUE INDEX uq_ledger_entry_idempotency ON ledger_entry (client_id, idempotency_key)
    """,
    """
CREATE TABLE ledger_account_shard (
    account_id BIGINT NOT NULL,
    shard SMALLINT NOT NULL,
    balance BIGINT DEFAULT 0 NOT NULL,
    CONSTRAINT pk_ledger_account_shard PRIMARY KEY (account_id, shard),
    CONSTRAINT fk_ledger_account_shard_account_id_ledger_account FOREIGN KEY(account_id) REFERENCES ledger_account (id)
)
    """,
    """
CREATE TABLE ledger_hold (
    id BIGSERIAL NOT NULL,
    member_id BIGINT NOT NULL,
    partner_id BIGINT NOT NULL,
    points BIGINT NOT NULL,
    captured_points BIGINT DEFAULT 0 NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    hold_entry_id BIGINT NOT NULL,
    closing_entry_id BIGINT,
    CONSTRAINT pk_ledger_hold PRIMARY KEY (id),
    CONSTRAINT ck_ledger_hold_status CHECK (status IN ('ACTIVE', 'CAPTURED', 'RELEASED', 'EXPIRED')),
    CONSTRAINT ck_ledger_hold_points_positive CHECK (points > 0),
    CONSTRAINT ck_ledger_hold_captured_within_points CHECK (captured_points >= 0 AND captured_points <= points),
    CONSTRAINT ck_ledger_hold_closing_entry CHECK ((status = 'ACTIVE') = (closing_entry_id IS NULL)),
    CONSTRAINT fk_ledger_hold_hold_entry_id_ledger_entry FOREIGN KEY(hold_entry_id) REFERENCES ledger_entry (id),
    CONSTRAINT fk_ledger_hold_closing_entry_id_ledger_entry FOREIGN KEY(closing_entry_id) REFERENCES ledger_entry (id)
)
    """,
    """
CREATE INDEX ix_ledger_hold_active_expiry ON ledger_hold (expires_at) WHERE status = 'ACTIVE'
    """,
    """
CREATE INDEX ix_ledger_hold_member ON ledger_hold (member_id)
    """,
    """
CREATE TABLE ledger_lot (
    id BIGSERIAL NOT NULL,
    member_id BIGINT NOT NULL,
    issuer_partner_id BIGINT,
    origin TEXT NOT NULL,
    entry_id BIGINT NOT NULL,
    source_lot_id BIGINT,
    amount BIGINT NOT NULL,
    remaining BIGINT NOT NULL,
    earned_at TIMESTAMP WITH TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_ledger_lot PRIMARY KEY (id),
    CONSTRAINT ck_ledger_lot_origin CHECK (origin IN ('EARN', 'TRANSFER', 'ADJUSTMENT')),
    CONSTRAINT ck_ledger_lot_amount_positive CHECK (amount > 0),
    CONSTRAINT ck_ledger_lot_remaining_at_most_amount CHECK (remaining <= amount),
    CONSTRAINT ck_ledger_lot_expires_after_earned CHECK (expires_at > earned_at),
    CONSTRAINT fk_ledger_lot_entry_id_ledger_entry FOREIGN KEY(entry_id) REFERENCES ledger_entry (id),
    CONSTRAINT fk_ledger_lot_source_lot_id_ledger_lot FOREIGN KEY(source_lot_id) REFERENCES ledger_lot (id)
)
    """,
    """
CREATE INDEX ix_ledger_lot_entry ON ledger_lot (entry_id)
    """,
    """
CREATE INDEX ix_ledger_lot_expiry ON ledger_lot (expires_at) WHERE remaining > 0
    """,
    """
CREATE INDEX ix_ledger_lot_spendable ON ledger_lot (member_id, expires_at, id) WHERE remaining > 0
    """,
    """
CREATE TABLE ledger_posting (
    id BIGSERIAL NOT NULL,
    entry_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    CONSTRAINT pk_ledger_posting PRIMARY KEY (id),
    CONSTRAINT ck_ledger_posting_amount_not_zero CHECK (amount <> 0),
    CONSTRAINT fk_ledger_posting_entry_id_ledger_entry FOREIGN KEY(entry_id) REFERENCES ledger_entry (id),
    CONSTRAINT fk_ledger_posting_account_id_ledger_account FOREIGN KEY(account_id) REFERENCES ledger_account (id)
)
    """,
    """
CREATE INDEX ix_ledger_posting_account ON ledger_posting (account_id, id)
    """,
    """
CREATE INDEX ix_ledger_posting_entry ON ledger_posting (entry_id)
    """,
    """
CREATE TABLE ledger_lot_consumption (
    id BIGSERIAL NOT NULL,
    entry_id BIGINT NOT NULL,
    lot_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    points BIGINT NOT NULL,
    issuer_partner_id BIGINT,
    redeemer_partner_id BIGINT,
    hold_id BIGINT,
    CONSTRAINT pk_ledger_lot_consumption PRIMARY KEY (id),
    CONSTRAINT ck_ledger_lot_consumption_kind CHECK (kind IN ('HOLD', 'REDEEM', 'TRANSFER', 'EXPIRY', 'EARN_REVERSAL', 'ADJUSTMENT')),
    CONSTRAINT ck_ledger_lot_consumption_points_not_zero CHECK (points <> 0),
    CONSTRAINT ck_ledger_lot_consumption_redeemer CHECK (kind <> 'REDEEM' OR redeemer_partner_id IS NOT NULL),
    CONSTRAINT fk_ledger_lot_consumption_entry_id_ledger_entry FOREIGN KEY(entry_id) REFERENCES ledger_entry (id),
    CONSTRAINT fk_ledger_lot_consumption_lot_id_ledger_lot FOREIGN KEY(lot_id) REFERENCES ledger_lot (id)
)
    """,
    """
CREATE INDEX ix_ledger_lot_consumption_entry ON ledger_lot_consumption (entry_id)
    """,
    """
CREATE INDEX ix_ledger_lot_consumption_hold ON ledger_lot_consumption (hold_id) WHERE hold_id IS NOT NULL
    """,
    """
CREATE INDEX ix_ledger_lot_consumption_lot ON ledger_lot_consumption (lot_id)
    """,
]

TRIGGERS = [
    # The database refuses an unbalanced entry: checked at commit, for every posting
    # inserted (including one added later to an old entry) and for every new entry.
    """
    CREATE FUNCTION ledger_check_entry_balanced(target_entry_id bigint) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
        posting_count bigint;
        posting_sum numeric;
    BEGIN
        SELECT count(*), coalesce(sum(amount), 0) INTO posting_count, posting_sum
        FROM ledger_posting WHERE entry_id = target_entry_id;
        IF posting_count < 2 THEN
            RAISE EXCEPTION 'ledger entry % has % postings; an entry needs at least two',
                target_entry_id, posting_count USING ERRCODE = 'check_violation';
        END IF;
        IF posting_sum <> 0 THEN
            RAISE EXCEPTION 'ledger entry % is unbalanced: postings sum to %',
                target_entry_id, posting_sum USING ERRCODE = 'check_violation';
        END IF;
    END $$
    """,
    """
    CREATE FUNCTION ledger_posting_balanced_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ledger_check_entry_balanced(NEW.entry_id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_entry_balanced_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ledger_check_entry_balanced(NEW.id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_posting_balanced
    AFTER INSERT ON ledger_posting DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_posting_balanced_trigger()
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_entry_balanced
    AFTER INSERT ON ledger_entry DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced_trigger()
    """,
    # Append-only: entries, postings and lot consumptions are never updated or deleted.
    """
    CREATE FUNCTION ledger_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    *[
        statement
        for table in ("ledger_entry", "ledger_posting", "ledger_lot_consumption")
        for statement in (
            f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
            """,
            f"""
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()
            """,
        )
    ],
]

SHARDS = 16

SEED = [
    # Member ids are coalition-wide; the ledger hands them out when a member's accounts open.
    "CREATE SEQUENCE ledger_member_id_seq",
    # The coalition's own accounts, sharded because every expiry and adjustment hits them.
    """
    INSERT INTO ledger_account (kind, sharded)
    VALUES ('COALITION_BREAKAGE', true), ('COALITION_ADJUSTMENTS', true)
    """,
    f"""
    INSERT INTO ledger_account_shard (account_id, shard)
    SELECT a.id, s FROM ledger_account a, generate_series(0, {SHARDS - 1}) AS s
    WHERE a.kind IN ('COALITION_BREAKAGE', 'COALITION_ADJUSTMENTS')
    """,
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in (*TABLES, *TRIGGERS, *SEED):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only; restore from backup instead")
