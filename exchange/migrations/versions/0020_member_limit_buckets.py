"""A member's own limit buckets: failed recipient look-ups of transferPoints, counted
per sending member (docs/decisions/0013).

A member reaches the exchange through tokens of several clients (every partner that
linked it may exchange one), so a bucket counting what the member did can't belong to
the client bound to the transaction, as the buckets of 0013 do: through another
client's token the member would neither see its count (a fresh allowance) nor be able
to update it (an error). ``member_id`` names the member a bucket belongs to; such a row
has no client, and row-level security lets that member, and only it, read and change it
through any client. An operator still reads every bucket; a partner sees none of its
members' buckets.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OPERATOR = f"{KIND} = 'OPERATOR'"
OWN_CLIENT = "limit_bucket.client_id = exchange_principal_client()"
OWN_MEMBER = f"({KIND} = 'MEMBER' AND limit_bucket.member_id = exchange_principal_member())"

STATEMENTS = [
    "ALTER TABLE limit_bucket ADD COLUMN member_id BIGINT",
    """
    ALTER TABLE limit_bucket ADD CONSTRAINT ck_limit_bucket_one_owner
    CHECK (member_id IS NULL OR client_id IS NULL)
    """,
    "DROP POLICY own_buckets ON limit_bucket",
    f"""
    CREATE POLICY own_buckets ON limit_bucket
    USING ({OPERATOR} OR {OWN_CLIENT} OR {OWN_MEMBER})
    WITH CHECK ({OWN_CLIENT} OR {OWN_MEMBER})
    """,
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    connection = op.get_bind()
    for statement in (
        "DROP POLICY own_buckets ON limit_bucket",
        "DELETE FROM limit_bucket WHERE member_id IS NOT NULL",
        "ALTER TABLE limit_bucket DROP COLUMN member_id",
        f"""
        CREATE POLICY own_buckets ON limit_bucket
        USING ({OPERATOR} OR {OWN_CLIENT}) WITH CHECK ({OWN_CLIENT})
        """,
    ):
        connection.exec_driver_sql(statement)
