"""All SQL of settlement: what the points ledger says about a period, and the runs."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

_CONTRACT_AT = """
    SELECT pc.version FROM partner_contract pc
    WHERE pc.partner_id = {partner} AND pc.effective_from <= e.effective_at
    ORDER BY pc.effective_from DESC, pc.version DESC LIMIT 1
"""


async def issued(conn: AsyncConnection, *, start: datetime, end: datetime) -> list[Row[Any]]:
    """Points issued per issuer and contract version, net of earn reversals booked in the
    period."""
    result = await conn.execute(
        text(
            f"""
            SELECT e.partner_id AS partner_id, c.version AS version,
                   sum(CASE WHEN e.kind = 'EARN' THEN e.points ELSE -e.points END) AS points
            FROM ledger_entry e
            LEFT JOIN ledger_entry t ON t.id = e.target_entry_id
            LEFT JOIN LATERAL ({_CONTRACT_AT.format(partner="e.partner_id")}) c ON true
            WHERE e.effective_at >= :start AND e.effective_at < :end
              AND (e.kind = 'EARN' OR (e.kind = 'REVERSAL' AND t.kind = 'EARN'))
            GROUP BY e.partner_id, c.version
            """
        ),
        {"start": start, "end": end},
    )
    return list(result.all())


async def redeemed(conn: AsyncConnection, *, start: datetime, end: datetime) -> list[Row[Any]]:
    """Points redeemed per (issuer, redeemer) and the contract versions in force, from lot
    consumptions, net of redemption reversals booked in the period."""
    result = await conn.execute(
        text(
            f"""
            SELECT c.issuer_partner_id AS issuer_id, c.redeemer_partner_id AS redeemer_id,
                   ic.version AS issuer_version, rc.version AS redeemer_version,
                   sum(c.points) AS points
            FROM ledger_lot_consumption c
            JOIN ledger_entry e ON e.id = c.entry_id
            LEFT JOIN LATERAL ({_CONTRACT_AT.format(partner="c.issuer_partner_id")}) ic ON true
            LEFT JOIN LATERAL ({_CONTRACT_AT.format(partner="c.redeemer_partner_id")}) rc ON true
            WHERE c.kind = 'REDEEM' AND e.effective_at >= :start AND e.effective_at < :end
            GROUP BY c.issuer_partner_id, c.redeemer_partner_id, ic.version, rc.version
            """
        ),
        {"start": start, "end": end},
    )
    return list(result.all())


async def expired(conn: AsyncConnection, *, start: datetime, end: datetime) -> list[Row[Any]]:
    result = await conn.execute(
        text(
            """
            SELECT c.issuer_partner_id AS partner_id, sum(c.points) AS points
            FROM ledger_lot_consumption c JOIN ledger_entry e ON e.id = c.entry_id
            WHERE c.kind = 'EXPIRY' AND e.effective_at >= :start AND e.effective_at < :end
            GROUP BY c.issuer_partner_id
            """
        ),
        {"start": start, "end": end},
    )
    return list(result.all())


async def contracts(conn: AsyncConnection, *, partner_ids: list[int]) -> list[Row[Any]]:
    result = await conn.execute(
        text(
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
    conn: AsyncConnection,
    *,
    start: datetime,
    end: datetime,
    currency: str,
    document: dict[str, Any],
    digest: str,
    now: datetime,
) -> int:
    result = await conn.execute(
        text(
            """
            INSERT INTO settlement_run (period_start, period_end, currency, status, document,
                digest, created_at)
            VALUES (:start, :end, :currency, 'DRAFT', CAST(:document AS jsonb), :digest, :now)
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
        },
    )
    return int(result.scalar_one())


async def insert_postings(
    conn: AsyncConnection, *, run_id: int, legs: list[tuple[str, Decimal]]
) -> None:
    await conn.execute(
        text(
            """
            INSERT INTO settlement_posting (run_id, account, amount)
            SELECT :run_id, leg.account, leg.amount
            FROM unnest(CAST(:accounts AS text[]), CAST(:amounts AS numeric[]))
                 AS leg(account, amount)
            """
        ),
        {"run_id": run_id, "accounts": [a for a, _ in legs], "amounts": [m for _, m in legs]},
    )


async def run_by_id(conn: AsyncConnection, *, run_id: int) -> Row[Any] | None:
    result = await conn.execute(
        text("SELECT * FROM settlement_run WHERE id = :run_id"), {"run_id": run_id}
    )
    return result.first()


async def postings_of_run(conn: AsyncConnection, *, run_id: int) -> list[Row[Any]]:
    result = await conn.execute(
        text("SELECT account, amount FROM settlement_posting WHERE run_id = :run_id ORDER BY id"),
        {"run_id": run_id},
    )
    return list(result.all())


async def supersede_drafts(conn: AsyncConnection, *, start: datetime, end: datetime) -> None:
    await conn.execute(
        text(
            "UPDATE settlement_run SET status = 'SUPERSEDED'"
            " WHERE status = 'DRAFT' AND period_start = :start AND period_end = :end"
        ),
        {"start": start, "end": end},
    )
