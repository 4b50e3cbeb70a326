"""All SQL of settlement: what the points ledger says about a period, and the runs."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from exchange.kit.db import Connection, Row, sql

#: Each contract version with the span it is in force: from its effective_from to the
#: next version's (of two versions from the same instant, the later one holds the whole
#: span and the earlier an empty one). An entry is priced by the version in force at its
#: effective_at, found by a join on these few rows (a hash on the partner), not by a
#: lookup per entry.
_TERMS = """
    terms AS (
        SELECT partner_id, version, effective_from,
               lead(effective_from) OVER (
                   PARTITION BY partner_id ORDER BY effective_from, version) AS until
        FROM partner_contract)
"""


def _in_force(alias: str, partner: str) -> str:
    """The join of ``terms`` as ``alias``: the version of ``partner``'s contract in force
    at the entry's effective_at (no row, so NULL, before its first contract)."""
    return (
        f"LEFT JOIN terms {alias} ON {alias}.partner_id = {partner}"
        f" AND {alias}.effective_from <= e.effective_at"
        f" AND ({alias}.until IS NULL OR e.effective_at < {alias}.until)"
    )


#: Entries a run settles: booked in its period and created by its cut-off ...
REGULAR = "e.effective_at >= :start AND e.effective_at < :end AND e.created_at <= :cutoff"
#: ... and, as prior-period adjustments, entries booked into a period a FINALIZED run
#: closed, created after that run's cut-off, after the previous finalized run's cut-off
#: (which settled what came before) and by this run's cut-off.
LATE = """
    e.created_at > :since AND e.created_at <= :cutoff AND EXISTS (
        SELECT 1 FROM settlement_run r WHERE r.status IN ('FINALIZED', 'PAID')
          AND e.effective_at >= r.period_start AND e.effective_at < r.period_end
          AND e.created_at > r.cutoff)
"""


def window(late: bool) -> str:
    return LATE if late else REGULAR


async def issued(conn: Connection, *, params: dict[str, Any], late: bool = False) -> list[Row]:
    """Points issued per issuing partner and contract version, net of earn reversals
    booked in the period: from the lots earns created (so a co-funded campaign's lot is
    its funder's issuance) and the reversals' consumptions of them. Coalition-issued
    points (no issuer) are nobody's issuance to settle."""
    result = await conn.execute(
        sql(
            f"""
            WITH {_TERMS}
            SELECT l.issuer_partner_id AS partner_id, c.version AS version,
                   sum(l.amount) AS points
            FROM ledger_lot l JOIN ledger_entry e ON e.id = l.entry_id
            {_in_force("c", "l.issuer_partner_id")}
            WHERE {window(late)} AND e.kind = 'EARN' AND l.origin = 'EARN'
              AND l.issuer_partner_id IS NOT NULL
            GROUP BY l.issuer_partner_id, c.version
            UNION ALL
            SELECT r.issuer_partner_id, c.version, -sum(r.points)
            FROM ledger_lot_consumption r JOIN ledger_entry e ON e.id = r.entry_id
            {_in_force("c", "r.issuer_partner_id")}
            WHERE {window(late)} AND r.kind = 'EARN_REVERSAL' AND r.issuer_partner_id IS NOT NULL
            GROUP BY r.issuer_partner_id, c.version
            """
        ),
        params,
    )
    return list(result.all())


async def campaign_issuance(conn: Connection, *, params: dict[str, Any]) -> list[Row]:
    """Points each campaign's funders issued in the period (the lots of earns a purchase
    booked for a campaign), per funder and contract version."""
    result = await conn.execute(
        sql(
            f"""
            WITH {_TERMS}
            SELECT e.metadata->>'campaign' AS campaign_id,
                   max(e.metadata->>'campaign_name') AS campaign_name,
                   l.issuer_partner_id AS partner_id, c.version AS version,
                   sum(l.amount) AS points
            FROM ledger_lot l JOIN ledger_entry e ON e.id = l.entry_id
            {_in_force("c", "l.issuer_partner_id")}
            WHERE {window(False)} AND e.kind = 'EARN' AND l.origin = 'EARN'
              AND e.metadata->>'campaign' IS NOT NULL
            GROUP BY e.metadata->>'campaign', l.issuer_partner_id, c.version
            ORDER BY 1, 3 NULLS FIRST
            """
        ),
        params,
    )
    return list(result.all())


async def redeemed(conn: Connection, *, params: dict[str, Any], late: bool = False) -> list[Row]:
    """Points redeemed per (issuer, redeemer) and the contract versions in force, from lot
    consumptions, net of redemption reversals booked in the period."""
    result = await conn.execute(
        sql(
            f"""
            WITH {_TERMS}
            SELECT c.issuer_partner_id AS issuer_id, c.redeemer_partner_id AS redeemer_id,
                   ic.version AS issuer_version, rc.version AS redeemer_version,
                   sum(c.points) AS points
            FROM ledger_lot_consumption c
            JOIN ledger_entry e ON e.id = c.entry_id
            {_in_force("ic", "c.issuer_partner_id")}
            {_in_force("rc", "c.redeemer_partner_id")}
            WHERE c.kind = 'REDEEM' AND {window(late)}
            GROUP BY c.issuer_partner_id, c.redeemer_partner_id, ic.version, rc.version
            """
        ),
        params,
    )
    return list(result.all())


async def expired(conn: Connection, *, params: dict[str, Any], late: bool = False) -> list[Row]:
    result = await conn.execute(
        sql(
            f"""
            SELECT c.issuer_partner_id AS partner_id, sum(c.points) AS points
            FROM ledger_lot_consumption c JOIN ledger_entry e ON e.id = c.entry_id
            WHERE c.kind = 'EXPIRY' AND {window(late)}
            GROUP BY c.issuer_partner_id
            """
        ),
        params,
    )
    return list(result.all())


async def contracts(conn: Connection, *, partner_ids: list[int]) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT c.partner_id, c.version, c.currency, c.issue_price, c.redemption_price,
                   c.fee_rate, c.funding_model, p.name
            FROM partner_contract c JOIN partner p ON p.id = c.partner_id
            WHERE c.partner_id = ANY(:ids)
            """
        ),
        {"ids": partner_ids},
    )
    return list(result.all())


async def insert_run(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    currency: str,
    document: dict[str, Any],
    digest: str,
    now: datetime,
    cutoff: datetime,
) -> int:
    result = await conn.execute(
        sql(
            """
            INSERT INTO settlement_run (period_start, period_end, currency, status, document,
                digest, created_at, cutoff)
            VALUES (:start, :end, :currency, 'DRAFT', CAST(:document AS jsonb), :digest, :now,
                :cutoff)
            RETURNING id
            """
        ),
        {
            "start": start,
            "end": end,
            "currency": currency,
            "document": json.dumps(document),
            "digest": digest,
            "now": now,
            "cutoff": cutoff,
        },
    )
    return int(result.scalar_one())


async def insert_postings(
    conn: Connection, *, run_id: int, legs: list[tuple[str, Decimal]]
) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO settlement_posting (run_id, account, amount)
            SELECT :run_id, leg.account, leg.amount
            FROM unnest(CAST(:accounts AS text[]), CAST(:amounts AS numeric[]))
                 AS leg(account, amount)
            """
        ),
        {"run_id": run_id, "accounts": [a for a, _ in legs], "amounts": [m for _, m in legs]},
    )


async def run_by_id(conn: Connection, *, run_id: int) -> Row | None:
    result = await conn.execute(
        sql("SELECT * FROM settlement_run WHERE id = :run_id"), {"run_id": run_id}
    )
    return result.first()


async def supersede_drafts(
    conn: Connection, *, start: datetime, end: datetime, by_run_id: int
) -> None:
    """Mark the other drafts of exactly this period SUPERSEDED by ``by_run_id``."""
    await conn.execute(
        sql(
            "UPDATE settlement_run SET status = 'SUPERSEDED', superseded_by = :by_run_id"
            " WHERE status = 'DRAFT' AND period_start = :start AND period_end = :end"
            " AND id <> :by_run_id"
        ),
        {"start": start, "end": end, "by_run_id": by_run_id},
    )


async def room_for_aggregates(conn: Connection) -> None:
    """Settings for this transaction's aggregates over a period's entries: memory to hash
    and join them in memory (the default 4 MB makes batches on disk), parallel plans
    costed low enough to be chosen (the period's scans and joins split across cores),
    and no nested loops. Under an operator's row scope (``runSettlement``) the policies'
    conditions hide the period's size from the planner, which then joins a month of
    entries to their lots one index lookup at a time; every join here is of a period's
    rows, which hashing serves best (1,000,000 entries: 4.6 s -> 2.5 s for an operator,
    unchanged at 1.3 s for `exchange settle`). For this transaction only (set_config's
    is_local): runs are rare, and the server's other transactions keep the defaults, as
    the insights functions do (migration 0024)."""
    await conn.execute(
        sql(
            "SELECT set_config('work_mem', '64MB', true),"
            " set_config('parallel_setup_cost', '100', true),"
            " set_config('parallel_tuple_cost', '0.01', true),"
            " set_config('enable_nestloop', 'off', true)"
        )
    )


async def previous_cutoff(conn: Connection, *, start: datetime) -> datetime | None:
    """The cut-off of the latest finalized run that ended by ``start``."""
    result = await conn.execute(
        sql(
            """
            SELECT cutoff FROM settlement_run
            WHERE status IN ('FINALIZED', 'PAID') AND period_end <= :start
            ORDER BY period_end DESC, id DESC LIMIT 1
            """
        ),
        {"start": start},
    )
    value = result.scalar()
    return value if isinstance(value, datetime) else None


async def overlapping_finalized(conn: Connection, *, start: datetime, end: datetime) -> Row | None:
    result = await conn.execute(
        sql(
            """
            SELECT id, period_start, period_end FROM settlement_run
            WHERE status IN ('FINALIZED', 'PAID')
              AND period_start < :end AND period_end > :start
            ORDER BY id LIMIT 1
            """
        ),
        {"start": start, "end": end},
    )
    return result.first()


async def lock_runs(conn: Connection) -> None:
    """One finalization at a time (periods must not overlap)."""
    await conn.execute(sql("SELECT pg_advisory_xact_lock(727400)"))


async def set_status(conn: Connection, *, run_id: int, status: str, at: datetime) -> None:
    column = "finalized_at" if status == "FINALIZED" else "paid_at"
    await conn.execute(
        sql(f"UPDATE settlement_run SET status = :status, {column} = :at WHERE id = :run_id"),
        {"run_id": run_id, "status": status, "at": at},
    )


async def record_payment(
    conn: Connection, *, run_id: int, instruction: int, reference: str, at: datetime
) -> bool:
    result = await conn.execute(
        sql(
            """
            INSERT INTO settlement_payment (run_id, instruction, reference, paid_at)
            VALUES (:run_id, :instruction, :reference, :at)
            ON CONFLICT DO NOTHING RETURNING instruction
            """
        ),
        {"run_id": run_id, "instruction": instruction, "reference": reference, "at": at},
    )
    return result.first() is not None


async def payments_of_run(conn: Connection, *, run_id: int) -> list[Row]:
    return await payments_of_runs(conn, run_ids=[run_id])


async def payments_of_runs(conn: Connection, *, run_ids: list[int]) -> list[Row]:
    result = await conn.execute(
        sql(
            "SELECT run_id, instruction, reference, paid_at FROM settlement_payment"
            " WHERE run_id = ANY(:run_ids) ORDER BY run_id, instruction"
        ),
        {"run_ids": run_ids},
    )
    return list(result.all())


async def runs_listing(conn: Connection, *, limit: int) -> list[Row]:
    """Every run, superseded drafts included, newest first, with what it supersedes."""
    result = await conn.execute(
        sql(
            """
            SELECT r.id, r.period_start, r.period_end, r.currency, r.status, r.digest,
                   r.created_at, r.finalized_at, r.paid_at, r.superseded_by,
                   jsonb_array_length(r.document -> 'instructions') AS instruction_count,
                   coalesce((SELECT array_agg(o.id ORDER BY o.id) FROM settlement_run o
                             WHERE o.superseded_by = r.id), '{}') AS supersedes
            FROM settlement_run r
            ORDER BY r.id DESC LIMIT :limit
            """
        ),
        {"limit": limit},
    )
    return list(result.all())


async def runs_page(
    conn: Connection, *, before_id: int | None, limit: int, finalized_only: bool
) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT id, period_start, period_end, currency, status, digest, document,
                   created_at, finalized_at, paid_at
            FROM settlement_run
            WHERE (CAST(:before AS bigint) IS NULL OR id < :before)
              AND (NOT :finalized_only OR status IN ('FINALIZED', 'PAID'))
              AND status <> 'SUPERSEDED'
            ORDER BY id DESC LIMIT :limit
            """
        ),
        {"before": before_id, "limit": limit, "finalized_only": finalized_only},
    )
    return list(result.all())
