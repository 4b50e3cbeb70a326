"""Settlement lifecycle: a run's cut-off (entries created after it are late), when it
was finalized and paid, and payments recorded per instruction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE settlement_run ADD COLUMN cutoff TIMESTAMP WITH TIME ZONE",
    "UPDATE settlement_run SET cutoff = created_at",
    "ALTER TABLE settlement_run ALTER COLUMN cutoff SET NOT NULL",
    "ALTER TABLE settlement_run ADD COLUMN finalized_at TIMESTAMP WITH TIME ZONE",
    "ALTER TABLE settlement_run ADD COLUMN paid_at TIMESTAMP WITH TIME ZONE",
    """
    CREATE TABLE settlement_payment (
        run_id BIGINT NOT NULL,
        instruction INTEGER NOT NULL,
        reference TEXT NOT NULL,
        paid_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_settlement_payment PRIMARY KEY (run_id, instruction),
        CONSTRAINT fk_settlement_payment_run_id_settlement_run
            FOREIGN KEY (run_id) REFERENCES settlement_run (id)
    )
    """,
    "GRANT SELECT ON settlement_payment TO exchange_api",
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
