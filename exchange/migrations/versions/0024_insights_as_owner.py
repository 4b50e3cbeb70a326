"""The liability and the window's KPIs counted by functions that run as the owner, like
cross-shopping (0023), and one rule for whose figures they are.

Under a partner's row-level security every purchase and lot of the partner is checked by
the policy as it is read: at 1,000,000 members the window's purchases (~500,000 of one
partner in 90 days) took ~0.4 s to read with the check against ~0.1 s without it, the
issued lots could not be read from their index alone (the policy needs columns the index
does not hold), and no read could run in parallel (the policy's functions are not
parallel-safe). Run as the owner, the same statements read indexes only, in parallel,
with room to hash in memory (``ANALYTIC``: settings of the functions alone).

What keeps the partner inside its own figures is ``insights_partner``: the partner a
call counts, decided from the caller and not from the argument. A partner always gets
its own, an operator the partner it names (NULL: every partner), anyone else an error;
a caller that is not the API's role (the CLI's report, run as the owner) gets what it
names. The three functions return aggregates only, and each starts with it.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OWNER = "SECURITY DEFINER SET search_path = pg_catalog, public"
#: The function's own settings for a statement that reads hundreds of thousands of rows
#: once: room to hash in memory, and parallel plans at a lower estimate than the
#: defaults', which are made for many short statements (measured on the 5,000,000-purchase
#: database: the KPI statement 0.96-1.13 s -> 0.74-0.91 s, cross-shopping 0.72-0.91 s ->
#: 0.64-0.69 s, each three times in one sitting).
ANALYTIC = "SET work_mem = '64MB' SET parallel_setup_cost = 10 SET parallel_tuple_cost = 0.001"

PARTNER_RULE = f"""
CREATE FUNCTION insights_partner(wanted bigint) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public AS $$
BEGIN
    IF current_setting('role') <> 'exchange_api' OR {KIND} = 'OPERATOR' THEN
        RETURN wanted;
    END IF;
    IF {KIND} = 'PARTNER' THEN
        RETURN exchange_principal_partner();
    END IF;
    RAISE EXCEPTION 'insights are for partners and operators'
        USING ERRCODE = 'insufficient_privilege';
END $$
"""

#: Categories bought elsewhere since ``since`` by the members of ``mine`` (a CTE the
#: caller defines), only those with at least ``k`` members; the population beside.
SHOPPED = """
    SELECT c.category, count(DISTINCT c.member_id)::integer,
           (SELECT count(*) FROM mine)::integer
    FROM member_category_stats c JOIN mine m ON m.member_id = c.member_id
    WHERE (wanted IS NULL OR c.partner_id <> wanted) AND c.last_purchase_at >= since
    GROUP BY c.category HAVING count(DISTINCT c.member_id) >= k
"""

CROSS_SHOPPING = f"""
CREATE OR REPLACE FUNCTION insights_cross_shopping(wanted bigint, since timestamptz, k integer)
RETURNS TABLE (category text, members integer, population integer)
LANGUAGE plpgsql STABLE {OWNER} {ANALYTIC} AS $$
#variable_conflict use_column
BEGIN
    wanted := insights_partner(wanted);
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
"""

LIABILITY = f"""
CREATE FUNCTION insights_liability(wanted bigint)
RETURNS TABLE (issuer_partner_id bigint, points numeric)
LANGUAGE plpgsql STABLE {OWNER} {ANALYTIC} AS $$
BEGIN
    -- EXECUTE plans for the values given: one partner's lots come from its index
    RETURN QUERY EXECUTE '
        SELECT issuer_partner_id, sum(remaining)::numeric FROM ledger_lot
        WHERE ($1 IS NULL OR issuer_partner_id = $1) AND remaining > 0
        GROUP BY issuer_partner_id ORDER BY issuer_partner_id NULLS FIRST'
    USING insights_partner(wanted);
END $$
"""

#: The window's figures of the partner $1 (NULL: every partner) in [$2, $3). Members come
#: from their profile rows (a partner's are one per member; the operator's are summed):
#: the four counts and the spenders. The purchases are read twice from the index that
#: holds member and amount: once to sum the spend, once for the months each member
#: bought in (the retention cohorts: members by the month of their first purchase in the
#: window, and how many of them bought in each later month).
KPIS_STATEMENT = """
WITH moved AS (
    SELECT c.kind, sum(c.points) AS points
    FROM ledger_lot_consumption c JOIN ledger_entry e ON e.id = c.entry_id
    WHERE ($1 IS NULL OR c.issuer_partner_id = $1)
      AND c.kind IN (''REDEEM'', ''EXPIRY'')
      AND e.effective_at >= $2 AND e.effective_at < $3
    GROUP BY c.kind
), members AS MATERIALIZED (
    SELECT member_id, first_purchase_at AS first_at, last_purchase_at AS last_at, purchases
    FROM member_partner_stats WHERE partner_id = $1
    UNION ALL
    SELECT member_id, min(first_purchase_at), max(last_purchase_at), sum(purchases)
    FROM member_partner_stats WHERE $1 IS NULL
    GROUP BY member_id
), counts AS (
    SELECT count(*) FILTER (WHERE last_at >= $3 - interval ''30 days'' AND last_at < $3)
             AS active_30,
           count(*) FILTER (WHERE last_at >= $3 - interval ''90 days'' AND last_at < $3)
             AS active_90,
           count(*) FILTER (WHERE purchases >= 2) AS repeaters,
           count(*) AS purchasers
    FROM members
), months AS MATERIALIZED (
    SELECT DISTINCT member_id, date_trunc(''month'', occurred_at AT TIME ZONE ''UTC'') AS month
    FROM purchase
    WHERE ($1 IS NULL OR partner_id = $1) AND occurred_at >= $2 AND occurred_at < $3
), counted AS (
    SELECT f.cohort, m.month, count(*)::integer AS members
    FROM (SELECT member_id, date_trunc(''month'', first_at AT TIME ZONE ''UTC'') AS cohort
          FROM members WHERE first_at >= $2 AND first_at < $3) f
    JOIN months m ON m.member_id = f.member_id
    GROUP BY 1, 2
), cohorts AS (
    SELECT to_char(cohort, ''YYYY-MM'') AS cohort,
           ((extract(year FROM month) - extract(year FROM cohort)) * 12
            + extract(month FROM month) - extract(month FROM cohort))::integer
             AS offset_months,
           members
    FROM counted
)
SELECT
  (SELECT coalesce(sum(amount), 0) FROM ledger_lot
   WHERE ($1 IS NULL OR issuer_partner_id = $1) AND origin = ''EARN''
     AND earned_at >= $2 AND earned_at < $3)::numeric,
  coalesce((SELECT points FROM moved WHERE kind = ''REDEEM''), 0)::numeric,
  coalesce((SELECT points FROM moved WHERE kind = ''EXPIRY''), 0)::numeric,
  counts.active_30, counts.active_90, counts.repeaters, counts.purchasers,
  (SELECT coalesce(sum(amount), 0) FROM purchase
   WHERE ($1 IS NULL OR partner_id = $1) AND occurred_at >= $2 AND occurred_at < $3),
  -- spenders: a member whose first or last purchase is in the window bought in it; one
  -- who bought before and after it is looked up in the months (rare when it ends now)
  (SELECT count(*) FROM members
   WHERE (first_at >= $2 AND first_at < $3) OR (last_at >= $2 AND last_at < $3)
      OR (first_at < $2 AND last_at >= $3
          AND EXISTS (SELECT 1 FROM months m WHERE m.member_id = members.member_id))),
  (SELECT array_agg(cohort ORDER BY cohort, offset_months) FROM cohorts),
  (SELECT array_agg(offset_months ORDER BY cohort, offset_months) FROM cohorts),
  (SELECT array_agg(members ORDER BY cohort, offset_months) FROM cohorts)
FROM counts
"""

KPIS = f"""
CREATE FUNCTION insights_kpis(wanted bigint, since timestamptz, until timestamptz)
RETURNS TABLE (
    issued numeric, redeemed numeric, expired numeric, active_30 bigint,
    active_90 bigint, repeaters bigint, purchasers bigint, spend numeric, spenders bigint,
    cohorts text[], offsets integer[], cohort_members integer[]
)
LANGUAGE plpgsql STABLE {OWNER} {ANALYTIC} AS $$
BEGIN
    RETURN QUERY EXECUTE '{KPIS_STATEMENT}' USING insights_partner(wanted), since, until;
END $$
"""

PARTNER_RULE_CALL = "wanted := insights_partner(wanted);"

#: What cross-shopping decided in its own body before (downgrade).
RULE_OF_0023 = f"""
    IF current_setting('role') = 'exchange_api' AND NOT {KIND} = 'OPERATOR' THEN
        IF NOT {KIND} = 'PARTNER' THEN
            RAISE EXCEPTION 'cross-shopping is for partners and operators'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        wanted := exchange_principal_partner();
    END IF;
"""

SIGNATURES = (
    "insights_liability(bigint)",
    "insights_kpis(bigint, timestamptz, timestamptz)",
)


def upgrade() -> None:
    connection = op.get_bind()
    for statement in (PARTNER_RULE, CROSS_SHOPPING, LIABILITY, KPIS):
        connection.exec_driver_sql(statement)
    for signature in SIGNATURES:
        connection.exec_driver_sql(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
        connection.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION {signature} TO exchange_api")


def downgrade() -> None:
    connection = op.get_bind()
    for signature in SIGNATURES:
        connection.exec_driver_sql(f"DROP FUNCTION {signature}")
    connection.exec_driver_sql(CROSS_SHOPPING.replace(PARTNER_RULE_CALL, RULE_OF_0023))
    connection.exec_driver_sql("DROP FUNCTION insights_partner(bigint)")
