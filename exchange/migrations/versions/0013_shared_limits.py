"""Limits shared by every server process: one leaky bucket per key (a client's query
cost, failed client authentications per client and per address), from which each
process leases chunks (docs/decisions/0010).

A row is written once per lease, never per request. ``level`` is how full the bucket was
at ``updated_at``; it drains at the limit's refill rate (the rate is the caller's, so a
row holds no policy). ``granted`` is what the last lease took, so the lease statement
can say what it gave.

Row-level security: a client's own buckets (its query cost) are leased within its
requests, under its scope; the scope now binds the OAuth client too
(``exchange.client_id``), and a lease stamps its row with it. The ``exchange_api`` role
sees and changes only the rows of the client bound; rows leased under the system scope
(failed authentications, where there is no caller yet) have no client and are the
system's alone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE FUNCTION exchange_principal_client() RETURNS text LANGUAGE sql STABLE AS $$
        SELECT nullif(current_setting('exchange.client_id', true), '')
    $$
    """,
    """
    CREATE TABLE limit_bucket (
        name TEXT NOT NULL,
        client_id TEXT DEFAULT exchange_principal_client(),
        level NUMERIC NOT NULL,
        granted BIGINT NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_limit_bucket PRIMARY KEY (name),
        CONSTRAINT ck_limit_bucket_name_length CHECK (length(name) <= 300),
        CONSTRAINT ck_limit_bucket_level_not_negative CHECK (level >= 0),
        CONSTRAINT ck_limit_bucket_granted_not_negative CHECK (granted >= 0)
    ) WITH (fillfactor = 50)
    """,
    "CREATE INDEX ix_limit_bucket_updated_at ON limit_bucket (updated_at)",
    "GRANT SELECT, INSERT, UPDATE ON limit_bucket TO exchange_api",
    "ALTER TABLE limit_bucket ENABLE ROW LEVEL SECURITY",
    """
    CREATE POLICY own_buckets ON limit_bucket
    USING (client_id = exchange_principal_client())
    WITH CHECK (client_id = exchange_principal_client())
    """,
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE limit_bucket")
    op.get_bind().exec_driver_sql("DROP FUNCTION exchange_principal_client()")
