"""The ledger's operations. Each takes the unit of work's connection and keyword-only
domain arguments, checks its preconditions, writes one balanced entry (plus, at most,
an inline expiry entry) and returns an :class:`EntryResult`. Nothing here commits.

Sign convention: a posting's amount is the signed change of its account's balance.
Wallets and the held account are positive; PARTNER_ISSUED runs negative (what the
partner has put into circulation); PARTNER_REDEEMED and COALITION_BREAKAGE positive.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.clock import require_aware
from exchange.kit.errors import InvalidInput, NotFound
from exchange.kit.invariant import invariant
from exchange.kit.units import positive_points
from exchange.ledger import repository
from exchange.ledger.errors import InsufficientPoints, LimitExceeded
from exchange.ledger.idempotency import (
    Started,
    begin_entry,
    check_key,
    encode_metadata,
    find_replay,
    request_hash,
)
from exchange.ledger.models import (
    DEFAULT_POINTS_LIFETIME_DAYS,
    MAX_REFERENCE_LENGTH,
    AccountKind,
    ConsumptionKind,
    EntryKind,
    EntryResult,
    LotAllocation,
    LotOrigin,
    PartnerPolicy,
)

# --- accounts -------------------------------------------------------------------------


async def open_partner(
    conn: AsyncConnection, *, partner_id: int, policy: PartnerPolicy | None = None
) -> None:
    """Open a partner's issued and redeemed accounts (idempotent)."""
    await repository.open_partner_accounts(
        conn, partner_id=partner_id, policy=policy or PartnerPolicy()
    )


async def set_partner_policy(
    conn: AsyncConnection, *, partner_id: int, policy: PartnerPolicy
) -> None:
    if not await repository.set_partner_policy(conn, partner_id=partner_id, policy=policy):
        raise NotFound(f"partner {partner_id} has no ledger accounts", field=["partnerId"])


async def open_member(conn: AsyncConnection) -> int:
    """Open a new member's wallet and held accounts; returns the member id."""
    return await repository.open_member(conn)


# --- shared steps ---------------------------------------------------------------------


def check_reference(reference: str | None) -> None:
    if reference is not None and len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidInput(
            f"reference must be at most {MAX_REFERENCE_LENGTH} characters", field=["reference"]
        )


async def partner_account(conn: AsyncConnection, partner_id: int, kind: AccountKind) -> Row[Any]:
    account = await repository.partner_account(conn, partner_id=partner_id, kind=kind)
    if account is None:
        raise NotFound(f"partner {partner_id} is not known to the ledger", field=["partnerId"])
    return account


async def missing_member_or_short(conn: AsyncConnection, member_id: int) -> Exception:
    if not await repository.member_exists(conn, member_id=member_id):
        return NotFound(f"member {member_id} does not exist", field=["memberId"])
    return InsufficientPoints("the wallet does not hold enough points", field=["points"])


async def replayed(conn: AsyncConnection, started: Started) -> EntryResult:
    entry = started.replay
    invariant(entry is not None, "only replays are rebuilt")
    assert entry is not None
    balances = (
        await repository.member_balances(conn, member_id=entry.member_id)
        if entry.member_id is not None
        else {}
    )
    hold_id = entry.hold_id
    if entry.kind == EntryKind.HOLD:
        hold = await repository.hold_by_entry(conn, hold_entry_id=entry.id)
        hold_id = hold.id if hold is not None else None
    return EntryResult(
        entry_id=int(entry.id),
        kind=EntryKind(entry.kind),
        points=int(entry.points),
        member_id=entry.member_id,
        partner_id=entry.partner_id,
        wallet_balance=balances.get(AccountKind.MEMBER_WALLET),
        replayed=True,
        hold_id=hold_id,
    )


async def expire_member_lots(
    conn: AsyncConnection,
    *,
    member_id: int,
    lots: list[Row[Any]],
    now: datetime,
    defer_breakage: bool = False,
) -> int:
    """Sweep a member's expired lots into breakage as one EXPIRY entry. The caller holds
    the wallet lock. Returns the points expired. With ``defer_breakage`` the caller adds
    them to the breakage account itself (once per batch, after every wallet it locks)."""
    allocations = repository.allocate(lots, sum(int(lot.remaining) for lot in lots))
    points = sum(a.points for a in allocations)
    if points == 0:
        return 0
    started = await begin_entry(
        conn,
        kind=EntryKind.EXPIRY,
        client_id=None,
        idempotency_key=None,
        request={},
        points=points,
        created_at=now,
        effective_at=now,
        member_id=member_id,
    )
    await repository.record_consumptions(
        conn, entry_id=started.entry_id, kind=ConsumptionKind.EXPIRY, allocations=allocations
    )
    wallet = await repository.credit_wallet(conn, member_id=member_id, points=-points)
    invariant(wallet is not None, "the wallet of a member with lots exists")
    assert wallet is not None
    breakage = await repository.coalition_account_id(conn, kind=AccountKind.COALITION_BREAKAGE)
    if not defer_breakage:
        await repository.change_sharded_balance(conn, account_id=breakage, points=points)
    await repository.insert_postings(
        conn, entry_id=started.entry_id, legs=[(wallet.id, -points), (breakage, points)]
    )
    return points


async def spend(
    conn: AsyncConnection,
    *,
    entry_id: int,
    member_id: int,
    points: int,
    now: datetime,
    kind: ConsumptionKind,
    redeemer_partner_id: int | None = None,
    hold_id: int | None = None,
    debited: tuple[int, int] | None = None,
) -> tuple[int, int, list[LotAllocation]]:
    """Take ``points`` from a wallet, consuming lots oldest expiry first.

    Returns (wallet account id, wallet balance after, allocations). Expired lots found
    on the way are swept first, in their own EXPIRY entry. ``debited``: the caller has
    already debited the wallet (its id and balance after).
    """
    if debited is None:
        wallet = await repository.debit_wallet(conn, member_id=member_id, points=points)
        if wallet is None:
            raise await missing_member_or_short(conn, member_id)
        debited = int(wallet.id), int(wallet.balance)
    wallet_id, balance = debited
    live, expired = await repository.spendable_lots(
        conn, member_id=member_id, points=points, now=now
    )
    if expired:
        balance -= await expire_member_lots(conn, member_id=member_id, lots=expired, now=now)
    allocations = repository.allocate(live, points)
    if balance < 0 or sum(a.points for a in allocations) < points:
        raise InsufficientPoints("the wallet does not hold enough points", field=["points"])
    await repository.record_consumptions(
        conn,
        entry_id=entry_id,
        kind=kind,
        allocations=allocations,
        redeemer_partner_id=redeemer_partner_id,
        hold_id=hold_id,
    )
    return wallet_id, balance, allocations


# --- earn and redeem ------------------------------------------------------------------


def earn_request(
    *,
    partner_id: int,
    member_id: int,
    points: int,
    reference: str | None,
    expires_at: datetime | None,
    effective_at: datetime | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """An earn as the caller gave it, for its idempotency hash. Single and batch earns
    share it, so a key used by either replays in both; nothing derived from the clock
    goes in, so a later replay hashes the same."""
    return {
        "partner": partner_id,
        "member": member_id,
        "points": points,
        "reference": reference,
        "expires_at": require_aware(expires_at, "expiresAt").isoformat() if expires_at else None,
        "effective_at": require_aware(effective_at, "effectiveAt").isoformat()
        if effective_at
        else None,
        "metadata": metadata,
    }


async def earn(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    partner_id: int,
    member_id: int,
    points: int,
    now: datetime,
    reference: str | None = None,
    expires_at: datetime | None = None,
    effective_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
) -> EntryResult:
    """Issue points: PARTNER_ISSUED -n, member wallet +n, and a new lot."""
    points = positive_points(points)
    check_key(client_id, idempotency_key)
    check_reference(reference)
    request = earn_request(
        partner_id=partner_id,
        member_id=member_id,
        points=points,
        reference=reference,
        expires_at=expires_at,
        effective_at=effective_at,
        metadata=metadata,
    )
    effective_at = require_aware(effective_at or now, "effectiveAt")
    written = await repository.earn_at_once(
        conn,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash(EntryKind.EARN, request),
        partner_id=partner_id,
        member_id=member_id,
        points=points,
        reference=reference,
        metadata=encode_metadata(metadata),
        now=now,
        effective_at=effective_at,
        expires_at=expires_at,
    )
    if written is not None:  # the common case, in one round trip
        entry_id, balance = written
        return EntryResult(
            entry_id=entry_id,
            kind=EntryKind.EARN,
            points=points,
            member_id=member_id,
            partner_id=partner_id,
            wallet_balance=balance,
        )
    # Everything else step by step: a replay or a reused key, a partner with a credit
    # limit, an unknown partner or member, an expiry not in the future.
    issued = await partner_account(conn, partner_id, AccountKind.PARTNER_ISSUED)
    earlier = await find_replay(
        conn,
        kind=EntryKind.EARN,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request=request,
    )
    if earlier is not None:
        return await replayed(conn, earlier)
    if expires_at is None:
        expires_at = effective_at + timedelta(
            days=int(issued.points_lifetime_days or DEFAULT_POINTS_LIFETIME_DAYS)
        )
    expires_at = require_aware(expires_at, "expiresAt")
    if expires_at <= max(now, effective_at):
        raise InvalidInput("expiresAt must be in the future", field=["expiresAt"])
    started = await begin_entry(
        conn,
        kind=EntryKind.EARN,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request=request,
        points=points,
        created_at=now,
        effective_at=effective_at,
        partner_id=partner_id,
        member_id=member_id,
        reference=reference,
        metadata=metadata,
    )
    if started.replay is not None:
        return await replayed(conn, started)
    if issued.credit_limit_points is not None:
        await _check_credit_limit(conn, partner_id, int(issued.credit_limit_points), points)
    wallet = await repository.credit_wallet(conn, member_id=member_id, points=points)
    if wallet is None:
        raise NotFound(f"member {member_id} does not exist", field=["memberId"])
    await repository.change_sharded_balance(conn, account_id=issued.id, points=-points)
    await repository.insert_postings(
        conn, entry_id=started.entry_id, legs=[(wallet.id, points), (issued.id, -points)]
    )
    await repository.insert_lot(
        conn,
        member_id=member_id,
        issuer_partner_id=partner_id,
        origin=LotOrigin.EARN,
        entry_id=started.entry_id,
        amount=points,
        earned_at=effective_at,
        expires_at=expires_at,
    )
    return EntryResult(
        entry_id=started.entry_id,
        kind=EntryKind.EARN,
        points=points,
        member_id=member_id,
        partner_id=partner_id,
        wallet_balance=int(wallet.balance),
    )


async def _check_credit_limit(
    conn: AsyncConnection, partner_id: int, limit: int, points: int
) -> None:
    await repository.lock_partner_issuance(conn, partner_id=partner_id)
    outstanding = await repository.outstanding_points(conn, issuer_partner_id=partner_id)
    if outstanding + points > limit:
        raise LimitExceeded(
            f"issuing {points} points would exceed the partner's credit limit of {limit}"
            f" outstanding points ({outstanding} outstanding now)",
            field=["points"],
        )


async def redeem(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    partner_id: int,
    member_id: int,
    points: int,
    now: datetime,
    reference: str | None = None,
    effective_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
) -> EntryResult:
    """Spend points at a partner: wallet -n, PARTNER_REDEEMED +n; lots consumed."""
    points = positive_points(points)
    check_key(client_id, idempotency_key)
    check_reference(reference)
    request = {  # as given: nothing derived from the clock, so a later replay matches
        "partner": partner_id,
        "member": member_id,
        "points": points,
        "reference": reference,
        "effective_at": require_aware(effective_at, "effectiveAt").isoformat()
        if effective_at
        else None,
        "metadata": metadata,
    }
    effective_at = require_aware(effective_at or now, "effectiveAt")
    begun = await repository.begin_redeem(
        conn,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash(EntryKind.REDEEM, request),
        partner_id=partner_id,
        member_id=member_id,
        points=points,
        reference=reference,
        metadata=encode_metadata(metadata),
        now=now,
        effective_at=effective_at,
    )
    if begun.account_id is None:
        raise NotFound(f"partner {partner_id} is not known to the ledger", field=["partnerId"])
    debited: tuple[int, int] | None = None
    if begun.entry_id is not None:  # the common case: entry and debit in one round trip
        if begun.wallet_id is None:
            raise await missing_member_or_short(conn, member_id)
        entry_id, debited = int(begun.entry_id), (int(begun.wallet_id), int(begun.balance))
    else:  # the key is known: a replay, a reuse, or a request that has since rolled back
        started = await begin_entry(
            conn,
            kind=EntryKind.REDEEM,
            client_id=client_id,
            idempotency_key=idempotency_key,
            request=request,
            points=points,
            created_at=now,
            effective_at=effective_at,
            partner_id=partner_id,
            member_id=member_id,
            reference=reference,
            metadata=metadata,
        )
        if started.replay is not None:
            return await replayed(conn, started)
        entry_id = started.entry_id
    wallet_id, balance, _ = await spend(
        conn,
        entry_id=entry_id,
        member_id=member_id,
        points=points,
        now=now,
        kind=ConsumptionKind.REDEEM,
        redeemer_partner_id=partner_id,
        debited=debited,
    )
    redeemed = int(begun.account_id)
    await repository.change_sharded_balance(conn, account_id=redeemed, points=points)
    await repository.insert_postings(
        conn, entry_id=entry_id, legs=[(wallet_id, -points), (redeemed, points)]
    )
    return EntryResult(
        entry_id=entry_id,
        kind=EntryKind.REDEEM,
        points=points,
        member_id=member_id,
        partner_id=partner_id,
        wallet_balance=balance,
    )
