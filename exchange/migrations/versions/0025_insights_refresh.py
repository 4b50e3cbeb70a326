"""When the RFM quintiles were last recomputed, kept in the database.

``serve`` recomputed them when each worker started and then every
``EXCHANGE_RFM_REFRESH_MINUTES`` by its own clock: every restart, and every worker of
every server, ran the full recomputation (44 s at 1,000,000 members and 5,000,000
purchases, one transaction rewriting every profile row), two workers at once. Now the
one row of ``insights_refresh`` says when it last ran; the worker that recomputes holds
the row, the others skip, and nobody recomputes before it is due. It starts at the
epoch (not '-infinity', which the driver reads as a time without a zone): the first
server to start recomputes.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    connection.exec_driver_sql(
        """
        CREATE TABLE insights_refresh (
            id SMALLINT NOT NULL,
            refreshed_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT pk_insights_refresh PRIMARY KEY (id),
            CONSTRAINT ck_insights_refresh_one_row CHECK (id = 1)
        )
        """
    )
    # system work only (the sweeper, the CLI): the API role reaches none of it
    connection.exec_driver_sql("REVOKE ALL ON insights_refresh FROM exchange_api")
    connection.exec_driver_sql("INSERT INTO insights_refresh VALUES (1, '1970-01-01 00:00:00+00')")


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE insights_refresh")
