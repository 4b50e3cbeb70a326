"""`exchange settle` and `exchange report` as real processes."""

from __future__ import annotations

import csv
import io
import json
import secrets
from pathlib import Path

from exchange.kit.db import Database
from tests.cli.test_cli import run
from tests.settlement.test_runs import Period


async def test_settle_then_export_json_and_csv(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    period = Period(db, year=1801 + secrets.randbelow(190))  # the CLI settles ended periods
    coffee = await period.partner(issue="0.010", redeem="0.008")
    alice = await period.member()
    await period.earn(coffee, alice, 1_000, day=1)
    await period.redeem(coffee, alice, 250, day=2)

    settled = run(
        [
            "settle",
            "--from",
            period.start.date().isoformat(),
            "--to",
            period.end.date().isoformat(),
            "--json",
        ],
        database_url,
        tmp_path,
    )
    assert settled.returncode == 0, settled.stderr
    run_id = json.loads(settled.stdout)["run"]
    as_json = run(["report", str(run_id), "--format", "json", "--out", "-"], database_url, tmp_path)
    as_csv = run(["report", str(run_id), "--format", "csv", "--out", "-"], database_url, tmp_path)
    again = run(["report", str(run_id), "--format", "json", "--out", "-"], database_url, tmp_path)

    document = json.loads(as_json.stdout)
    # 1000 x 0.010 = 10.00 owed for issuance; 250 x 0.008 = 2.00 due back: net 8.00
    assert document["netPositions"][f"partner:{coffee}"] == "8.00"
    rows = {row["party"]: row for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert rows[f"partner:{coffee}"]["net_position"] == "8.00"
    assert rows[f"partner:{coffee}"]["issued_points"] == "1000"
    assert as_json.stdout == again.stdout  # byte for byte


def test_settle_with_a_bad_period_is_one_line_and_status_two(tmp_path: Path) -> None:
    result = run(
        ["settle", "--from", "2026-13-01", "--to", "2026-12-01"], "postgresql://x/y", tmp_path
    )

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
