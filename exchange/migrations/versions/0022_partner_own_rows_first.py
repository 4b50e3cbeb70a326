"""A partner's own rows, admitted first: its profile and category rows (``partner_id``)
and the lots it issued (``issuer_partner_id``).

Until now these tables admitted a partner only through ``exchange_linked(member_id)``, a
PL/pgSQL probe of ``member_link`` run for every row a statement scans (~16 µs a row):
counting one partner's 112,891 profile rows took 1.8 s under its scope against 44 ms as
the operator, and the insights of one partner over 2,000,000 purchases 18.7 s
(docs/performance.md). A partner's own rows are now admitted by a comparison with the
caller's partner, read once per statement (``(SELECT exchange_principal_partner())`` is
an InitPlan, not a call per row), before the probe.

What this admits that was hidden before: a partner's own profile and category rows, and
the lots it issued, of members it has since unlinked. They are its own purchases' figures
and the points it still owes (its liability), as its purchases and its entries already
are; another partner's rows are admitted only as before.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OPERATOR = f"{KIND} = 'OPERATOR'"
MEMBERS = (
    f"{OPERATOR} OR ({KIND} = 'MEMBER' AND {{table}}.member_id = exchange_principal_member())"
    " OR exchange_linked({table}.member_id)"
)
ONCE_KIND = f"(SELECT {KIND})"


def own_first(column: str) -> str:
    """The partner's own rows (``column`` names the partner), then everything MEMBERS
    admits; the caller read once per statement."""
    return (
        f"({ONCE_KIND} = 'PARTNER' AND {{table}}.{column} = (SELECT exchange_principal_partner()))"
        f" OR {MEMBERS}"
    )


STATS = ("member_partner_stats", "member_category_stats")


def _policies(stats: str, lot: str) -> list[str]:
    statements = []
    for table in STATS:
        statements += [
            f"DROP POLICY own_rows ON {table}",
            f"CREATE POLICY own_rows ON {table} FOR ALL USING ({stats}) WITH CHECK ({stats})",
        ]
    statements += [
        "DROP POLICY visible ON ledger_lot",
        f"CREATE POLICY visible ON ledger_lot FOR SELECT USING ({lot})",
    ]
    return [statement.replace("{table}", _table(statement)) for statement in statements]


def _table(statement: str) -> str:
    return statement.split(" ON ", 1)[1].split()[0]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in _policies(own_first("partner_id"), own_first("issuer_partner_id")):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    connection = op.get_bind()
    for statement in _policies(MEMBERS, MEMBERS):
        connection.exec_driver_sql(statement)
