"""Read models of the ledger: a member's wallet, expiring points, entries and lots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput
from exchange.kit.limits import MAX_EXPIRING_GROUPS, MAX_EXPIRING_WITHIN_DAYS, MAX_LEDGER_PAGE
from exchange.ledger import repository
from exchange.ledger.errors import unknown_member
from exchange.ledger.models import (
    AccountKind,
    EntryKind,
    EntryView,
    ExpiringPoints,
    IssuerBalance,
    Wallet,
)


async def wallet(conn: Connection, *, member_id: int) -> Wallet:
    balances: dict[str, int] = {}
    by_issuer: list[IssuerBalance] = []
    for row in await repository.wallet_rows(conn, member_id=member_id):
        if row.part == "account":
            balances[row.kind] = int(row.points)
        else:
            by_issuer.append(
                IssuerBalance(issuer_partner_id=row.issuer_partner_id, points=int(row.points))
            )
    if AccountKind.MEMBER_WALLET not in balances:
        raise unknown_member(member_id)
    return Wallet(
        member_id=member_id,
        available=balances[AccountKind.MEMBER_WALLET],
        held=balances.get(AccountKind.MEMBER_HELD, 0),
        by_issuer=by_issuer,
    )


async def expiring(
    conn: Connection,
    *,
    member_id: int,
    now: datetime,
    within_days: int = 30,
    limit: int = MAX_EXPIRING_GROUPS,
) -> list[ExpiringPoints]:
    """Points expiring within some days, per issuer and expiry, soonest first, at most
    ``limit`` groups (1 to MAX_EXPIRING_GROUPS)."""
    if not 0 <= within_days <= MAX_EXPIRING_WITHIN_DAYS:
        raise InvalidInput(
            f"withinDays must be between 0 and {MAX_EXPIRING_WITHIN_DAYS}",
            field=["withinDays"],
        )
    if not 1 <= limit <= MAX_EXPIRING_GROUPS:
        raise InvalidInput(f"first must be between 1 and {MAX_EXPIRING_GROUPS}", field=["first"])
    rows = await repository.expiring_lots(
        conn, member_id=member_id, now=now, until=now + timedelta(days=within_days), limit=limit
    )
    return [
        ExpiringPoints(
            issuer_partner_id=row.issuer_partner_id,
            points=int(row.points),
            expires_at=row.expires_at,
        )
        for row in rows
    ]


def entry_view(row: Row) -> EntryView:
    return EntryView(
        id=int(row.id),
        kind=EntryKind(row.kind),
        points=int(row.points),
        partner_id=row.partner_id,
        member_id=row.member_id,
        counterparty_member_id=row.counterparty_member_id,
        reference=row.reference,
        created_at=row.created_at,
        effective_at=row.effective_at,
        target_entry_id=row.target_entry_id,
        hold_id=row.hold_id,
    )


async def entries(
    conn: Connection,
    *,
    limit: int,
    before_id: int | None = None,
    partner_id: int | None = None,
    member_id: int | None = None,
    kinds: list[EntryKind] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reference: str | None = None,
) -> list[EntryView]:
    """One page of entries, newest first; ``limit`` is capped at MAX_LEDGER_PAGE."""
    if not 1 <= limit <= MAX_LEDGER_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_LEDGER_PAGE}", field=["first"])
    rows = await repository.entries_page(
        conn,
        limit=limit,
        before_id=before_id,
        partner_id=partner_id,
        member_id=member_id,
        kinds=[str(kind) for kind in kinds] if kinds else None,
        since=since,
        until=until,
        reference=reference,
    )
    return [entry_view(row) for row in rows]


async def entries_by_keys(conn: Connection, *, client_id: str, keys: list[str]) -> list[EntryView]:
    """The entries a client's idempotency keys name, in the order of the keys."""
    rows = await repository.entries_by_keys(conn, client_id=client_id, idempotency_keys=keys)
    return [entry_view(rows[key]) for key in keys if key in rows]


async def entries_by_ids(conn: Connection, *, entry_ids: list[int]) -> dict[int, EntryView]:
    rows = await repository.entries_by_ids(conn, entry_ids=entry_ids)
    return {int(row.id): entry_view(row) for row in rows}


async def watch_wallet(conn: Connection, *, member_id: int, watcher: str, until: datetime) -> None:
    """Ask the database to NOTIFY wallet_updated for this member until ``until``."""
    await repository.watch_wallet(conn, member_id=member_id, watcher=watcher, expires_at=until)


async def unwatch_wallet(conn: Connection, *, member_id: int, watcher: str) -> None:
    await repository.unwatch_wallet(conn, member_id=member_id, watcher=watcher)


@dataclass(frozen=True)
class AccountView:
    id: int
    kind: AccountKind
    partner_id: int | None
    member_id: int | None
    balance: int


async def accounts(
    conn: Connection, *, after_id: int, limit: int, kind: AccountKind | None = None
) -> list[AccountView]:
    rows = await repository.accounts_page(
        conn, after_id=after_id, limit=limit, kind=str(kind) if kind else None
    )
    return [
        AccountView(int(r.id), AccountKind(r.kind), r.partner_id, r.member_id, int(r.balance))
        for r in rows
    ]
