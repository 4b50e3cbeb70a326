"""The ledger's invariants, checked against the whole database (``exchange verify``).

Each check is one SQL query that returns the offending rows (at most a few, as
examples); an empty result means the invariant holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exchange.kit.db import Connection, sql

EXAMPLES = 5

CHECKS: dict[str, str] = {
    "every entry has two or more postings summing to zero": """
        SELECT e.id, coalesce(sum(p.amount), 0) AS total, count(p.id) AS postings
        FROM ledger_entry e LEFT JOIN ledger_posting p ON p.entry_id = e.id
        GROUP BY e.id HAVING coalesce(sum(p.amount), 0) <> 0 OR count(p.id) < 2
    """,
    "all accounts together sum to zero": """
        SELECT total FROM (
            SELECT coalesce(sum(amount), 0) AS total FROM ledger_posting) AS t
        WHERE total <> 0
        UNION ALL
        SELECT stored FROM (
            SELECT (SELECT coalesce(sum(balance), 0) FROM ledger_account)
                 + (SELECT coalesce(sum(balance), 0) FROM ledger_account_shard) AS stored
        ) AS s WHERE stored <> 0
    """,
    "each stored balance equals the sum of its postings": """
        WITH posted AS (
            SELECT account_id, sum(amount) AS total FROM ledger_posting GROUP BY account_id
        ), sharded AS (
            SELECT account_id, sum(balance) AS total FROM ledger_account_shard
            GROUP BY account_id
        )
        SELECT a.id, a.kind, a.balance + coalesce(s.total, 0) AS stored,
               coalesce(p.total, 0) AS posted
        FROM ledger_account a
        LEFT JOIN posted p ON p.account_id = a.id
        LEFT JOIN sharded s ON s.account_id = a.id
        WHERE a.balance + coalesce(s.total, 0) <> coalesce(p.total, 0)
    """,
    "each wallet equals the sum of its lots' remaining": """
        WITH lots AS (
            SELECT member_id, sum(remaining) AS total FROM ledger_lot GROUP BY member_id
        )
        SELECT a.member_id, a.balance, coalesce(l.total, 0) AS lots
        FROM ledger_account a LEFT JOIN lots l ON l.member_id = a.member_id
        WHERE a.kind = 'MEMBER_WALLET' AND a.balance <> coalesce(l.total, 0)
    """,
    "no wallet is negative, except a debt a partner's contract allowed": """
        SELECT a.member_id, a.balance FROM ledger_account a
        WHERE a.kind = 'MEMBER_WALLET' AND a.balance < 0 AND a.balance < (
            SELECT coalesce(sum(l.remaining), 0) FROM ledger_lot l
            JOIN ledger_account p ON p.partner_id = l.issuer_partner_id
                 AND p.kind = 'PARTNER_ISSUED' AND p.allow_negative_reversal
            WHERE l.member_id = a.member_id AND l.remaining < 0)
    """,
    "each lot's consumptions account for what it has lost": """
        WITH consumed AS (
            SELECT lot_id, sum(points) AS total FROM ledger_lot_consumption GROUP BY lot_id
        )
        SELECT l.id, l.amount, l.remaining, coalesce(c.total, 0) AS consumed
        FROM ledger_lot l LEFT JOIN consumed c ON c.lot_id = l.id
        WHERE l.amount - l.remaining <> coalesce(c.total, 0)
    """,
    "each held balance equals its active holds, each hold its reservations": """
        SELECT a.member_id, a.balance, coalesce(h.total, 0) AS holds
        FROM ledger_account a LEFT JOIN (
            SELECT member_id, sum(points) AS total FROM ledger_hold
            WHERE status = 'ACTIVE' GROUP BY member_id) h ON h.member_id = a.member_id
        WHERE a.kind = 'MEMBER_HELD' AND a.balance <> coalesce(h.total, 0)
        UNION ALL
        SELECT h.id, h.points, coalesce(sum(c.points), 0) FROM ledger_hold h
        LEFT JOIN ledger_lot_consumption c ON c.hold_id = h.id AND c.kind = 'HOLD'
        GROUP BY h.id, h.points, h.status
        HAVING coalesce(sum(c.points), 0) <> CASE WHEN h.status = 'ACTIVE' THEN h.points ELSE 0 END
    """,
    "issued - redeemed - expired - adjusted - outstanding = 0 per issuing partner": """
        WITH issued AS (
            SELECT a.partner_id, -coalesce(sum(p.amount), 0) AS points
            FROM ledger_account a LEFT JOIN ledger_posting p ON p.account_id = a.id
            WHERE a.kind = 'PARTNER_ISSUED' GROUP BY a.partner_id
        ), spent AS (
            SELECT issuer_partner_id AS partner_id,
                   sum(points) FILTER (WHERE kind = 'REDEEM') AS redeemed,
                   sum(points) FILTER (WHERE kind = 'EXPIRY') AS expired,
                   sum(points) FILTER (WHERE kind = 'ADJUSTMENT') AS adjusted,
                   sum(points) FILTER (WHERE kind = 'HOLD') AS held
            FROM ledger_lot_consumption WHERE issuer_partner_id IS NOT NULL
            GROUP BY issuer_partner_id
        ), outstanding AS (
            SELECT issuer_partner_id AS partner_id, sum(remaining) AS points
            FROM ledger_lot WHERE issuer_partner_id IS NOT NULL GROUP BY issuer_partner_id
        )
        SELECT i.partner_id, i.points AS issued, s.redeemed, s.expired, s.adjusted,
               coalesce(o.points, 0) + coalesce(s.held, 0) AS outstanding
        FROM issued i
        LEFT JOIN spent s ON s.partner_id = i.partner_id
        LEFT JOIN outstanding o ON o.partner_id = i.partner_id
        WHERE i.points - coalesce(s.redeemed, 0) - coalesce(s.expired, 0)
              - coalesce(s.adjusted, 0) - coalesce(o.points, 0) - coalesce(s.held, 0) <> 0
    """,
    "redeemed and breakage accounts equal their lot consumptions": """
        WITH posted AS (
            SELECT a.id, a.kind, a.partner_id, coalesce(sum(p.amount), 0) AS total
            FROM ledger_account a LEFT JOIN ledger_posting p ON p.account_id = a.id
            WHERE a.kind IN ('PARTNER_REDEEMED', 'COALITION_BREAKAGE')
            GROUP BY a.id, a.kind, a.partner_id
        )
        SELECT posted.id, posted.kind, posted.total FROM posted
        WHERE posted.total <> CASE posted.kind
            WHEN 'PARTNER_REDEEMED' THEN (
                SELECT coalesce(sum(points), 0) FROM ledger_lot_consumption
                WHERE kind = 'REDEEM' AND redeemer_partner_id = posted.partner_id)
            ELSE (SELECT coalesce(sum(points), 0) FROM ledger_lot_consumption
                  WHERE kind = 'EXPIRY') END
    """,
    "no issuer's lots are outstanding below zero without a permitted debt": """
        SELECT l.id, l.remaining FROM ledger_lot l
        LEFT JOIN ledger_account p ON p.partner_id = l.issuer_partner_id
             AND p.kind = 'PARTNER_ISSUED'
        WHERE l.remaining < 0 AND NOT coalesce(p.allow_negative_reversal, false)
    """,
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyReport:
    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


async def verify(conn: Connection) -> VerifyReport:
    """Run every invariant check in one consistent snapshot."""
    await conn.execute(sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    results = []
    for name, query in CHECKS.items():
        rows = (await conn.execute(sql(f"{query} LIMIT {EXAMPLES}"))).all()
        results.append(
            CheckResult(name=name, ok=not rows, examples=[str(tuple(row)) for row in rows])
        )
    return VerifyReport(checks=results)
