"""Bulk issuance: up to MAX_BATCH earn items in one transaction, set-based.

Each item keeps its own idempotency key and its own result: an item that fails a check
(bad input, unknown member, key reused for another request, credit limit) is reported
and moves nothing, while the others are written. Every check happens before the first
write, so a batch never leaves a partial item behind; a database failure rolls back
the whole batch. The writes are one statement per table for the whole batch, in the
single-earn lock order (entries, then wallets by member id, then the shard), so a batch
cannot deadlock with another batch or with single operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.clock import require_aware
from exchange.kit.db import sql
from exchange.kit.errors import DomainError, InvalidInput, NotFound
from exchange.kit.units import positive_points
from exchange.ledger import repository
from exchange.ledger.errors import IdempotencyKeyReused, LimitExceeded
from exchange.ledger.idempotency import check_key, request_hash
from exchange.ledger.models import DEFAULT_POINTS_LIFETIME_DAYS, AccountKind, EntryKind, EntryResult
from exchange.ledger.service import check_reference, earn_request, partner_account

MAX_BATCH = 1000


@dataclass(frozen=True)
class EarnItem:
    idempotency_key: str
    member_id: int
    points: int
    reference: str | None = None
    expires_at: datetime | None = None


Outcome = EntryResult | DomainError


@dataclass
class _Pending:
    index: int
    item: EarnItem
    digest: bytes
    expires_at: datetime | None = None


def _request(partner_id: int, item: EarnItem) -> dict[str, Any]:
    return earn_request(
        partner_id=partner_id,
        member_id=item.member_id,
        points=item.points,
        reference=item.reference,
        expires_at=item.expires_at,
        effective_at=None,
        metadata=None,
    )


async def earn_batch(
    conn: AsyncConnection,
    *,
    client_id: str,
    partner_id: int,
    items: Sequence[EarnItem | DomainError],
    now: datetime,
) -> list[Outcome]:
    """Issue points for every valid item; one outcome per item, in order. An item given as
    a DomainError (the caller could not resolve it) is reported as that error."""
    if not items:
        raise InvalidInput("a batch needs at least one item", field=["items"])
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} items", field=["items"])
    outcomes: list[Outcome | None] = [None] * len(items)
    issued = await partner_account(conn, partner_id, AccountKind.PARTNER_ISSUED)

    firsts: dict[str, _Pending] = {}
    pending: dict[str, _Pending] = {}  # first uses of keys, not yet decided
    repeats: list[_Pending] = []  # a key given again in the same batch
    for index, item in enumerate(items):
        if isinstance(item, DomainError):
            outcomes[index] = item
            continue
        try:
            positive_points(item.points)
            check_key(client_id, item.idempotency_key)
            check_reference(item.reference)
            if item.expires_at is not None:
                require_aware(item.expires_at, "expiresAt")
        except DomainError as error:
            error.field = ["items", str(index), *(error.field or [])]
            outcomes[index] = error
            continue
        entry = _Pending(index, item, request_hash(EntryKind.EARN, _request(partner_id, item)))
        if item.idempotency_key in firsts:
            repeats.append(entry)
        else:
            firsts[item.idempotency_key] = pending[item.idempotency_key] = entry

    await _settle_known_keys(conn, client_id, pending, outcomes)
    _check_expiry(issued, pending, outcomes, now)
    await _check_members(conn, pending, outcomes)
    if issued.credit_limit_points is not None and pending:
        await _check_credit_limit(
            conn, partner_id, int(issued.credit_limit_points), pending, outcomes
        )
    if pending:
        await _write(conn, client_id, partner_id, int(issued.id), pending, outcomes, now)

    for repeat in repeats:  # decided like a replay of the key's first use
        first = firsts[repeat.item.idempotency_key]
        outcome = outcomes[first.index]
        if repeat.digest != first.digest:
            outcomes[repeat.index] = _reused(repeat.index)
        elif isinstance(outcome, EntryResult):
            outcomes[repeat.index] = _replay_of(outcome)
        else:
            outcomes[repeat.index] = outcome
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(items), "every item has an outcome"
    return done


def _replay_of(result: EntryResult) -> EntryResult:
    return EntryResult(
        entry_id=result.entry_id,
        kind=result.kind,
        points=result.points,
        member_id=result.member_id,
        partner_id=result.partner_id,
        wallet_balance=None,
        replayed=True,
    )


def _reused(index: int) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "this idempotencyKey was already used for a different request",
        field=["items", str(index), "idempotencyKey"],
    )


async def _settle_known_keys(
    conn: AsyncConnection,
    client_id: str,
    pending: dict[str, _Pending],
    outcomes: list[Outcome | None],
) -> None:
    """Keys already used: a replay returns the original entry, anything else is refused."""
    if not pending:
        return
    rows = await conn.execute(
        sql(
            "SELECT id, idempotency_key, request_hash, kind, points, member_id, partner_id"
            " FROM ledger_entry WHERE client_id = :client_id"
            " AND idempotency_key = ANY(CAST(:keys AS text[]))"
        ),
        {"client_id": client_id, "keys": list(pending)},
    )
    for row in rows:
        entry = pending.pop(row.idempotency_key)
        if row.kind != EntryKind.EARN or bytes(row.request_hash) != entry.digest:
            outcomes[entry.index] = _reused(entry.index)
            continue
        outcomes[entry.index] = EntryResult(
            entry_id=int(row.id),
            kind=EntryKind.EARN,
            points=int(row.points),
            member_id=row.member_id,
            partner_id=row.partner_id,
            wallet_balance=None,
            replayed=True,
        )


def _check_expiry(
    issued: Any, pending: dict[str, _Pending], outcomes: list[Outcome | None], now: datetime
) -> None:
    lifetime = timedelta(days=int(issued.points_lifetime_days or DEFAULT_POINTS_LIFETIME_DAYS))
    for key, entry in list(pending.items()):
        expires_at = entry.item.expires_at or now + lifetime
        if expires_at <= now:
            outcomes[entry.index] = InvalidInput(
                "expiresAt must be in the future", field=["items", str(entry.index), "expiresAt"]
            )
            del pending[key]
        else:
            entry.expires_at = expires_at


async def _check_members(
    conn: AsyncConnection, pending: dict[str, _Pending], outcomes: list[Outcome | None]
) -> None:
    member_ids = sorted({entry.item.member_id for entry in pending.values()})
    rows = await conn.execute(
        sql(
            "SELECT member_id FROM ledger_account"
            " WHERE kind = 'MEMBER_WALLET' AND member_id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": member_ids},
    )
    known = {int(member_id) for member_id in rows.scalars()}
    for key, entry in list(pending.items()):
        if entry.item.member_id not in known:
            outcomes[entry.index] = NotFound(
                f"member {entry.item.member_id} does not exist",
                field=["items", str(entry.index), "memberRef"],
            )
            del pending[key]


async def _check_credit_limit(
    conn: AsyncConnection,
    partner_id: int,
    limit: int,
    pending: dict[str, _Pending],
    outcomes: list[Outcome | None],
) -> None:
    """Items are accepted in order while the partner stays within its limit."""
    await repository.lock_partner_issuance(conn, partner_id=partner_id)
    outstanding = await repository.outstanding_points(conn, issuer_partner_id=partner_id)
    for key, entry in list(pending.items()):
        if outstanding + entry.item.points > limit:
            outcomes[entry.index] = LimitExceeded(
                f"issuing {entry.item.points} points would exceed the partner's credit limit"
                f" of {limit} outstanding points ({outstanding} outstanding now)",
                field=["items", str(entry.index), "points"],
            )
            del pending[key]
        else:
            outstanding += entry.item.points


async def _write(
    conn: AsyncConnection,
    client_id: str,
    partner_id: int,
    issued_account_id: int,
    pending: dict[str, _Pending],
    outcomes: list[Outcome | None],
    now: datetime,
) -> None:
    entries = list(pending.values())
    inserted = await conn.execute(
        sql(
            """
            INSERT INTO ledger_entry (kind, partner_id, member_id, points, client_id,
                idempotency_key, request_hash, reference, created_at, effective_at, metadata)
            SELECT 'EARN', :partner_id, item.member_id, item.points, :client_id, item.key,
                item.digest, item.reference, :now, :now, '{}'::jsonb
            FROM unnest(CAST(:members AS bigint[]), CAST(:points AS bigint[]),
                CAST(:keys AS text[]), CAST(:digests AS bytea[]), CAST(:references AS text[]))
                AS item(member_id, points, key, digest, reference)
            ON CONFLICT (client_id, idempotency_key) DO NOTHING
            RETURNING id, idempotency_key
            """
        ),
        {
            "partner_id": partner_id,
            "client_id": client_id,
            "now": now,
            "members": [e.item.member_id for e in entries],
            "points": [e.item.points for e in entries],
            "keys": [e.item.idempotency_key for e in entries],
            "digests": [e.digest for e in entries],
            "references": [e.item.reference for e in entries],
        },
    )
    entry_ids = {row.idempotency_key: int(row.id) for row in inserted}
    if len(entry_ids) < len(entries):
        # A concurrent request committed one of these keys after the first look: decide
        # those items as replays or reuses now, and write the rest.
        raced = {key: entry for key, entry in pending.items() if key not in entry_ids}
        await _settle_known_keys(conn, client_id, raced, outcomes)
        entries = [entry for entry in entries if entry.item.idempotency_key in entry_ids]
        if not entries:
            return

    by_member: dict[int, int] = {}
    for entry in entries:
        by_member[entry.item.member_id] = by_member.get(entry.item.member_id, 0) + entry.item.points
    member_ids = sorted(by_member)
    await conn.execute(
        sql(
            "SELECT id FROM ledger_account WHERE kind = 'MEMBER_WALLET'"
            " AND member_id = ANY(CAST(:ids AS bigint[])) ORDER BY member_id FOR UPDATE"
        ),
        {"ids": member_ids},
    )
    wallets = await conn.execute(
        sql(
            """
            UPDATE ledger_account AS a SET balance = a.balance + d.points
            FROM unnest(CAST(:ids AS bigint[]), CAST(:points AS bigint[])) AS d(member_id, points)
            WHERE a.kind = 'MEMBER_WALLET' AND a.member_id = d.member_id
            RETURNING a.member_id, a.id, a.balance
            """
        ),
        {"ids": member_ids, "points": [by_member[m] for m in member_ids]},
    )
    wallet_of = {int(row.member_id): (int(row.id), int(row.balance)) for row in wallets}
    total = sum(entry.item.points for entry in entries)
    await repository.change_sharded_balance(conn, account_id=issued_account_id, points=-total)
    ids = [entry_ids[e.item.idempotency_key] for e in entries]
    await conn.execute(
        sql(
            """
            INSERT INTO ledger_posting (entry_id, account_id, amount)
            SELECT leg.entry_id, leg.account_id, leg.amount
            FROM unnest(CAST(:entries AS bigint[]), CAST(:accounts AS bigint[]),
                CAST(:amounts AS bigint[])) AS leg(entry_id, account_id, amount)
            """
        ),
        {
            "entries": ids + ids,
            "accounts": [wallet_of[e.item.member_id][0] for e in entries]
            + [issued_account_id] * len(entries),
            "amounts": [e.item.points for e in entries] + [-e.item.points for e in entries],
        },
    )
    await conn.execute(
        sql(
            """
            INSERT INTO ledger_lot (member_id, issuer_partner_id, origin, entry_id, amount,
                remaining, earned_at, expires_at)
            SELECT lot.member_id, :partner_id, 'EARN', lot.entry_id, lot.amount, lot.amount,
                :now, lot.expires_at
            FROM unnest(CAST(:members AS bigint[]), CAST(:entries AS bigint[]),
                CAST(:amounts AS bigint[]), CAST(:expiries AS timestamptz[]))
                AS lot(member_id, entry_id, amount, expires_at)
            """
        ),
        {
            "partner_id": partner_id,
            "now": now,
            "members": [e.item.member_id for e in entries],
            "entries": ids,
            "amounts": [e.item.points for e in entries],
            "expiries": [e.expires_at for e in entries],
        },
    )
    # Each item's wallet balance right after it: the final balance less what later items
    # in this batch added to the same wallet.
    later: dict[int, int] = {}
    for entry, entry_id in reversed(list(zip(entries, ids, strict=True))):
        member_id = entry.item.member_id
        outcomes[entry.index] = EntryResult(
            entry_id=entry_id,
            kind=EntryKind.EARN,
            points=entry.item.points,
            member_id=member_id,
            partner_id=partner_id,
            wallet_balance=wallet_of[member_id][1] - later.get(member_id, 0),
        )
        later[member_id] = later.get(member_id, 0) + entry.item.points
