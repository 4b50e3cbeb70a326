"""Settlement runs and their money journal.

A run's postings (in its settlement currency) must sum to zero, checked at commit like
the points ledger's entries; postings are append-only.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE settlement_run (
        id BIGSERIAL NOT NULL,
        period_start TIMESTAMP WITH TIME ZONE NOT NULL,
        period_end TIMESTAMP WITH TIME ZONE NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL,
        document JSONB NOT NULL,
        digest TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_settlement_run PRIMARY KEY (id),
        CONSTRAINT ck_settlement_run_period CHECK (period_start < period_end),
        CONSTRAINT ck_settlement_run_status CHECK (
            status IN ('DRAFT', 'SUPERSEDED', 'FINALIZED', 'PAID'))
    )
    """,
    "CREATE INDEX ix_settlement_run_period ON settlement_run (period_start, period_end)",
    """
    CREATE TABLE settlement_posting (
        id BIGSERIAL NOT NULL,
        run_id BIGINT NOT NULL,
        account TEXT NOT NULL,
        amount NUMERIC(24, 4) NOT NULL,
        CONSTRAINT pk_settlement_posting PRIMARY KEY (id),
        CONSTRAINT fk_settlement_posting_run_id_settlement_run
            FOREIGN KEY (run_id) REFERENCES settlement_run (id),
        CONSTRAINT ck_settlement_posting_amount_not_zero CHECK (amount <> 0)
    )
    """,
    "CREATE INDEX ix_settlement_posting_run_id ON settlement_posting (run_id)",
    """
    CREATE FUNCTION settlement_check_run_balanced() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE total numeric;
    BEGIN
        SELECT coalesce(sum(amount), 0) INTO total
        FROM settlement_posting WHERE run_id = NEW.run_id;
        IF total <> 0 THEN
            RAISE EXCEPTION 'settlement run % is unbalanced: postings sum to %',
                NEW.run_id, total USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER settlement_posting_balanced
    AFTER INSERT ON settlement_posting DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION settlement_check_run_balanced()
    """,
    """
    CREATE TRIGGER settlement_posting_append_only BEFORE UPDATE OR DELETE ON settlement_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
    """,
    "GRANT SELECT ON settlement_run, settlement_posting TO exchange_api",
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
