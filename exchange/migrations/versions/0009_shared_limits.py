"""Limits shared by every server process: one leaky bucket per key (a client's query
cost, failed client authentications per client and per address), from which each
process leases chunks (docs/decisions/0010).

A row is written once per lease, never per request. ``level`` is how full the bucket was
at ``updated_at``; it drains at the limit's refill rate (the rate is the caller's, so a
row holds no policy). ``granted`` is what the last lease took, so the lease statement
can say what it gave.

The table holds the service's own bookkeeping, keyed by client ids and addresses, and
only the system scope uses it: row-level security is on with no policy, so the
``exchange_api`` role (which the default privileges of 0003 grant on every new table)
sees none of it.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE limit_bucket (
        name TEXT NOT NULL,
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
    "ALTER TABLE limit_bucket ENABLE ROW LEVEL SECURITY",
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE limit_bucket")
