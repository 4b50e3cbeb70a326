"""What an endpoint receives: ``{"type", "timestamp", "data"}``, with the member named by
the receiving partner's own memberRef (an operators' endpoint: the member's global ID),
ids as the API's global IDs, points and balances as JSON strings (as BigInt is)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from exchange.kit.global_ids import encode

#: facts key -> (data key, global ID type).
_IDS = {
    "entry": ("transactionId", "Transaction"),
    "hold": ("holdId", "Hold"),
    "purchase": ("purchaseId", "Purchase"),
    "campaign": ("campaignId", "Campaign"),
    "run": ("settlementRunId", "SettlementRun"),
    "owner": ("ownerId", "Partner"),
    "issuer": ("issuerId", "Partner"),
    "endpoint": ("endpointId", "WebhookEndpoint"),
    "offer": ("offerId", "Offer"),
}
_POINTS = ("points", "balance", "qualifyingPoints")
#: Facts no receiver needs: the other member of a transfer is not the partner's to know.
_PRIVATE = frozenset({"counterparty", "lot"})


def data_of(
    facts: dict[str, Any], *, member_id: int | None, member_ref: str | None, operator: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if member_id is not None:
        if operator:
            data["memberId"] = encode("Member", member_id)
        else:
            data["memberRef"] = member_ref
    for key, value in facts.items():
        if key in _PRIVATE or value is None:
            continue
        if key in _IDS:
            name, kind = _IDS[key]
            data[name] = encode(kind, int(value))
        elif key in _POINTS:
            data[key] = str(int(value))
        else:
            data[key] = value
    return data


def body(
    event_type: str,
    occurred_at: datetime,
    facts: dict[str, Any],
    *,
    member_id: int | None,
    member_ref: str | None,
    operator: bool,
) -> bytes:
    return orjson.dumps(
        {
            "type": event_type,
            "timestamp": occurred_at.isoformat(),
            "data": data_of(facts, member_id=member_id, member_ref=member_ref, operator=operator),
        }
    )
