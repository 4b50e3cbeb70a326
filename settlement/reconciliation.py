"""Settlement's checks for `exchange verify`: every run's money journal balances; every
finalized run still ties to the points ledger (recomputed at its cut-off, it gives the
same document, digest for digest); partners' net positions sum to the coalition margin."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from exchange.kit.db import Connection, sql
from settlement.service import compute, digest_of

#: Keys a run document gained after runs were first stored: a run stored without one is
#: recomputed without it, so its digest still compares.
LATER_KEYS = ("breakdown",)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    examples: list[str] = field(default_factory=list)


async def verify(conn: Connection) -> list[Check]:
    unbalanced = (
        await conn.execute(
            sql(
                "SELECT run_id, sum(amount) FROM settlement_posting GROUP BY run_id"
                " HAVING sum(amount) <> 0 LIMIT 5"
            )
        )
    ).all()
    drifted, margins = [], []
    runs = (
        await conn.execute(
            sql(
                "SELECT id, period_start, period_end, cutoff, digest, document, currency FROM"
                " settlement_run WHERE status IN ('FINALIZED', 'PAID') ORDER BY id"
            )
        )
    ).all()
    for run in runs:
        rates = {k: Decimal(v) for k, v in run.document.get("exchangeRates", {}).items()}
        _, document, _ = await compute(
            conn,
            start=run.period_start,
            end=run.period_end,
            cutoff=run.cutoff,
            currency=run.currency,
            rates=rates,
        )
        for key in LATER_KEYS:
            if key not in run.document:  # stored before the document had it
                document.pop(key, None)
        if digest_of(document) != run.digest:
            drifted.append(f"run {run.id}")
        net = run.document["netPositions"]
        partners = sum((Decimal(v) for k, v in net.items() if k != "coalition"), Decimal(0))
        if partners != -Decimal(net.get("coalition", "0")):
            margins.append(f"run {run.id}")
    return [
        Check(
            "every settlement run's money journal balances",
            not unbalanced,
            [f"run {r[0]} sums to {r[1]}" for r in unbalanced],
        ),
        Check("every finalized run still ties to the points ledger", not drifted, drifted[:5]),
        Check("partners' net positions sum to the coalition margin", not margins, margins[:5]),
    ]
