"""Small readers for asserting what an operation wrote: postings, lots, consumptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from exchange import ledger
from exchange.kit.db import Connection, Database
from exchange.kit.system import SYSTEM
from exchange.ledger import repository


async def postings(db: Database, entry_id: int) -> list[tuple[str, int]]:
    """(account kind, signed amount) per posting, in order."""
    async with db.transaction(SYSTEM) as conn:
        rows = await repository.postings_of_entry(conn, entry_id=entry_id)
    return [(row.kind, int(row.amount)) for row in rows]


async def lots(db: Database, member_id: int) -> list[Any]:
    async with db.transaction(SYSTEM) as conn:
        return await repository.lots_of_member(conn, member_id=member_id)


async def consumptions(db: Database, entry_id: int) -> list[tuple[str, int, int | None]]:
    """(kind, points, redeemer) per consumption row of an entry."""
    async with db.transaction(SYSTEM) as conn:
        rows = await repository.consumptions_of_entry(conn, entry_id=entry_id)
    return [(row.kind, int(row.points), row.redeemer_partner_id) for row in rows]


async def partner_balance(db: Database, partner_id: int, kind: str) -> int:
    from exchange.ledger.models import AccountKind

    async with db.transaction(SYSTEM) as conn:
        account = await repository.partner_account(
            conn, partner_id=partner_id, kind=AccountKind(kind)
        )
        assert account is not None
        return await repository.account_balance(conn, account_id=account.id)


#: A ledger operation's request type, by the operation's name.
REQUESTS: dict[str, Callable[..., Any]] = {
    "earn": ledger.EarnRequest,
    "redeem": ledger.RedeemRequest,
    "hold": ledger.HoldRequest,
    "capture": ledger.CaptureRequest,
    "reverse": ledger.ReverseRequest,
    "transfer": ledger.TransferRequest,
    "adjust": ledger.AdjustRequest,
}


async def call_ledger(conn: Connection, name: str, *, now: datetime, **fields: Any) -> Any:
    """Call the ledger operation ``name`` with its request's fields and the caller's
    (``client_id``, ``partner_id``) given flat, as a test states them."""
    if name == "release":
        return await ledger.release(conn, now=now, **fields)
    caller = {k: fields.pop(k) for k in ("client_id", "partner_id") if k in fields}
    request = REQUESTS[name](**fields)
    return await getattr(ledger, name)(conn, request=request, now=now, **caller)
