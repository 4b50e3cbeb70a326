"""`exchange settle` and `exchange report` as real processes."""

from __future__ import annotations

import csv
import io
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    "args",
    [
        ["settle", "--from", "2026-10-01", "--to", "2026-11-01", "--currency", "XYZ"],
        ["settle", "--from", "2026-10-01", "--to", "2026-11-01", "--rate", "XYZ=1.08"],
        [
            "partner",
            "add",
            "Nowhere Bank",
            "--currency",
            "XYZ",
            "--issue-price",
            "0.01",
            "--redemption-price",
            "0.008",
        ],
    ],
)
def test_a_currency_outside_iso_4217_is_one_line_and_status_two(
    args: list[str], tmp_path: Path
) -> None:
    result = run(args, "postgresql://nobody@127.0.0.1:1/none", tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ISO 4217" in lines[0]
    assert "'XYZ'" in lines[0]


async def test_html_report_and_a_beancount_export_that_bean_check_accepts(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    period = Period(db, year=1801 + secrets.randbelow(190))
    coffee = await period.partner(issue="0.010", redeem="0.008")
    cinema = await period.partner(
        issue="0.012", redeem="0.009", funding="ON_REDEMPTION", fee="0.02"
    )
    alice = await period.member()
    await period.earn(cinema, alice, 800, day=1)
    await period.earn(coffee, alice, 400, day=2)
    await period.redeem(coffee, alice, 700, day=3)  # 700 of cinema's points at coffee
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
    run_id = str(json.loads(settled.stdout)["run"])
    page, ledger_file = tmp_path / "run.html", tmp_path / "run.beancount"

    html_made = run(
        ["report", run_id, "--format", "html", "--out", str(page)], database_url, tmp_path
    )
    bean_made = run(
        ["report", run_id, "--format", "beancount", "--out", str(ledger_file)],
        database_url,
        tmp_path,
    )
    checked = subprocess.run(  # noqa: S603, ASYNC221 (bean-check, a short local run)
        [shutil.which("bean-check") or "bean-check", str(ledger_file)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert html_made.returncode == 0, html_made.stderr
    assert bean_made.returncode == 0, bean_made.stderr
    text = page.read_text()
    assert text.count("<svg") == 2  # the heatmap and the bar chart, inline
    assert "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no assets
    assert ">700</text>" in text  # the matrix cell: cinema's points redeemed at coffee
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # cinema owes coffee 700 x 0.008 = 5.60 and the coalition 5.60 x 0.02 = 0.112 -> 0.11
    assert "5.71 USD" in ledger_file.read_text()


async def test_a_partner_statement_shows_only_that_partner(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    period = Period(db, year=1801 + secrets.randbelow(190))
    coffee = await period.partner(issue="0.010", redeem="0.008")
    cinema = await period.partner(issue="0.012", redeem="0.009")
    alice = await period.member()
    await period.earn(coffee, alice, 1_000, day=1)
    await period.earn(cinema, alice, 100, day=1)
    await period.redeem(cinema, alice, 300, day=2)
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
    document = json.loads(settled.stdout)
    name = document["parties"][f"partner:{cinema}"]

    result = run(
        ["report", str(document["run"]), "--format", "json", "--out", "-", "--partner", name],
        database_url,
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    statement = json.loads(result.stdout)
    # cinema: owes 100 x 0.012 = 1.20; is owed 300 x 0.009 = 2.70; net -1.50 (receives)
    assert statement["netPosition"] == "-1.50"
    assert f"partner:{coffee}" not in json.dumps(statement["obligations"])
    assert statement["points"]["issued"] == 100


@pytest.mark.parametrize(
    ("rate", "said"),
    [
        ("EUR", "expected CUR=RATE, like EUR=1.08: 'EUR'"),
        ("EUR=", "the rate of EUR must be a decimal number"),
        ("EUR=abc", "the rate of EUR must be a decimal number"),
        ("EUR=0", "the rate of EUR must be a decimal number above zero"),
        ("EUR=NaN", "the rate of EUR must be a decimal number above zero"),
        ("EUR=-1.08", "the rate of EUR must be a decimal number above zero"),
    ],
)
def test_a_malformed_rate_is_one_line_and_status_two(rate: str, said: str, tmp_path: Path) -> None:
    result = run(
        ["settle", "--from", "2026-10-01", "--to", "2026-11-01", "--currency", "USD",
         "--rate", rate],
        "postgresql://nobody@127.0.0.1:1/none",
        tmp_path,
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"exchange: error: argument --rate: {said} (see 'exchange settle --help')"
    ]


async def test_a_report_that_cannot_be_written_is_one_line_with_status_two_or_one(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    period = Period(db, year=1601 + secrets.randbelow(199))  # a year no other test takes
    coffee = await period.partner(issue="0.010", redeem="0.008")
    await period.earn(coffee, await period.member(), 100, day=1)
    settled = run(
        ["settle", "--from", period.start.date().isoformat(),
         "--to", period.end.date().isoformat(), "--json"],
        database_url,
        tmp_path,
    )  # fmt: skip
    run_id = str(json.loads(settled.stdout)["run"])

    def report(out: str) -> subprocess.CompletedProcess[str]:
        return run(["report", run_id, "--format", "csv", "--out", out], database_url, tmp_path)

    missing, directory, full = (
        report("/missing/dir/x.csv"),
        report(str(tmp_path)),
        report("/dev/full"),
    )

    assert (missing.returncode, directory.returncode, full.returncode) == (2, 2, 1)
    assert missing.stderr.splitlines() == [
        "exchange: error: argument --out: no such directory: /missing/dir"
        " (see 'exchange report --help')"
    ]
    assert directory.stderr.splitlines() == [
        f"exchange: error: argument --out: {tmp_path} is a directory; name a file in it"
        " (see 'exchange report --help')"
    ]
    assert full.stderr.splitlines() == [
        "exchange: error: cannot write /dev/full: No space left on device"
    ]
