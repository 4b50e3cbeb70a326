"""Exports of a run, byte-for-byte deterministic for the same run document:
the whole document as canonical JSON; the coalition summary as CSV (one row per party);
an HTML report for people (totals, the issuer x redeemer matrix as a heatmap, net
positions as a bar chart, both inline SVG, no external assets; instructions and
reconciliation); and the money journal as a beancount ledger for `bean-check`."""

from __future__ import annotations

import csv
import html
import io
import json
from decimal import Decimal
from typing import Any

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


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2) + "\n"


def to_csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    points = document["points"]["byParty"]
    parties = sorted(set(points) | set(document["netPositions"]))
    for key in parties:
        counts = points.get(key, {})
        writer.writerow(
            [
                key,
                document["parties"].get(key, ""),
                counts.get("issued", 0),
                counts.get("redeemedAt", 0),
                counts.get("redeemedFrom", 0),
                counts.get("expired", 0),
                document["netPositions"].get(key, "0"),
                document["currency"],
            ]
        )
    return out.getvalue()


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


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_HTML_STYLE = [
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}",
    "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;",
    "padding:.3rem .6rem;text-align:right}th{background:#f3f3f3}",
    "td:first-child,td:nth-child(2){text-align:left}</style></head><body>",
]


def _totals_html(document: dict[str, Any], currency: str) -> str:
    """Totals by party: the CSV summary's rows."""
    summary = list(csv.reader(io.StringIO(to_csv(document))))
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
    return _table(headers, summary[1:])


def _instructions_html(document: dict[str, Any], currency: str) -> str:
    instructions = [
        [_name(document, i["payer"]), _name(document, i["payee"]), i["amount"]]
        for i in document["instructions"]
    ]
    if not instructions:
        return "<p>None.</p>"
    return _table(["payer", "payee", f"amount ({currency})"], instructions)


def _adjustments_html(document: dict[str, Any]) -> str:
    adjustments = document.get("priorPeriodAdjustments", {}).get("byParty", {})
    if not adjustments:
        return "<p>None.</p>"
    return _table(
        ["party", "issued", "redeemed at", "redeemed from", "expired"],
        [
            [_name(document, k), v["issued"], v["redeemedAt"], v["redeemedFrom"], v["expired"]]
            for k, v in adjustments.items()
        ],
    )


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


def to_html(document: dict[str, Any], *, run_id: int, status: str) -> str:
    period = document["period"]
    currency = html.escape(document["currency"])
    lines = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Settlement run {run_id}</title><style>",
        *_HTML_STYLE,
        f"<h1>Settlement run {run_id} <small>({html.escape(status)})</small></h1>",
        f"<p>Period {html.escape(period['from'])} to {html.escape(period['to'])}"
        f" (end excluded), amounts in {currency}.</p>",
        "<h2>Totals by party</h2>",
        _totals_html(document, currency),
        "<h2>Points issued by (rows) and redeemed at (columns)</h2>",
        _heatmap(document),
        "<h2>Net positions</h2><p>Right of the line pays, left receives.</p>",
        _bars(document),
        "<h2>Payment instructions</h2>",
        _instructions_html(document, currency),
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


def to_beancount(document: dict[str, Any], *, run_id: int) -> str:
    """The run's money journal as one balanced beancount transaction, plus the accounts it
    uses and a balance assertion per account, so `bean-check` verifies the same totals."""
    currency = document["currency"]
    day = document["period"]["to"][:10]
    opened = document["period"]["from"][:10]
    legs = document["journal"]
    lines = [
        f'option "title" "Settlement run {run_id}"',
        f'option "operating_currency" "{currency}"',
        "",
    ]
    for leg in legs:
        lines.append(f"{opened} open {_bean_account(leg['account'])} {currency}")
    lines += ["", f'{day} * "Settlement run {run_id}" "net positions"']
    for leg in legs:
        lines.append(f"  {_bean_account(leg['account'])}  {leg['amount']} {currency}")
    lines.append("")
    for leg in legs:
        lines.append(
            f"{_next_day(day)} balance {_bean_account(leg['account'])}  {leg['amount']} {currency}"
        )
    return "\n".join(lines) + "\n"


def _next_day(day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def statement(document: dict[str, Any], partner_id: int) -> dict[str, Any]:
    """One partner's statement: only what concerns it — its points, its obligations
    (with counterparties), its net position and the payments it makes or receives."""
    own = f"partner:{partner_id}"
    points = document["points"]
    return {
        "partner": own,
        "name": document["parties"].get(own, ""),
        "period": document["period"],
        "currency": document["currency"],
        "points": points["byParty"].get(own, {}),
        "redemptionsOfItsPoints": [c for c in points["matrix"] if c["issuer"] == own],
        "redemptionsAtIt": [c for c in points["matrix"] if c["redeemer"] == own],
        "obligations": [o for o in document["obligations"] if own in (o["debtor"], o["creditor"])],
        "netPosition": document["netPositions"].get(own, "0"),
        "instructions": [i for i in document["instructions"] if own in (i["payer"], i["payee"])],
    }


def statement_csv(document: dict[str, Any], partner_id: int) -> str:
    """The statement's obligations, one per row, with the net position last."""
    own = statement(document, partner_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["debtor", "creditor", "reason", "amount", "currency"])
    for o in own["obligations"]:
        writer.writerow([o["debtor"], o["creditor"], o["reason"], o["amount"], own["currency"]])
    writer.writerow(["net position", "", "", own["netPosition"], own["currency"]])
    return out.getvalue()
