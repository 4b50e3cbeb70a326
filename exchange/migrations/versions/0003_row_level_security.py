"""Row-level security on partner-scoped tables, as defence in depth.

API requests run their transaction as the ``exchange_api`` role (``SET LOCAL ROLE``),
with the caller bound by ``set_config('exchange.*', ..., true)``. Policies let an
operator see everything, a partner its own rows, a member its own rows, and fail closed:
with no principal bound nothing is visible. Internal work (migrations, the CLI, the
sweeps) runs as the owning role, which row-level security does not restrict.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OWN_PARTNER = f"({KIND} = 'PARTNER' AND partner_id = exchange_principal_partner())"
OWN_MEMBER = f"({KIND} = 'MEMBER' AND member_id = exchange_principal_member())"
OPERATOR = f"{KIND} = 'OPERATOR'"

STATEMENTS = [
    """
    DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'exchange_api') THEN
            CREATE ROLE exchange_api NOLOGIN NOBYPASSRLS;
        END IF;
    END $$
    """,
    "GRANT exchange_api TO CURRENT_USER",
    "GRANT USAGE ON SCHEMA public TO exchange_api",
    "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO exchange_api",
    "GRANT DELETE ON member_link TO exchange_api",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO exchange_api",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO exchange_api",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO exchange_api",
    """
    CREATE FUNCTION exchange_principal_kind() RETURNS text LANGUAGE sql STABLE AS $$
        SELECT coalesce(current_setting('exchange.principal_kind', true), '')
    $$
    """,
    """
    CREATE FUNCTION exchange_principal_partner() RETURNS bigint LANGUAGE sql STABLE AS $$
        SELECT nullif(current_setting('exchange.partner_id', true), '')::bigint
    $$
    """,
    """
    CREATE FUNCTION exchange_principal_member() RETURNS bigint LANGUAGE sql STABLE AS $$
        SELECT nullif(current_setting('exchange.member_id', true), '')::bigint
    $$
    """,
    # member_link: a partner's own refs; a member's own links.
    "ALTER TABLE member_link ENABLE ROW LEVEL SECURITY",
    f"CREATE POLICY own_rows ON member_link USING ({OPERATOR} OR {OWN_PARTNER} OR {OWN_MEMBER})"
    f" WITH CHECK ({OPERATOR} OR {OWN_PARTNER})",
    # ledger_hold: a partner's own holds; a member's own holds.
    "ALTER TABLE ledger_hold ENABLE ROW LEVEL SECURITY",
    f"CREATE POLICY own_rows ON ledger_hold USING ({OPERATOR} OR {OWN_PARTNER} OR {OWN_MEMBER})"
    f" WITH CHECK ({OPERATOR} OR {OWN_PARTNER})",
    # ledger_entry: a partner's own entries, plus the partner-less entries (expiry,
    # transfers, adjustments) of members it has linked; a member's own entries.
    "ALTER TABLE ledger_entry ENABLE ROW LEVEL SECURITY",
    f"""
    CREATE POLICY own_rows ON ledger_entry USING (
        {OPERATOR} OR {OWN_PARTNER}
        OR ({KIND} = 'PARTNER' AND partner_id IS NULL AND member_id IN (
            SELECT l.member_id FROM member_link l
            WHERE l.partner_id = exchange_principal_partner()))
        OR ({KIND} = 'MEMBER' AND exchange_principal_member() IN (member_id, counterparty_member_id))
    ) WITH CHECK ({OPERATOR} OR {OWN_PARTNER} OR partner_id IS NULL)
    """,
    # oauth_client and partner_contract: a partner's own.
    "ALTER TABLE oauth_client ENABLE ROW LEVEL SECURITY",
    f"CREATE POLICY own_rows ON oauth_client USING ({OPERATOR} OR {OWN_PARTNER})",
    "ALTER TABLE partner_contract ENABLE ROW LEVEL SECURITY",
    f"CREATE POLICY own_rows ON partner_contract USING ({OPERATOR} OR {OWN_PARTNER})",
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
