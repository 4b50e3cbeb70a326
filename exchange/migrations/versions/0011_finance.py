"""Which settlement run supersedes which: a superseded draft names the run that replaced
it (drafts stay append-only: the old run's document and postings are never rewritten;
marking it SUPERSEDED already updated its status, and now records by whom in the same
statement).

Existing superseded drafts are backfilled with the next run of exactly their period (the
only run that can supersede a draft). A check keeps status and successor together.

Revision ID: 0011
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    ALTER TABLE settlement_run ADD COLUMN superseded_by BIGINT
        CONSTRAINT fk_settlement_run_superseded_by_settlement_run REFERENCES settlement_run (id)
    """,
    """
    UPDATE settlement_run r SET superseded_by = (
        SELECT min(n.id) FROM settlement_run n
        WHERE n.period_start = r.period_start AND n.period_end = r.period_end AND n.id > r.id)
    WHERE r.status = 'SUPERSEDED'
    """,
    """
    ALTER TABLE settlement_run ADD CONSTRAINT ck_settlement_run_superseded
        CHECK ((status = 'SUPERSEDED') = (superseded_by IS NOT NULL))
    """,
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
