"""What the finance team takes out of a run, through the `exchange` command: the runs
listed with which supersedes which; the JSON, CSV, HTML and beancount exports with run
number, status, digest, numbered instructions and their payments, names beside ids and
the breakdown by reason with the prices used; and one partner's statement with whom it
pays or is paid by.

One worked example for every test (settled, recomputed, finalized, one of its two
instructions paid):

    cinema (ON_REDEMPTION, fee 0.02) issues 800; coffee (PREFUNDED, 0.010) issues 400;
    alice redeems 700 at coffee, all of them cinema's points (they expire first).
    coffee -> coalition  issuance    400 x 0.010        = 4.00
    cinema -> coffee     redemption  700 x 0.008        = 5.60
    cinema -> coalition  fee         700 x 0.008 x 0.02 = 0.112 -> 0.11
    net: cinema pays 5.71, coffee receives 1.60, the coalition receives 4.11
    instructions: 1. cinema -> coalition 4.11 (paid), 2. cinema -> coffee 1.60 (unpaid)
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exchange.kit.db import Database
from tests.cli.test_cli import run
from tests.settlement.test_runs import Period

_years = itertools.count(1501 + secrets.randbelow(50))
REFERENCE = 'wire "A"/118'


@dataclass
class Settled:
    database_url: str
    home: Path
    drafts: list[int]
    final: int
    coffee: int
    cinema: int
    coffee_name: str
    cinema_name: str

    def report(self, *args: str) -> str:
        result = run(["report", str(self.final), *args, "--out", "-"], self.database_url, self.home)
        assert result.returncode == 0, result.stderr
        return result.stdout


def _settle(period: Period, database_url: str, home: Path, *extra: str) -> dict[str, Any]:
    bounds = ["--from", period.start.date().isoformat(), "--to", period.end.date().isoformat()]
    result = run(["settle", *bounds, *extra, "--json"], database_url, home)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture(scope="module")
async def settled(
    db: Database, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settled:
    home = tmp_path_factory.mktemp("exports")
    period = Period(db, year=next(_years))
    coffee = await period.partner(issue="0.010", redeem="0.008")
    cinema = await period.partner(
        issue="0.012", redeem="0.009", funding="ON_REDEMPTION", fee="0.02"
    )
    alice = await period.member()
    await period.earn(cinema, alice, 800, day=1)
    await period.earn(coffee, alice, 400, day=2)
    await period.redeem(coffee, alice, 700, day=3)
    first = _settle(period, database_url, home)
    second = _settle(period, database_url, home)
    final = _settle(period, database_url, home, "--finalize")
    paid = run(["payment", str(final["run"]), "1", "--reference", REFERENCE], database_url, home)
    assert paid.returncode == 0, paid.stderr
    return Settled(
        database_url,
        home,
        [first["run"], second["run"]],
        final["run"],
        coffee,
        cinema,
        final["parties"][f"partner:{coffee}"],
        final["parties"][f"partner:{cinema}"],
    )


def test_settle_list_shows_every_run_and_which_supersedes_which(settled: Settled) -> None:
    listed = run(
        ["settle", "list", "--json", "--limit", "1000"], settled.database_url, settled.home
    )

    assert listed.returncode == 0, listed.stderr
    runs = {r["run"]: r for r in json.loads(listed.stdout)}
    first, second = (runs[i] for i in settled.drafts)
    final = runs[settled.final]
    assert (first["status"], first["supersededBy"], first["supersedes"]) == (
        "SUPERSEDED",
        second["run"],
        [],
    )
    assert (second["status"], second["supersededBy"], second["supersedes"]) == (
        "SUPERSEDED",
        final["run"],
        [first["run"]],
    )
    assert (final["status"], final["supersededBy"], final["supersedes"]) == (
        "FINALIZED",
        None,
        [second["run"]],
    )
    assert final["instructions"] == 2
    assert [(p["number"], p["reference"]) for p in final["paidInstructions"]] == [(1, REFERENCE)]
    assert final["currency"] == "USD"
    assert re.fullmatch(r"[0-9a-f]{64}", final["digest"])
    assert final["period"]["from"].startswith(f"{final['period']['from'][:4]}-01-01T00:00:00")
    assert first["digest"] == second["digest"] == final["digest"]  # same ledger, same run


def test_settle_list_as_text_has_a_header_over_each_column(settled: Settled) -> None:
    listed = run(["settle", "list", "--limit", "1000"], settled.database_url, settled.home)

    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    final = next(r for r in rows if r.split()[0] == str(settled.final))
    assert header.split() == [
        "run", "from", "to", "status", "currency", "paid", "supersedes", "superseded", "by",
        "digest",
    ]  # fmt: skip
    # Text columns start under their header; numbers end under it.
    assert final.index("FINALIZED") == header.index("status")
    assert final.index("1/2") + len("1/2") == header.index("paid") + len("paid")
    assert final.index(str(settled.drafts[1]), header.index("supersedes")) == header.index(
        "supersedes"
    )


def test_the_json_report_carries_run_status_digest_names_and_payments(settled: Settled) -> None:
    report = json.loads(settled.report("--format", "json"))

    assert (report["run"], report["status"]) == (settled.final, "FINALIZED")
    assert re.fullmatch(r"[0-9a-f]{64}", report["digest"])
    assert set(report["period"]) == {"from", "to"}
    assert [
        (i["number"], i["payerName"], i["payeeName"], i["amount"], i["paid"], i["reference"])
        for i in report["instructions"]
    ] == [
        (1, settled.cinema_name, "Coalition", "4.11", True, REFERENCE),
        (2, settled.cinema_name, settled.coffee_name, "1.60", False, None),
    ]
    assert report["instructions"][0]["paidAt"] is not None
    fee = next(o for o in report["obligations"] if o["reason"] == "fee")
    assert (fee["debtorName"], fee["creditorName"], fee["amount"]) == (
        settled.cinema_name,
        "Coalition",
        "0.11",
    )


def test_the_instructions_csv_numbers_them_with_names_and_payments(settled: Settled) -> None:
    rows = list(
        csv.DictReader(io.StringIO(settled.report("--format", "csv", "--table", "instructions")))
    )

    assert [
        (r["instruction"], r["payer_name"], r["payee_name"], r["amount"], r["status"],
         r["reference"])
        for r in rows
    ] == [
        ("1", settled.cinema_name, "Coalition", "4.11", "PAID", REFERENCE),
        ("2", settled.cinema_name, settled.coffee_name, "1.60", "UNPAID", ""),
    ]  # fmt: skip
    assert rows[0]["payer"] == f"partner:{settled.cinema}"
    assert rows[0]["paid_at"] != ""
    assert rows[1]["paid_at"] == ""


def test_the_summary_csv_keeps_a_name_beside_each_party(settled: Settled) -> None:
    rows = {r["party"]: r for r in csv.DictReader(io.StringIO(settled.report("--format", "csv")))}

    assert rows[f"partner:{settled.coffee}"]["name"] == settled.coffee_name
    assert rows[f"partner:{settled.cinema}"]["net_position"] == "5.71"


def _cells(row: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", row)


def test_the_html_report_explains_each_obligation_with_its_price(settled: Settled) -> None:
    page = settled.report("--format", "html")

    section = page.split("<h2>Breakdown by reason, with the prices used</h2>")[1].split("<h2>")[0]
    rows = [_cells(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section)[1:]]
    assert rows == [
        ["issuance", settled.coffee_name, "Coalition", "PREFUNDED", "400", "0.01 USD", "",
         "4.00", "4.00"],
        ["total issuance", "", "", "", "", "", "", "", "4.00 USD"],
        ["redemption", settled.cinema_name, settled.coffee_name, "ON_REDEMPTION", "700",
         "0.008 USD", "", "5.60", "5.60"],
        ["total redemption", "", "", "", "", "", "", "", "5.60 USD"],
        ["fee", settled.cinema_name, "Coalition", "ON_REDEMPTION", "700", "0.008 USD", "0.02",
         "0.112", "0.11"],
        ["total fee", "", "", "", "", "", "", "", "0.11 USD"],
    ]  # fmt: skip


def test_the_html_report_numbers_instructions_with_their_payments(settled: Settled) -> None:
    page = settled.report("--format", "html")

    section = page.split("<h2>Payment instructions</h2>")[1].split("<h2>")[0]
    rows = [_cells(row) for row in re.findall(r"<tr>(.*?)</tr>", section)[1:]]
    escaped = REFERENCE.replace('"', "&quot;")
    assert [row[:6] for row in rows] == [
        ["1", settled.cinema_name, "Coalition", "4.11", "paid", escaped],
        ["2", settled.cinema_name, settled.coffee_name, "1.60", "unpaid", ""],
    ]
    assert f"Settlement run {settled.final} <small>(FINALIZED)</small>" in page


def test_html_headers_are_aligned_like_their_columns(settled: Settled) -> None:
    page = settled.report("--format", "html")

    for table in re.findall(r"<table>(.*?)</table>", page):
        headers = re.findall(r"<th( [^>]*)?>", table)
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]:
            cells = re.findall(r"<td( [^>]*)?>", row)
            assert cells == headers, table
    assert ".num{text-align:right}" in page
    totals = page.split("<h2>Totals by party</h2>")[1].split("</tr>")[0]
    assert "<th>name</th>" in totals
    assert '<th class="num">issued</th>' in totals


def test_beancount_carries_names_and_payments_and_bean_check_accepts_it(
    settled: Settled, tmp_path: Path
) -> None:
    ledger_file = tmp_path / "run.beancount"
    ledger_file.write_text(settled.report("--format", "beancount"))

    checked = subprocess.run(  # noqa: S603 (bean-check, a short local run)
        [shutil.which("bean-check") or "bean-check", str(ledger_file)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = ledger_file.read_text()
    assert f'name: "{settled.cinema_name}"' in text
    assert 'reference: "wire \\"A\\"/118"' in text
    cinema = f"Assets:Settlement:Partner{settled.cinema}"
    # The payment of instruction 1: cinema's 5.71 position goes down by 4.11 to 1.60.
    assert f"  {cinema}  -4.11 USD" in text
    assert re.search(rf"balance {cinema}  1.60 USD", text)
    assert re.search(r"balance Assets:Coalition:Clearing  4.11 USD", text)


def test_a_statement_shows_whom_the_partner_pays_or_is_paid_by(settled: Settled) -> None:
    cinema = json.loads(settled.report("--format", "json", "--partner", settled.cinema_name))
    coffee = json.loads(settled.report("--format", "json", "--partner", settled.coffee_name))
    coffee_csv = list(
        csv.DictReader(
            io.StringIO(settled.report("--format", "csv", "--partner", settled.coffee_name))
        )
    )

    assert (cinema["run"], cinema["status"], cinema["netPosition"]) == (
        settled.final,
        "FINALIZED",
        "5.71",
    )
    assert [
        (i["number"], i["direction"], i["counterpartyName"], i["amount"], i["paid"])
        for i in cinema["instructions"]
    ] == [
        (1, "pays", "Coalition", "4.11", True),
        (2, "pays", settled.coffee_name, "1.60", False),
    ]
    assert [
        (i["number"], i["direction"], i["counterpartyName"], i["amount"])
        for i in coffee["instructions"]
    ] == [(2, "is paid by", settled.cinema_name, "1.60")]
    assert [b["price"] for b in coffee["breakdown"]] == ["0.01", "0.008"]
    payments = [r for r in coffee_csv if r["line"] == "payment"]
    assert [
        (r["instruction"], r["debtor_name"], r["creditor_name"], r["status"]) for r in payments
    ] == [("2", settled.cinema_name, settled.coffee_name, "UNPAID")]
    obligations = [r for r in coffee_csv if r["line"] == "obligation"]
    assert {(r["debtor_name"], r["creditor_name"]) for r in obligations} == {
        (settled.coffee_name, "Coalition"),
        (settled.cinema_name, settled.coffee_name),
    }
