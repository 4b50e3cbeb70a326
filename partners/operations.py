"""The use cases the API calls, each given the caller's :class:`Principal`.

Each checks the scope it needs, turns the partner's own member refs into coalition
members (a partner never addresses a member any other way), and calls one ledger or
identity operation. Nothing here knows about GraphQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange import ledger
from exchange.kit.errors import DomainError, Forbidden, InvalidInput, NotFound
from exchange.ledger import queries
from exchange.ledger.models import (
    AccountKind,
    EntryKind,
    EntryResult,
    ExpiringPoints,
    Hold,
    Wallet,
)
from exchange.ledger.queries import AccountView, EntryView
from partners import crypto, identity, repository
from partners.errors import MemberNotLinked
from partners.identity import IdentityKeys, LinkResult
from partners.principal import Principal, PrincipalKind


async def link_member(
    conn: AsyncConnection,
    principal: Principal,
    *,
    keys: IdentityKeys,
    member_ref: str,
    email: str | None,
    phone: str | None,
    now: datetime,
) -> LinkResult:
    principal.require("members:link")
    return await identity.link_member(
        conn,
        keys=keys,
        partner_id=principal.require_partner(),
        member_ref=member_ref,
        email=email,
        phone=phone,
        now=now,
    )


async def member_of_ref(conn: AsyncConnection, principal: Principal, member_ref: str) -> int:
    """The member behind one of the calling partner's refs."""
    return await identity.resolve(
        conn, partner_id=principal.require_partner(), member_ref=member_ref
    )


async def member_wallet_of_ref(
    conn: AsyncConnection, principal: Principal, member_ref: str
) -> tuple[int, Wallet]:
    """The member behind one of the calling partner's refs, with its wallet, in one unit
    of work: resolving the ref proves the link that reading a wallet asks for."""
    principal.require("members:read")
    member_id = await member_of_ref(conn, principal, member_ref)
    return member_id, await ledger.wallet(conn, member_id=member_id)


async def earn_points(
    conn: AsyncConnection,
    principal: Principal,
    *,
    idempotency_key: str,
    member_ref: str,
    points: int,
    now: datetime,
    reference: str | None = None,
    expires_at: datetime | None = None,
) -> EntryResult:
    principal.require("points:earn")
    member_id = await member_of_ref(conn, principal, member_ref)
    return await ledger.earn(
        conn,
        client_id=principal.client_id,
        idempotency_key=idempotency_key,
        partner_id=principal.require_partner(),
        member_id=member_id,
        points=points,
        now=now,
        reference=reference,
        expires_at=expires_at,
    )


@dataclass(frozen=True)
class BatchEarn:
    """One item of a bulk issuance, as the partner gives it."""

    idempotency_key: str
    member_ref: str
    points: int
    reference: str | None = None
    expires_at: datetime | None = None


async def earn_item(
    conn: AsyncConnection, principal: Principal, item: BatchEarn, *, now: datetime
) -> EntryResult:
    """One earn given as a batch item (a micro-batched request that runs on its own)."""
    return await earn_points(
        conn,
        principal,
        idempotency_key=item.idempotency_key,
        member_ref=item.member_ref,
        points=item.points,
        now=now,
        reference=item.reference,
        expires_at=item.expires_at,
    )


async def earn_points_batch(
    conn: AsyncConnection, principal: Principal, *, items: list[BatchEarn], now: datetime
) -> list[EntryResult | DomainError]:
    """Bulk issuance: one outcome per item, in order (see :func:`ledger.earn_batch`)."""
    principal.require("points:earn")
    partner_id = principal.require_partner()
    if len(items) > ledger.MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {ledger.MAX_BATCH} items", field=["items"])
    members = await identity.resolve_many(
        conn, partner_id=partner_id, member_refs=[item.member_ref for item in items]
    )
    resolved: list[ledger.EarnItem | DomainError] = []
    for index, item in enumerate(items):
        member_id = members.get(item.member_ref)
        if member_id is None:
            resolved.append(
                MemberNotLinked(
                    f"no member is linked to memberRef {item.member_ref!r}",
                    field=["items", str(index), "memberRef"],
                )
            )
            continue
        resolved.append(
            ledger.EarnItem(
                idempotency_key=item.idempotency_key,
                member_id=member_id,
                points=item.points,
                reference=item.reference,
                expires_at=item.expires_at,
            )
        )
    return await ledger.earn_batch(
        conn, client_id=principal.client_id, partner_id=partner_id, items=resolved, now=now
    )


async def redeem_points(
    conn: AsyncConnection,
    principal: Principal,
    *,
    idempotency_key: str,
    member_ref: str,
    points: int,
    now: datetime,
    reference: str | None = None,
) -> EntryResult:
    principal.require("points:redeem")
    member_id = await member_of_ref(conn, principal, member_ref)
    return await ledger.redeem(
        conn,
        client_id=principal.client_id,
        idempotency_key=idempotency_key,
        partner_id=principal.require_partner(),
        member_id=member_id,
        points=points,
        now=now,
        reference=reference,
    )


async def hold_points(
    conn: AsyncConnection,
    principal: Principal,
    *,
    idempotency_key: str,
    member_ref: str,
    points: int,
    now: datetime,
    ttl_seconds: int,
    reference: str | None = None,
) -> EntryResult:
    principal.require("points:redeem")
    member_id = await member_of_ref(conn, principal, member_ref)
    return await ledger.hold(
        conn,
        client_id=principal.client_id,
        idempotency_key=idempotency_key,
        partner_id=principal.require_partner(),
        member_id=member_id,
        points=points,
        now=now,
        ttl_seconds=ttl_seconds,
        reference=reference,
    )


async def capture_hold(
    conn: AsyncConnection,
    principal: Principal,
    *,
    idempotency_key: str,
    hold_id: int,
    now: datetime,
    points: int | None = None,
) -> EntryResult:
    principal.require("points:redeem")
    return await ledger.capture(
        conn,
        client_id=principal.client_id,
        idempotency_key=idempotency_key,
        partner_id=principal.require_partner(),
        hold_id=hold_id,
        points=points,
        now=now,
    )


async def release_hold(
    conn: AsyncConnection, principal: Principal, *, hold_id: int, now: datetime
) -> EntryResult:
    principal.require("points:redeem")
    return await ledger.release(
        conn, partner_id=principal.require_partner(), hold_id=hold_id, now=now
    )


async def reverse_transaction(
    conn: AsyncConnection,
    principal: Principal,
    *,
    idempotency_key: str,
    entry_id: int,
    now: datetime,
    points: int | None = None,
    reference: str | None = None,
) -> EntryResult:
    principal.require("points:reverse")
    return await ledger.reverse(
        conn,
        client_id=principal.client_id,
        idempotency_key=idempotency_key,
        partner_id=principal.require_partner(),
        entry_id=entry_id,
        points=points,
        now=now,
        reference=reference,
    )


async def transfer_points(
    conn: AsyncConnection,
    principal: Principal,
    *,
    keys: IdentityKeys,
    idempotency_key: str,
    points: int,
    now: datetime,
    to_email: str | None = None,
    to_phone: str | None = None,
    reference: str | None = None,
) -> EntryResult:
    """A member gifts points to another member, named by e-mail or phone."""
    principal.require("wallet:transfer")
    sender = principal.require_member()
    recipient = await _member_by_contact(conn, keys, to_email, to_phone)
    return await ledger.transfer(
        conn,
        client_id=principal.client_id,
        idempotency_key=idempotency_key,
        from_member_id=sender,
        to_member_id=recipient,
        points=points,
        now=now,
        reference=reference,
    )


async def _member_by_contact(
    conn: AsyncConnection, keys: IdentityKeys, email: str | None, phone: str | None
) -> int:
    if bool(email) == bool(phone):
        raise InvalidInput("give the recipient's email or phone (one of them)", field=["toEmail"])
    kind, value = (
        ("email", identity.normalize_email(email))
        if email
        else ("phone", identity.normalize_phone(phone or ""))
    )
    index = crypto.blind_index(keys.index_key, kind, value)
    matches = await repository.members_by_index(
        conn,
        email_index=index if kind == "email" else None,
        phone_index=index if kind == "phone" else None,
    )
    if not matches:
        field = "toEmail" if kind == "email" else "toPhone"
        raise NotFound("no coalition member has that contact", field=[field])
    return int(matches[0].member_id)


async def wallet_of(conn: AsyncConnection, principal: Principal, member_id: int) -> Wallet:
    await _may_read_member(conn, principal, member_id)
    return await ledger.wallet(conn, member_id=member_id)


async def expiring_of(
    conn: AsyncConnection,
    principal: Principal,
    member_id: int,
    *,
    within_days: int,
    now: datetime,
) -> list[ExpiringPoints]:
    await _may_read_member(conn, principal, member_id)
    return await ledger.expiring(conn, member_id=member_id, now=now, within_days=within_days)


async def _may_read_member(conn: AsyncConnection, principal: Principal, member_id: int) -> None:
    """A member reads its own wallet; a partner only the wallet of a member it linked."""
    if principal.kind == PrincipalKind.MEMBER:
        principal.require("wallet:read")
        if principal.member_id != member_id:
            raise Forbidden("a member can read only its own wallet")
    elif principal.kind == PrincipalKind.PARTNER:
        principal.require("members:read")
        linked = await repository.is_linked(
            conn, partner_id=principal.require_partner(), member_id=member_id
        )
        if not linked:
            raise NotFound("no such member", field=["memberId"])
    else:
        principal.require("ledger:read:all")


@dataclass(frozen=True)
class TransactionFilter:
    kinds: list[EntryKind] | None = None
    member_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reference: str | None = None


async def transactions(
    conn: AsyncConnection,
    principal: Principal,
    *,
    first: int,
    before_id: int | None,
    filter: TransactionFilter,
) -> list[EntryView]:
    """A page of the caller's own transactions (an operator's: everyone's)."""
    partner_id = member_id = None
    if principal.kind == PrincipalKind.PARTNER:
        principal.require("transactions:read")
        partner_id = principal.partner_id
        if filter.member_ref is not None:
            member_id = await member_of_ref(conn, principal, filter.member_ref)
    elif principal.kind == PrincipalKind.MEMBER:
        principal.require("wallet:read")
        member_id = principal.member_id
    else:
        principal.require("ledger:read:all")
    return await ledger.entries(
        conn,
        limit=first,
        before_id=before_id,
        partner_id=partner_id,
        member_id=member_id,
        kinds=filter.kinds,
        since=filter.since,
        until=filter.until,
        reference=filter.reference,
    )


async def member_transactions(
    conn: AsyncConnection,
    principal: Principal,
    *,
    member_id: int,
    first: int,
    before_id: int | None,
) -> list[EntryView]:
    """A member's history as the caller may see it: a partner sees only its own entries
    with that member, the member and an operator everything of the member."""
    await _may_read_member(conn, principal, member_id)
    partner_id = principal.partner_id if principal.kind == PrincipalKind.PARTNER else None
    return await ledger.entries(
        conn, limit=first, before_id=before_id, partner_id=partner_id, member_id=member_id
    )


async def hold_for(conn: AsyncConnection, principal: Principal, hold_id: int) -> Hold | None:
    found = await ledger.get_hold(conn, hold_id=hold_id)
    if found is None:
        return None
    if principal.kind == PrincipalKind.PARTNER and found.partner_id != principal.partner_id:
        return None
    if principal.kind == PrincipalKind.MEMBER and found.member_id != principal.member_id:
        return None
    return found


async def transaction_for(
    conn: AsyncConnection, principal: Principal, entry_id: int
) -> EntryView | None:
    return (await transactions_for(conn, principal, [entry_id])).get(entry_id)


async def transactions_for(
    conn: AsyncConnection, principal: Principal, entry_ids: list[int]
) -> dict[int, EntryView]:
    """Many entries at once, each only if the caller may see it."""
    found = await ledger.entries_by_ids(conn, entry_ids=entry_ids)
    return {
        entry_id: view
        for entry_id, view in found.items()
        if principal.kind != PrincipalKind.PARTNER or view.partner_id == principal.partner_id
        if principal.kind != PrincipalKind.MEMBER
        or principal.member_id in (view.member_id, view.counterparty_member_id)
    }


@dataclass(frozen=True)
class LinkedMember:
    member_ref: str
    member_id: int
    linked_at: datetime


async def linked_members(
    conn: AsyncConnection, principal: Principal, *, first: int, after_ref: str | None
) -> list[LinkedMember]:
    """The calling partner's own links, by ref; ``first`` + 1 rows to tell if more follow."""
    principal.require("members:read")
    rows = await repository.links_of_partner(
        conn, partner_id=principal.require_partner(), after_ref=after_ref, limit=first
    )
    return [LinkedMember(row.member_ref, int(row.member_id), row.created_at) for row in rows]


async def ledger_accounts(
    conn: AsyncConnection,
    principal: Principal,
    *,
    after_id: int,
    first: int,
    kind: AccountKind | None,
) -> list[AccountView]:
    """Every ledger account with its balance: the operator's view (ledger:read:all)."""
    if principal.kind != PrincipalKind.OPERATOR:
        raise Forbidden("ledger accounts are the operator's view")
    principal.require("ledger:read:all")
    return await queries.accounts(conn, after_id=after_id, limit=first, kind=kind)
