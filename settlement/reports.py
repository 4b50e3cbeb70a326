"""Exports of a run, byte-for-byte deterministic for the same run and payments:
the run as JSON (its document with the run number, status and digest, partner names
beside party keys, instructions numbered with their payment); the coalition summary and
the payment instructions as CSV; an HTML report for people (totals, the breakdown of
each obligation by reason with the prices used, the issuer x redeemer matrix as a
heatmap, net positions as a bar chart, both inline SVG, no external assets;
instructions with their payments, and reconciliation); the money journal and the
payments as a beancount ledger for `bean-check`; and one partner's statement (JSON or
CSV) with whom it pays or is paid by.

The run document (what the digest covers) is stored as the run made it; names, numbers
and payments are added here, on export, as ``<field>Name`` keys beside party keys and as
``number``/``paid``/``reference``/``paidAt`` on instructions."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from settlement.models import SettlementRun

SUMMARY_COLUMNS = [
    "party",
    "name",
    "issued_points",
    "redeemed_at_points",
    "redeemed_from_points",
    "expired_points",
    "net_position",
    "currency",
]
INSTRUCTION_COLUMNS = [
    "instruction",
    "payer",
    "payer_name",
    "payee",
    "payee_name",
    "amount",
    "currency",
    "status",
    "reference",
    "paid_at",
]
STATEMENT_COLUMNS = [
    "line",
    "instruction",
    "debtor",
    "debtor_name",
    "creditor",
    "creditor_name",
    "reason",
    "amount",
    "currency",
    "status",
    "reference",
    "paid_at",
]


def name_of(document: dict[str, Any], key: str) -> str:
    """A party's name (the coalition's too), or its key when the run has none."""
    return str(document["parties"].get(key, key))


def _named(document: dict[str, Any], row: dict[str, Any], *fields: str) -> dict[str, Any]:
    """``row`` with ``<field>Name`` beside each party key field."""
    return {**row, **{f"{field}Name": name_of(document, row[field]) for field in fields}}


def instructions(run: SettlementRun) -> list[dict[str, Any]]:
    """The run's payment instructions, numbered from 1 (``exchange payment RUN N``), with
    names and whether (and how) each was paid."""
    paid = {payment.instruction: payment for payment in run.payments}
    numbered = []
    for number, instruction in enumerate(run.document["instructions"], start=1):
        payment = paid.get(number)
        numbered.append(
            {
                **_named(run.document, instruction, "payer", "payee"),
                "number": number,
                "paid": payment is not None,
                "reference": payment.reference if payment else None,
                "paidAt": payment.paid_at.isoformat() if payment else None,
            }
        )
    return numbered


def export(run: SettlementRun) -> dict[str, Any]:
    """The run for machines: its document, with the run number, status and digest,
    names beside party keys, and numbered instructions with their payments."""
    document = run.document
    points = document["points"]
    return {
        **document,
        "run": run.id,
        "status": str(run.status),
        "digest": run.digest,
        "points": {
            **points,
            "matrix": [_named(document, c, "issuer", "redeemer") for c in points["matrix"]],
        },
        "obligations": [_named(document, o, "debtor", "creditor") for o in document["obligations"]],
        "breakdown": [
            _named(document, line, "debtor", "creditor") for line in document.get("breakdown", [])
        ],
        "bilateral": [_named(document, pair, "a", "b") for pair in document["bilateral"]],
        "instructions": instructions(run),
        **(
            {"campaigns": [_named(document, c, "funder") for c in document["campaigns"]]}
            if "campaigns" in document
            else {}
        ),
    }


def to_json(run: SettlementRun) -> str:
    return json.dumps(export(run), sort_keys=True, indent=2) + "\n"


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _summary_rows(document: dict[str, Any]) -> list[list[Any]]:
    points = document["points"]["byParty"]
    return [
        [
            key,
            document["parties"].get(key, ""),
            points.get(key, {}).get("issued", 0),
            points.get(key, {}).get("redeemedAt", 0),
            points.get(key, {}).get("redeemedFrom", 0),
            points.get(key, {}).get("expired", 0),
            document["netPositions"].get(key, "0"),
            document["currency"],
        ]
        for key in sorted(set(points) | set(document["netPositions"]))
    ]


def to_csv(run: SettlementRun) -> str:
    """The coalition summary: one row per party."""
    return _csv(SUMMARY_COLUMNS, _summary_rows(run.document))


def _status(instruction: dict[str, Any]) -> str:
    return "PAID" if instruction["paid"] else "UNPAID"


def instructions_csv(run: SettlementRun) -> str:
    """The payment instructions, one per row, numbered, with payer and payee names and
    their payment (status, reference, when)."""
    return _csv(
        INSTRUCTION_COLUMNS,
        (
            [
                *(i["number"], i["payer"], i["payerName"], i["payee"], i["payeeName"]),
                *(i["amount"], run.document["currency"], _status(i)),
                *(i["reference"] or "", i["paidAt"] or ""),
            ]
            for i in instructions(run)
        ),
    )


def _name(document: dict[str, Any], key: str) -> str:
    return html.escape(str(document["parties"].get(key, key)))


def _heatmap(document: dict[str, Any]) -> str:
    cells = document["points"]["matrix"]
    issuers = sorted({c["issuer"] for c in cells})
    redeemers = sorted({c["redeemer"] for c in cells})
    if not cells:
        return "<p>No redemptions in the period.</p>"
    top = max(abs(int(c["points"])) for c in cells) or 1
    size, left, head = 56, 180, 110
    width, height = left + size * len(redeemers) + 140, head + size * len(issuers)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        ' role="img" aria-label="Points issued by (rows) and redeemed at (columns)">'
    ]
    for column, redeemer in enumerate(redeemers):
        x = left + column * size + size // 2
        parts.append(
            f'<text x="{x}" y="{head - 8}" transform="rotate(-40 {x} {head - 8})"'
            f' font-size="12">{_name(document, redeemer)}</text>'
        )
    for row, issuer in enumerate(issuers):
        y = head + row * size
        parts.append(
            f'<text x="{left - 8}" y="{y + size // 2 + 4}" text-anchor="end"'
            f' font-size="12">{_name(document, issuer)}</text>'
        )
        for column, redeemer in enumerate(redeemers):
            points = sum(
                int(c["points"])
                for c in cells
                if c["issuer"] == issuer and c["redeemer"] == redeemer
            )
            shade = int(235 - 190 * abs(points) / top)
            x = left + column * size
            parts.append(
                f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}"'
                f' fill="rgb({shade},{shade + 10 if shade < 245 else 245},255)">'
                f"<title>{points} points</title></rect>"
            )
            ink = "#fff" if shade < 140 else "#222"
            parts.append(
                f'<text x="{x + size // 2}" y="{y + size // 2 + 4}" fill="{ink}"'
                f' text-anchor="middle" font-size="11">{points}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _bars(document: dict[str, Any]) -> str:
    positions = [(k, Decimal(v)) for k, v in document["netPositions"].items()]
    if not positions:
        return "<p>No money moves in the period.</p>"
    top = max(abs(v) for _, v in positions) or Decimal(1)
    row, left, half = 28, 200, 220
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + 2 * half + 90}"'
        f' height="{row * len(positions) + 10}" role="img"'
        ' aria-label="Net position per party: right pays, left receives">'
    ]
    middle = left + half
    for index, (key, value) in enumerate(positions):
        y = 5 + index * row
        length = int(half * abs(value) / top)
        x = middle if value >= 0 else middle - length
        color = "#c0504d" if value > 0 else "#4f81bd"
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" font-size="12">'
            f"{_name(document, key)}</text>"
        )
        parts.append(
            f'<rect x="{x}" y="{y + 4}" width="{max(length, 1)}" height="{row - 8}"'
            f' fill="{color}"><title>{value}</title></rect>'
        )
        parts.append(f'<text x="{middle + half + 8}" y="{y + 16}" font-size="12">{value}</text>')
    parts.append(
        f'<line x1="{middle}" y1="0" x2="{middle}" y2="{row * len(positions) + 10}"'
        ' stroke="#333"/></svg>'
    )
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]], numeric: Iterable[int] = ()) -> str:
    """An HTML table; the ``numeric`` columns (by index) are right-aligned, header and
    cells alike, the others left-aligned, so each header sits over its column."""
    right = set(numeric)

    def cell(tag: str, index: int, value: Any) -> str:
        align = ' class="num"' if index in right else ""
        return f"<{tag}{align}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_HTML_STYLE = [
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}",
    "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;",
    "padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}.num{text-align:right}",
    "tr.total td{font-weight:600;background:#fafafa}</style></head><body>",
]


def _totals_html(document: dict[str, Any], currency: str) -> str:
    """Totals by party: the CSV summary's rows."""
    headers = [
        "party",
        "name",
        "issued",
        "redeemed here",
        "its points redeemed",
        "expired",
        f"net ({currency})",
        "currency",
    ]
    return _table(headers, _summary_rows(document), numeric=range(2, 7))


#: Reasons in the order a reader follows the money.
REASONS = ("issuance", "redemption", "fee")


def _reason_order(reason: str) -> tuple[bool, int, str]:
    base = reason.split(" (", 1)[0]
    late = reason != base
    return late, REASONS.index(base) if base in REASONS else len(REASONS), reason


def _breakdown_rows(document: dict[str, Any], currency: str) -> list[list[Any]]:
    rounded = {
        (o["debtor"], o["creditor"], o["reason"]): o["amount"] for o in document["obligations"]
    }
    rates = "exchangeRates" in document
    rows: list[list[Any]] = []
    for reason in sorted({line["reason"] for line in document["breakdown"]}, key=_reason_order):
        shown: set[tuple[str, str, str]] = set()
        for line in (x for x in document["breakdown"] if x["reason"] == reason):
            key = (line["debtor"], line["creditor"], reason)
            rows.append(
                [
                    reason,
                    name_of(document, line["debtor"]),
                    name_of(document, line["creditor"]),
                    line["fundingModel"],
                    line["points"],
                    f"{line['price']} {line['priceCurrency']}",
                    *([line["rate"]] if rates else []),
                    line.get("feeRate", ""),
                    line["exact"],
                    "" if key in shown else rounded.get(key, "0"),
                ]
            )
            shown.add(key)
        total = sum((Decimal(rounded.get(k, "0")) for k in shown), Decimal(0))
        rows.append([f"total {reason}", *[""] * (8 if rates else 7), f"{total} {currency}"])
    return rows


def _breakdown_html(document: dict[str, Any], currency: str) -> str:
    """Each obligation by reason, with the points and prices it comes from."""
    if "breakdown" not in document:
        return "<p>This run was stored before its prices were recorded with it.</p>" + _table(
            ["reason", "debtor", "creditor", f"amount ({currency})"],
            [
                [o["reason"], name_of(document, o["debtor"]), name_of(document, o["creditor"]),
                 o["amount"]]
                for o in document["obligations"]
            ],
            numeric=[3],
        )  # fmt: skip
    if not document["breakdown"]:
        return "<p>No money is owed for the period.</p>"
    rates = ["rate"] if "exchangeRates" in document else []
    headers = [
        *("reason", "debtor", "creditor", "funding model", "points", "price per point"),
        *rates,
        *("fee rate", f"exact ({currency})", f"obligation ({currency})"),
    ]
    numeric = [i for i, h in enumerate(headers) if i >= 4]
    table = _table(headers, _breakdown_rows(document, currency), numeric=numeric)
    return table.replace("<tr><td>total ", '<tr class="total"><td>total ')


def _instructions_html(run: SettlementRun, currency: str) -> str:
    rows = [
        [
            i["number"],
            i["payerName"],
            i["payeeName"],
            i["amount"],
            "paid" if i["paid"] else "unpaid",
            i["reference"] or "",
            i["paidAt"] or "",
        ]
        for i in instructions(run)
    ]
    if not rows:
        return "<p>None.</p>"
    headers = ["#", "payer", "payee", f"amount ({currency})", "status", "reference", "paid at"]
    return _table(headers, rows, numeric=[0, 3])


def _adjustments_html(document: dict[str, Any]) -> str:
    adjustments = document.get("priorPeriodAdjustments", {}).get("byParty", {})
    if not adjustments:
        return "<p>None.</p>"
    return _table(
        ["party", "issued", "redeemed at", "redeemed from", "expired"],
        [
            [name_of(document, k), v["issued"], v["redeemedAt"], v["redeemedFrom"], v["expired"]]
            for k, v in adjustments.items()
        ],
        numeric=range(1, 5),
    )


def _campaigns_html(document: dict[str, Any], currency: str) -> list[str]:
    """Each campaign's cost per funder (points issued as its lots, their money at the
    funder's issue price); nothing for a run without campaign awards."""
    campaigns = document.get("campaigns", [])
    if not campaigns:
        return []
    rows = [
        [c["campaign"], c["name"], name_of(document, c["funder"]), c["points"], c["amount"]]
        for c in campaigns
    ]
    table = _table(
        ["campaign", "name", "funder", "points", f"cost ({currency})"], rows, numeric=[3, 4]
    )
    return ["<h2>Campaign costs by funder</h2>", table]


def _reconciliation_html(document: dict[str, Any]) -> str:
    rec = document["reconciliation"]
    checks = [
        ["money journal balances", "yes" if rec["journalBalanced"] else "NO"],
        [
            "partners' net positions sum to the coalition margin",
            "yes" if rec["partnersNetEqualsMargin"] else "NO",
        ],
        ["coalition margin", f"{rec['coalitionMargin']} {document['currency']}"],
    ]
    return _table(["check", "result"], checks)


def to_html(run: SettlementRun) -> str:
    document = run.document
    period = document["period"]
    currency = html.escape(document["currency"])
    lines = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Settlement run {run.id}</title><style>",
        *_HTML_STYLE,
        f"<h1>Settlement run {run.id} <small>({html.escape(str(run.status))})</small></h1>",
        f"<p>Period {html.escape(period['from'])} to {html.escape(period['to'])}"
        f" (end excluded), amounts in {currency}."
        f" Digest <code>{html.escape(run.digest)}</code>.</p>",
        "<h2>Totals by party</h2>",
        _totals_html(document, currency),
        "<h2>Breakdown by reason, with the prices used</h2>",
        _breakdown_html(document, currency),
        *_campaigns_html(document, currency),
        "<h2>Points issued by (rows) and redeemed at (columns)</h2>",
        _heatmap(document),
        "<h2>Net positions</h2><p>Right of the line pays, left receives.</p>",
        _bars(document),
        "<h2>Payment instructions</h2>",
        _instructions_html(run, currency),
        "<h2>Prior-period adjustments</h2>",
        _adjustments_html(document),
        "<h2>Reconciliation</h2>",
        _reconciliation_html(document),
        "</body></html>",
    ]
    return "\n".join(lines) + "\n"


def _bean_account(account: str) -> str:
    """Beancount account names: capitalised components, no underscores at the start."""
    kind, _, rest = account.partition(":")
    if kind == "Partner":
        return f"Assets:Settlement:Partner{rest}"
    return f"Equity:Coalition:{rest}" if rest == "Revenue" else f"Assets:Coalition:{rest}"


def _bean_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def _bean_party_account(party: str) -> str:
    """The journal account of a party: ``Partner:<id>``, or the coalition's clearing
    account, through which it pays and is paid."""
    return "Coalition:Clearing" if party == "coalition" else "Partner:" + party.split(":", 1)[1]


def _bean_payments(run: SettlementRun, currency: str) -> tuple[list[str], dict[str, Decimal]]:
    """A transaction per paid instruction, dated when it was paid: the payer's position
    goes down by the amount and the payee's up (the coalition's through clearing)."""
    lines: list[str] = []
    moved: dict[str, Decimal] = {}
    for i in instructions(run):
        if not i["paid"]:
            continue
        payer, payee = _bean_party_account(i["payer"]), _bean_party_account(i["payee"])
        amount = Decimal(i["amount"])
        moved[payer] = moved.get(payer, Decimal(0)) - amount
        moved[payee] = moved.get(payee, Decimal(0)) + amount
        what = f"run {run.id} instruction {i['number']}: {i['payerName']} pays {i['payeeName']}"
        lines += [
            f"{i['paidAt'][:10]} * {_bean_string(i['payerName'])} {_bean_string(what)}",
            f"  reference: {_bean_string(i['reference'])}",
            f"  {_bean_account(payer)}  {-amount} {currency}",
            f"  {_bean_account(payee)}  {amount} {currency}",
            "",
        ]
    return lines, moved


def _bean_name(document: dict[str, Any], account: str) -> str:
    kind, _, rest = account.partition(":")
    return name_of(document, f"partner:{rest}") if kind == "Partner" else f"Coalition {rest}"


def to_beancount(run: SettlementRun) -> str:
    """The run's money journal as one balanced beancount transaction, the recorded
    payments as one transaction each, the accounts they use (named after their
    partners), and a balance assertion per account after them all, so `bean-check`
    verifies the same totals (once every instruction is paid, every partner's is 0)."""
    document, currency = run.document, run.document["currency"]
    day, opened = document["period"]["to"][:10], document["period"]["from"][:10]
    legs = {leg["account"]: Decimal(leg["amount"]) for leg in document["journal"]}
    payments, moved = _bean_payments(run, currency)
    balances = {a: legs.get(a, Decimal(0)) + moved.get(a, Decimal(0)) for a in [*legs, *moved]}
    lines = [
        f'option "title" "Settlement run {run.id}"',
        f'option "operating_currency" "{currency}"',
        "",
    ]
    for account in balances:
        lines.append(f"{opened} open {_bean_account(account)} {currency}")
        lines.append(f"  name: {_bean_string(_bean_name(document, account))}")
    lines += ["", f'{day} * "Settlement run {run.id}" "net positions"']
    for leg in document["journal"]:
        lines.append(f"  {_bean_account(leg['account'])}  {leg['amount']} {currency}")
    lines += ["", *payments]
    last = max([day, *(i["paidAt"][:10] for i in instructions(run) if i["paid"])])
    for account, amount in balances.items():
        lines.append(f"{_next_day(last)} balance {_bean_account(account)}  {amount} {currency}")
    return "\n".join(lines) + "\n"


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _direction(own: str, instruction: dict[str, Any]) -> dict[str, Any]:
    pays = instruction["payer"] == own
    counterparty = instruction["payee" if pays else "payer"]
    return {
        **instruction,
        "direction": "pays" if pays else "is paid by",
        "counterparty": counterparty,
        "counterpartyName": instruction["payeeName" if pays else "payerName"],
    }


def statement(run: SettlementRun, partner_id: int) -> dict[str, Any]:
    """One partner's statement: only what concerns it — its points, its obligations and
    the prices behind them (with counterparties, named), its net position, and whom it
    pays or is paid by (numbered instructions with their payments)."""
    own = f"partner:{partner_id}"
    document = export(run)
    points = document["points"]
    return {
        "run": run.id,
        "status": str(run.status),
        "digest": run.digest,
        "partner": own,
        "name": document["parties"].get(own, ""),
        "period": document["period"],
        "currency": document["currency"],
        "points": points["byParty"].get(own, {}),
        "redemptionsOfItsPoints": [c for c in points["matrix"] if c["issuer"] == own],
        "redemptionsAtIt": [c for c in points["matrix"] if c["redeemer"] == own],
        "obligations": [o for o in document["obligations"] if own in (o["debtor"], o["creditor"])],
        "breakdown": [b for b in document["breakdown"] if own in (b["debtor"], b["creditor"])],
        "campaigns": [c for c in document.get("campaigns", []) if c["funder"] == own],
        "netPosition": document["netPositions"].get(own, "0"),
        "instructions": [
            _direction(own, i) for i in document["instructions"] if own in (i["payer"], i["payee"])
        ],
    }


def statement_csv(run: SettlementRun, partner_id: int) -> str:
    """The statement as rows: its obligations, its net position, then the payments it
    makes or receives (numbered, with their status), payer in ``debtor``, payee in
    ``creditor``."""
    own = statement(run, partner_id)
    currency = own["currency"]
    rows: list[list[Any]] = [
        ["obligation", "", o["debtor"], o["debtorName"], o["creditor"], o["creditorName"],
         o["reason"], o["amount"], currency, "", "", ""]
        for o in own["obligations"]
    ]  # fmt: skip
    rows.append(["net position", "", own["partner"], own["name"], "", "", "",
                 own["netPosition"], currency, "", "", ""])  # fmt: skip
    rows += [
        ["payment", i["number"], i["payer"], i["payerName"], i["payee"], i["payeeName"],
         "settlement", i["amount"], currency, _status(i), i["reference"] or "", i["paidAt"] or ""]
        for i in own["instructions"]
    ]  # fmt: skip
    return _csv(STATEMENT_COLUMNS, rows)
