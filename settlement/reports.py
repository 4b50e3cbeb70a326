"""Exports of a run: the whole document as canonical JSON, and the coalition summary as
CSV (one row per party). Byte-for-byte deterministic for the same run document."""

from __future__ import annotations

import csv
import io
import json
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
