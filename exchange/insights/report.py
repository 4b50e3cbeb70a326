"""The insights report (``exchange insights --format html|json|csv``): the KPIs of a
window, and four charts drawn as inline SVG, as the settlement report draws its own:
liability over time (month ends), the cohort retention heatmap, segment sizes and the
uplift of targeted campaigns. No script, no external asset: the file opens anywhere."""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from exchange.insights import kpis, repository, segments, targets
from exchange.insights.models import CampaignReport, Segment
from exchange.kit.db import Connection
from exchange.loyalty import campaigns as campaign_rules

#: The name a report of every partner goes by.
EVERY_PARTNER = "every partner"
#: Targeted campaigns a report shows, newest first.
REPORT_CAMPAIGNS = 20
#: Month ends a liability chart shows at most.
MAX_MONTHS = 36


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    partner: str
    kpis: kpis.Insights
    liability: list[tuple[str, int]]
    segments: list[Segment]
    campaigns: list[tuple[str, CampaignReport]]


def month_ends(start: datetime, end: datetime) -> list[datetime]:
    """The first instant of each month after ``start`` up to ``end``, and ``end``."""
    moments: list[datetime] = []
    year, month = start.year, start.month
    while len(moments) < MAX_MONTHS:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        moment = datetime(year, month, 1, tzinfo=UTC)
        if moment >= end:
            break
        moments.append(moment)
    return [*moments, end]


async def gather(
    conn: Connection,
    *,
    partner_id: int | None,
    partner: str,
    start: datetime,
    end: datetime,
    now: datetime,
    k: int,
) -> Report:
    found = await kpis.insights(conn, partner_id=partner_id, start=start, end=end, now=now, k=k)
    rows = await repository.liability_at(
        conn, partner_id=partner_id, moments=month_ends(start, end)
    )
    listed = await segments.listing(conn, owner=partner_id, now=now, after_id=0, first=100)
    reports = []
    ids = await repository.targeted_campaign_ids(
        conn, owner_partner_id=partner_id, limit=REPORT_CAMPAIGNS
    )
    for campaign_id in ids:
        campaign = await campaign_rules.get(conn, campaign_id=campaign_id)
        shown = await targets.report(conn, campaign=campaign, now=now, k=k)
        if shown is not None:
            reports.append((campaign.name, shown))
    return Report(
        start,
        end,
        partner,
        found,
        [(row.at.date().isoformat(), int(row.points)) for row in rows],
        listed,
        reports,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def to_json(report: Report) -> str:
    return json.dumps(
        _plain(
            {
                "from": report.start,
                "to": report.end,
                "partner": report.partner,
                "kpis": asdict(report.kpis),
                "liability": [{"at": at, "points": p} for at, p in report.liability],
                "segments": [asdict(s) for s in report.segments],
                "campaigns": [{"name": n, **asdict(r)} for n, r in report.campaigns],
            }
        ),
        indent=2,
    )


def to_csv(report: Report) -> str:
    """One row per figure: section, name, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "name", "value"])
    for name, value in asdict(report.kpis).items():
        if name not in ("retention", "cross_shopping"):
            writer.writerow(["kpi", name, _plain(value)])
    for cohort in report.kpis.retention:
        retained = " ".join(str(r) for r in cohort.retained)
        writer.writerow(["retention", cohort.month, f"{cohort.members}: {retained}".strip()])
    for share in report.kpis.cross_shopping:
        writer.writerow(["cross_shopping", share.category, f"{share.share} ({share.members})"])
    for at, points in report.liability:
        writer.writerow(["liability", at, points])
    for segment in report.segments:
        writer.writerow(["segment", segment.name, segment.size])
    for name, shown in report.campaigns:
        writer.writerow(["campaign_uplift", name, _plain(shown.uplift)])
    return out.getvalue()


# --- charts ---------------------------------------------------------------------------

_SVG = 'xmlns="http://www.w3.org/2000/svg" role="img"'


def bars(label: str, rows: list[tuple[str, Decimal]], unit: str = "") -> str:
    """Horizontal bars, one per row; negative values to the left of the axis."""
    if not rows:
        return "<p>Nothing to show.</p>"
    top = max(abs(v) for _, v in rows) or Decimal(1)
    row, left, half = 26, 200, 200
    axis = left + (half if any(v < 0 for _, v in rows) else 0)
    width = axis + half + 120
    parts = [
        f'<svg {_SVG} width="{width}" height="{row * len(rows) + 10}"'
        f' aria-label="{html.escape(label)}">'
    ]
    for index, (name, value) in enumerate(rows):
        y = 5 + index * row
        length = int(half * abs(value) / top)
        x = axis if value >= 0 else axis - length
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" font-size="12">'
            f"{html.escape(name)}</text>"
        )
        parts.append(
            f'<rect x="{x}" y="{y + 4}" width="{max(length, 1)}" height="{row - 8}"'
            f' fill="#4f81bd"><title>{value}{unit}</title></rect>'
        )
        parts.append(
            f'<text x="{axis + half + 8}" y="{y + 16}" font-size="12">{value}{unit}</text>'
        )
    parts.append(
        f'<line x1="{axis}" y1="0" x2="{axis}" y2="{row * len(rows) + 10}" stroke="#333"/></svg>'
    )
    return "".join(parts)


def line(label: str, points: list[tuple[str, int]]) -> str:
    """A line over labelled points (liability at each month end)."""
    if not points:
        return "<p>Nothing to show.</p>"
    top = max(abs(p) for _, p in points) or 1
    step, height, left = 90, 180, 70
    width = left + step * max(len(points) - 1, 1) + 60
    xy = [
        (left + i * step, 20 + int((height - 20) * (1 - p / top)))
        for i, (_, p) in enumerate(points)
    ]
    path = " ".join(f"{x},{y}" for x, y in xy)
    right = left + step * max(len(points) - 1, 1)
    parts = [
        f'<svg {_SVG} width="{width}" height="{height + 40}" aria-label="{html.escape(label)}">',
        f'<line x1="{left}" y1="{height}" x2="{right}" y2="{height}" stroke="#333"/>',
        f'<text x="{left - 8}" y="{height + 4}" text-anchor="end" font-size="11">0</text>',
        f'<polyline points="{path}" fill="none" stroke="#c0504d" stroke-width="2"/>',
    ]
    for (x, y), (at, value) in zip(xy, points, strict=True):
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="3" fill="#c0504d"><title>{value}</title></circle>'
        )
        parts.append(
            f'<text x="{x}" y="{height + 30}" text-anchor="middle" font-size="11">'
            f"{html.escape(at)}</text>"
        )
        parts.append(
            f'<text x="{x}" y="{y - 8}" text-anchor="middle" font-size="11">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def heatmap(label: str, cohorts: list[kpis.Cohort]) -> str:
    """Cohorts (rows) by months after the first (columns), shaded by the share retained."""
    if not cohorts:
        return "<p>No cohort in the window.</p>"
    size, left, head = 54, 130, 30
    columns = max(len(c.retained) for c in cohorts)
    width = left + size * max(columns, 1) + 240
    height = head + size * len(cohorts)
    parts = [f'<svg {_SVG} width="{width}" height="{height}" aria-label="{html.escape(label)}">']
    for column in range(columns):
        x = left + column * size + size // 2
        parts.append(
            f'<text x="{x}" y="{head - 10}" text-anchor="middle" font-size="12">'
            f"+{column + 1}</text>"
        )
    for index, cohort in enumerate(cohorts):
        y = head + index * size
        parts.append(
            f'<text x="{left - 8}" y="{y + size // 2 + 4}" text-anchor="end"'
            f' font-size="12">{html.escape(cohort.month)} ({cohort.members})</text>'
        )
        if not cohort.retained:
            parts.append(
                f'<text x="{left}" y="{y + size // 2 + 4}" font-size="12" fill="#666">'
                "no later month in the window yet</text>"
            )
        for column, share in enumerate(cohort.retained):
            shade = int(235 - 190 * share)
            x = left + column * size
            ink = "#fff" if shade < 140 else "#222"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}"'
                f' fill="rgb({shade},{min(shade + 10, 245)},255)">'
                f"<title>{share}</title></rect>"
                f'<text x="{x + size // 2}" y="{y + size // 2 + 4}" fill="{ink}"'
                f' text-anchor="middle" font-size="11">{share * 100:.0f}%</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;"
    "padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}.num{text-align:right}"
)


def _kpi_table(found: kpis.Insights) -> str:
    rows = [
        ("Liability (points)", found.liability_points),
        (f"Liability ({found.currency})", found.liability_amount),
        ("Points issued", found.issued),
        ("Points redeemed", found.redeemed),
        ("Points expired", found.expired),
        ("Breakage rate", found.breakage_rate),
        ("Redemption rate", found.redemption_rate),
        ("Active members, 30 days", found.active_members_30),
        ("Active members, 90 days", found.active_members_90),
        ("Repeat rate", found.repeat_rate),
        (f"Spend per member ({found.currency})", found.spend_per_member),
    ]
    body = "".join(
        f'<tr><td>{html.escape(name)}</td><td class="num">{html.escape(str(value))}</td></tr>'
        for name, value in rows
    )
    return f"<table><tbody>{body}</tbody></table>"


def _cross_shopping(found: kpis.Insights, every_partner: bool) -> str:
    if not found.cross_shopping:
        return "<p>No category reaches k members.</p>"
    where = "" if every_partner else " elsewhere"
    return bars(
        f"Share of consenting members who bought each category{where}",
        [(s.category, (s.share * 100).quantize(Decimal("0.1"))) for s in found.cross_shopping],
        " %",
    )


def to_html(report: Report) -> str:
    found = report.kpis
    uplift = [
        (name, (r.uplift * 100).quantize(Decimal("0.1")))
        for name, r in report.campaigns
        if r.uplift is not None
    ]
    lines = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Insights: {html.escape(report.partner)}</title><style>{_STYLE}</style>",
        "</head><body>",
        f"<h1>Insights: {html.escape(report.partner)}</h1>",
        f"<p>From {report.start.date()} to {report.end.date()} (end excluded); amounts in"
        f" {html.escape(found.currency)}.</p>",
        _kpi_table(found),
        "<h2>Liability over time (points in wallets at each month end)</h2>",
        line("Liability over time", report.liability),
        "<h2>Cohort retention (share of each month's new members who came back)</h2>",
        heatmap("Cohort retention", found.retention),
        "<h2>Segment sizes</h2>",
        bars("Segment sizes", [(s.name, Decimal(s.size)) for s in report.segments]),
        "<h2>Cross-shopping (at least k members per category)</h2>",
        _cross_shopping(found, report.partner == EVERY_PARTNER),
        "<h2>Targeted campaigns: uplift (treated minus control conversion, points)</h2>",
        bars("Campaign uplift", uplift, " pt")
        if uplift
        else "<p>No targeted campaign with both groups at k members or more.</p>",
        "</body></html>",
    ]
    return "\n".join(lines) + "\n"
