"""walletUpdated: NOTIFY when a watched member's wallet changes.

Transactions that NOTIFY serialize their commits on PostgreSQL's notification queue
lock, so the ledger must not notify on every earn and redemption. A server that holds a
live subscription registers the member in ``wallet_watch`` (with a lease it renews); the
trigger notifies only for watched members, one index probe otherwise.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE wallet_watch (
        member_id BIGINT NOT NULL,
        watcher TEXT NOT NULL,
        expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_wallet_watch PRIMARY KEY (member_id, watcher)
    )
    """,
    """
    CREATE FUNCTION ledger_notify_watched_wallet() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM wallet_watch
                   WHERE member_id = NEW.member_id AND expires_at > now()) THEN
            PERFORM pg_notify('wallet_updated', NEW.member_id::text);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ledger_account_wallet_updated
    AFTER UPDATE OF balance ON ledger_account
    FOR EACH ROW WHEN (NEW.member_id IS NOT NULL)
    EXECUTE FUNCTION ledger_notify_watched_wallet()
    """,
    "GRANT SELECT, INSERT, UPDATE, DELETE ON wallet_watch TO exchange_api",
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
