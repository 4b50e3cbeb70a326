"""`exchange insights --from --to [--partner] --format html|json|csv --out FILE`: the KPIs
and four inline SVG charts; one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from exchange.kit.db import Database
from tests.cli.test_cli import run
from tests.insights.conftest import SINCE, bought
from tests.loyalty.conftest import link, partner_with


async def test_the_report_in_each_format(
    db: Database, api: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    name = (await cafe.gql("{ viewer { partner { name } } }"))["data"]["viewer"]["partner"]["name"]
    ann, bob = await link(cafe), await link(cafe)
    await bought(cafe, ann, "10.00", "2026-04-10T10:00:00+00:00")
    await bought(cafe, ann, "20.00", "2026-05-05T10:00:00+00:00")
    await bought(cafe, bob, "30.00", "2026-05-20T10:00:00+00:00")
    window = ["--from", "2026-04-01", "--to", "2026-07-01", "--partner", name]

    written = {
        kind: run(["insights", *window, "--format", kind, "--out", str(tmp_path / f"r.{kind}")],
                  database_url, tmp_path)
        for kind in ("html", "json", "csv")
    }  # fmt: skip

    for kind, result in written.items():
        assert result.returncode == 0, (kind, result.stderr)
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 3  # liability, cohorts, segments (no cross-shopping, no uplift)
    assert 'aria-label="Liability over time"' in page
    assert 'aria-label="Cohort retention"' in page
    assert "2026-04 (1)" in page  # Ann's cohort, then Bob's
    assert "2026-05 (1)" in page
    assert name in page
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["kpis"]["issued"] == 60
    assert document["kpis"]["repeat_rate"] == "0.5000"
    # points in wallets at each month end: 10 by May 1, 60 by June 1 and July 1
    assert document["liability"] == [
        {"at": "2026-05-01", "points": 10},
        {"at": "2026-06-01", "points": 60},
        {"at": "2026-07-01", "points": 60},
    ]
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0] == "section,name,value"
    assert "kpi,issued,60" in rows
    assert "retention,2026-04,1: 1.0000 0.0000" in rows


async def test_bad_input_is_one_line_and_writes_nothing(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "never.html"
    backwards = run(["insights", "--from", "2026-07-01", "--to", "2026-04-01", "--out", str(out)],
                    database_url, tmp_path)  # fmt: skip
    nobody = run(["insights", "--from", "2026-04-01", "--to", "2026-07-01", "--partner",
                  "Nobody at all", "--out", str(out)], database_url, tmp_path)  # fmt: skip
    no_file = run(
        ["insights", "--from", "2026-04-01", "--to", "2026-07-01"], database_url, tmp_path
    )

    for result in (backwards, nobody, no_file):
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("exchange: error:")
    assert "to must be after from" in backwards.stderr
    assert not out.exists()
