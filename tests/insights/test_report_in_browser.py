"""The HTML report of `exchange insights` as a reader sees it: written by the command,
opened in headless Chromium, and judged on what the browser built and painted: the
dumped DOM holds the titles, the k-anonymity notes and the three charts with one mark per
figure (the values in their tooltips, the bars as long as the sizes), and the screenshot
shows the charts' colours over as many pixels as the bars cover.

Skipped where Chromium is not installed (CI runs where it is)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from exchange.kit.db import Database
from tests.cli.test_cli import run
from tests.insights.conftest import SINCE, bought
from tests.insights.test_segments import CREATE_SEGMENT
from tests.loyalty.conftest import link, partner_with

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH: the HTML report is not opened in a browser"
)
#: The report's colours: segment bars, the liability line, a cohort cell at 100 %.
BAR, LINE, FULL_CELL = (0x4F, 0x81, 0xBD), (0xC0, 0x50, 0x4D), (45, 55, 255)
#: A bar's height in the bars chart (row 26 less 8), and its length for the largest value.
BAR_HEIGHT, BAR_LENGTH = 18, 200


@dataclass
class Mark:
    tag: str
    attributes: dict[str, str]
    text: str = ""


class Page(HTMLParser):
    """A dumped DOM: the text of its headings and paragraphs, and each chart's marks
    (every element inside an ``<svg>``, by its aria-label, with its own text)."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.paragraphs: list[str] = []
        self.charts: dict[str, list[Mark]] = {}
        self._chart: str | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "svg":
            self._chart = attributes["aria-label"]
            self.charts[self._chart] = []
        elif self._chart is not None:
            self.charts[self._chart].append(Mark(tag, attributes))
        if tag in ("h1", "h2", "p"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        if tag in ("h1", "h2", "p") and self._text is not None:
            (self.paragraphs if tag == "p" else self.headings).append("".join(self._text))
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)
        if self._chart is not None and self.charts[self._chart]:
            self.charts[self._chart][-1].text += data

    def marks(self, chart: str, tag: str) -> list[Mark]:
        return [mark for mark in self.charts[chart] if mark.tag == tag]

    def texts(self, chart: str, tag: str) -> list[str]:
        return [mark.text for mark in self.marks(chart, tag)]


# --- reading a screenshot: PNG (RFC 2083) with the standard library only ------------------


def _up(line: bytes, prior: bytes) -> bytes:
    """Filter 2: each byte plus the byte above, all at once (bytewise, no carries)."""
    size = len(line)
    a, b = int.from_bytes(line), int.from_bytes(prior)
    low, high = int.from_bytes(b"\x7f" * size), int.from_bytes(b"\x80" * size)
    return (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(size)


def _paeth(row: bytearray, prior: bytes, step: int) -> None:
    """Filter 4: plus whichever of left, above and above-left is nearest left + above -
    above-left."""
    for i in range(step):
        row[i] = (row[i] + prior[i]) & 0xFF
    for i in range(step, len(row)):
        left, up, corner = row[i - step], prior[i], prior[i - step]
        if left == up == corner:  # most of a page: one colour around (quick, same answer)
            row[i] = (row[i] + left) & 0xFF
            continue
        a, b, c = abs(up - corner), abs(left - corner), abs(left + up - 2 * corner)
        row[i] = (row[i] + (left if a <= b and a <= c else up if b <= c else corner)) & 0xFF


def _unfilter(kind: int, line: bytes, prior: bytes, step: int) -> bytes:
    """One scanline back from its filter: 0 none, 1 sub, 2 up, 3 average, 4 Paeth."""
    if kind in (0, 2):
        return line if kind == 0 else _up(line, prior)
    row = bytearray(line)
    if kind == 4:
        _paeth(row, prior, step)
    for i in range(len(row)) if kind != 4 else ():
        left = row[i - step] if i >= step else 0
        row[i] = (row[i] + (left if kind == 1 else (left + prior[i]) // 2)) & 0xFF
    return bytes(row)


def colours(png: bytes) -> Counter[tuple[int, int, int]]:
    """How many pixels of each colour an 8-bit RGB or RGBA PNG (not interlaced) has."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(png):
        (length,), kind = struct.unpack(">I", png[at : at + 4]), png[at + 4 : at + 8]
        chunks[kind] = chunks.get(kind, b"") + png[at + 8 : at + 8 + length]
        at += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, interlace) in ((8, 2, 0), (8, 6, 0)), (depth, colour, interlace)
    step = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(chunks[b"IDAT"]), width * step + 1
    counted: Counter[tuple[int, int, int]] = Counter()
    row = bytes(width * step)
    for y in range(height):
        row = _unfilter(raw[y * stride], raw[y * stride + 1 : (y + 1) * stride], row, step)
        counted.update(zip(row[0::step], row[1::step], row[2::step], strict=True))
    return counted


def view(page: Path, screenshot: Path, profile: Path) -> str:
    """Open the page in headless Chromium: its DOM as the browser built it; the window
    painted into ``screenshot``."""
    assert CHROMIUM is not None
    shown = subprocess.run(  # noqa: S603 (the browser on PATH, fixed arguments)
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={profile}", "--force-color-profile=srgb",
            "--force-device-scale-factor=1", "--hide-scrollbars", "--window-size=900,1600",
            f"--screenshot={screenshot}", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    return shown.stdout


async def test_the_html_report_renders_its_charts_in_a_browser(
    db: Database, api: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    name = (await cafe.gql("{ viewer { partner { name } } }"))["data"]["viewer"]["partner"]["name"]
    ann, bob = await link(cafe), await link(cafe)
    await bought(cafe, ann, "10.00", "2026-04-10T10:00:00+00:00")
    await bought(cafe, ann, "20.00", "2026-05-05T10:00:00+00:00")
    await bought(cafe, bob, "30.00", "2026-05-20T10:00:00+00:00")
    created = await cafe.gql(
        CREATE_SEGMENT, input={"name": "REGULARS", "condition": "profile.purchases >= 2"}
    )
    assert created["data"]["createSegment"]["userErrors"] == []
    out = tmp_path / "insights.html"
    written = run(["insights", "--from", "2026-04-01", "--to", "2026-07-01", "--partner", name,
                   "--format", "html", "--out", str(out)], database_url, tmp_path)  # fmt: skip
    assert written.returncode == 0, written.stderr

    page = Page()
    page.feed(view(out, tmp_path / "shot.png", tmp_path / "chromium"))
    painted = colours((tmp_path / "shot.png").read_bytes())

    assert page.headings[0] == f"Insights: {name}"
    assert page.headings[1:4] == [
        "Liability over time (points in wallets at each month end)",
        "Cohort retention (share of each month's new members who came back)",
        "Segment sizes",
    ]
    # k-anonymity: no cross-shopping category and no campaign reach k members here
    assert "Cross-shopping (at least k members per category)" in page.headings
    assert "No category reaches k members." in page.paragraphs
    assert "No targeted campaign with both groups at k members or more." in page.paragraphs
    assert list(page.charts) == ["Liability over time", "Cohort retention", "Segment sizes"]
    # points in wallets at May 1 (Ann's 10), June 1 and July 1 (60): a point each
    assert page.texts("Liability over time", "title") == ["10", "60", "60"]
    [line] = page.marks("Liability over time", "polyline")
    assert len(line.attributes["points"].split()) == 3
    # Ann's April cohort came back in May, not June; Bob's May cohort not in June
    assert len(page.marks("Cohort retention", "rect")) == 3
    assert page.texts("Cohort retention", "title") == ["1.0000", "0.0000", "0.0000"]
    labels = page.texts("Cohort retention", "text")
    assert "2026-04 (1)" in labels
    assert "2026-05 (1)" in labels
    # the command judges on its own clock, today (any day after 2026-11-16): both LAPSED,
    # Ann REPEAT, AT_RISK (25 days apart, none since) and a REGULAR; no RFM refresh ran
    sizes = {"NEW": 0, "ACTIVE": 0, "REPEAT": 1, "HIGH_VALUE": 0, "AT_RISK": 1, "LAPSED": 2,
             "REGULARS": 1}  # fmt: skip
    bars = page.marks("Segment sizes", "rect")
    assert page.texts("Segment sizes", "text")[0::2] == list(sizes)
    assert page.texts("Segment sizes", "title") == [str(size) for size in sizes.values()]
    lengths = [int(bar.attributes["width"]) for bar in bars]
    assert lengths == [max(BAR_LENGTH * size // 2, 1) for size in sizes.values()]

    assert len(painted) >= 8  # text, table, axes and charts: not a blank page
    # every bar, less the one column the axis line is drawn over (all of an empty bar's)
    bar_area = (sum(lengths) - len(lengths)) * BAR_HEIGHT
    assert bar_area * 0.97 <= painted[BAR] <= bar_area * 1.03, (painted[BAR], bar_area)
    assert painted[LINE] > 0
    assert painted[FULL_CELL] >= 40 * 40  # Ann's cohort's May cell: 52 x 52, "100%" on it
