"""Insights at scale: a partner's lots and purchases read from indexes, and
cross-shopping counted by a function that joins the partner's links instead of probing
each row.

Three figures of ``insights`` for one partner scanned rows of every partner, and now
read the partner's own from an index that carries the columns they sum:

- ``ix_ledger_lot_issuer_outstanding``: the lots still holding points, by issuer (the
  liability; also the credit limit's ``ledger_outstanding_points``, which an earn of a
  partner with a credit limit runs on every issuance and which scanned every lot too);
- ``ix_ledger_lot_issued``: the lots earned, by issuer and moment (points issued in the
  window);
- ``ix_purchase_partner_occurred`` gains the member and the amount (spend, spenders and
  the months of the retention cohorts, read from the index).

``ledger_lot`` already had partial indexes on ``remaining``, so no update of a lot was a
HOT update; each lot written now adds two more index entries, each purchase a wider one.

``insights_cross_shopping`` counts, of a partner's consenting members (linked to it and
with a purchase there), how many bought each category at other partners since a moment,
only categories with at least ``k`` of them. Under the partner's row-level security the
other partners' category rows are admitted by ``exchange_linked``, a probe per row
(~16 µs): at 1,000,000 members that is seconds. Run as the owner, the function finds the
members by joining the partner's links once, and returns aggregates only. It decides
whose figures they are from the caller, not from its argument: a partner always gets its
own, an operator the partner it names (NULL: the coalition's), anyone else an error.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OPERATOR = f"{KIND} = 'OPERATOR'"
IS_PARTNER = f"{KIND} = 'PARTNER'"
OWNER = "SECURITY DEFINER SET search_path = pg_catalog, public"
API_CALLER = "current_setting('role') = 'exchange_api'"

SIGNATURE = "insights_cross_shopping(bigint, timestamptz, integer)"

#: Categories bought elsewhere since ``since`` by the members of ``mine`` (a CTE the
#: caller defines), only those with at least ``k`` members; the population beside.
SHOPPED = """
    SELECT c.category, count(DISTINCT c.member_id)::integer,
           (SELECT count(*) FROM mine)::integer
    FROM member_category_stats c JOIN mine m ON m.member_id = c.member_id
    WHERE (wanted IS NULL OR c.partner_id <> wanted) AND c.last_purchase_at >= since
    GROUP BY c.category HAVING count(DISTINCT c.member_id) >= k
"""

STATEMENTS = [
    # Purchases first: a purchase writes its row before its lots, so a migration that
    # held the lots while waiting for the purchases would deadlock with one (it did,
    # applied beside a running seed).
    "DROP INDEX ix_purchase_partner_occurred",
    """
    CREATE INDEX ix_purchase_partner_occurred ON purchase (partner_id, occurred_at)
    INCLUDE (member_id, amount)
    """,
    """
    CREATE INDEX ix_ledger_lot_issuer_outstanding ON ledger_lot (issuer_partner_id)
    INCLUDE (remaining) WHERE remaining <> 0
    """,
    """
    CREATE INDEX ix_ledger_lot_issued ON ledger_lot (issuer_partner_id, earned_at)
    INCLUDE (amount) WHERE origin = 'EARN'
    """,
    f"""
    CREATE FUNCTION insights_cross_shopping(wanted bigint, since timestamptz, k integer)
    RETURNS TABLE (category text, members integer, population integer)
    LANGUAGE plpgsql STABLE {OWNER} AS $$
    #variable_conflict use_column
    BEGIN
        IF {API_CALLER} AND NOT {OPERATOR} THEN
            IF NOT {IS_PARTNER} THEN
                RAISE EXCEPTION 'cross-shopping is for partners and operators'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            wanted := exchange_principal_partner();
        END IF;
        IF wanted IS NULL THEN
            RETURN QUERY
            WITH mine AS (
                SELECT p.member_id FROM member_profile p
                WHERE p.consent_cross_partner
                  AND EXISTS (SELECT 1 FROM member_partner_stats s
                              WHERE s.member_id = p.member_id)
            ) {SHOPPED};
        ELSE
            RETURN QUERY
            WITH mine AS (
                SELECT s.member_id FROM member_partner_stats s
                JOIN member_profile p ON p.member_id = s.member_id AND p.consent_cross_partner
                JOIN member_link l ON l.member_id = s.member_id AND l.partner_id = wanted
                WHERE s.partner_id = wanted
            ) {SHOPPED};
        END IF;
    END $$
    """,
    f"REVOKE EXECUTE ON FUNCTION {SIGNATURE} FROM PUBLIC",
    f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO exchange_api",
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    connection = op.get_bind()
    for statement in (
        f"DROP FUNCTION {SIGNATURE}",
        "DROP INDEX ix_ledger_lot_issuer_outstanding",
        "DROP INDEX ix_ledger_lot_issued",
        "DROP INDEX ix_purchase_partner_occurred",
        "CREATE INDEX ix_purchase_partner_occurred ON purchase (partner_id, occurred_at)",
    ):
        connection.exec_driver_sql(statement)
