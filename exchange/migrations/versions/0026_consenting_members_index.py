"""Two indexes that let cross-shopping find a partner's consenting members from indexes
alone.

``insights_cross_shopping`` starts from the members who consented to cross-partner use
(a scan of every profile: 1,000,000 rows, a quarter of them consenting) and the
partner's links (214,000 of seed-0, read from the table because no index held the
member). With a partial index of the consenting members and an index of each partner's
members, both are index-only: the function took 0.46-0.48 s against 0.67-0.90 s (the
5,000,000-purchase database, three calls each in one sitting). The consent flag changes
only when a member gives or withdraws it, so the RFM refresh's updates of a profile stay
heap-only; a link is written once.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    connection.exec_driver_sql(
        "CREATE INDEX ix_member_profile_consenting ON member_profile (member_id)"
        " WHERE consent_cross_partner"
    )
    connection.exec_driver_sql(
        "CREATE INDEX ix_member_link_partner_member ON member_link (partner_id, member_id)"
    )


def downgrade() -> None:
    connection = op.get_bind()
    connection.exec_driver_sql("DROP INDEX ix_member_link_partner_member")
    connection.exec_driver_sql("DROP INDEX ix_member_profile_consenting")
