"""Members and what the caller may read of them: linking, a partner's members by its own
refs, wallets, expiring points, transaction history, holds.

Who reads what: a member reads its own wallet and history; a partner only members it
linked, and of their history only its own entries; an operator with ledger:read:all
everyone's. Row-level security enforces the same again underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from exchange import ledger
from exchange.kit import limits
from exchange.kit.clock import require_aware
from exchange.kit.errors import DomainError, Forbidden, InvalidInput, NotFound
from exchange.ledger.models import EntryKind, ExpiringPoints, Hold, Wallet
from exchange.usecases.core import Call, use_case
from partners import identity, repository
from partners.errors import MemberNotLinked
from partners.identity import LinkResult
from partners.principal import PrincipalKind

T = TypeVar("T")


@dataclass(frozen=True)
class LinkMember:
    member_ref: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class UnlinkMember:
    member_ref: str


@dataclass(frozen=True)
class UpdateMemberContact:
    member_ref: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class MemberByRef:
    member_ref: str
    #: Read the member's wallet in the same unit of work.
    with_wallet: bool = False


@dataclass(frozen=True)
class FoundMember:
    member_id: int
    wallet: Wallet | None


@dataclass(frozen=True)
class Expiring:
    member_id: int
    within_days: int
    #: At most this many (issuer, expiry) groups, soonest first.
    first: int = limits.MAX_EXPIRING_GROUPS


def in_filter(check: Callable[..., T], *args: Any, **keywords: Any) -> T:
    """``check(*args, **keywords)``; its INVALID_INPUT names the field under ``filter``."""
    try:
        return check(*args, **keywords)
    except InvalidInput as error:
        error.field = ["filter", *(error.field or [])]
        raise


def check_window_and_reference(narrowed: Any) -> None:
    """A filter's ``reference`` (a string a client sent) and its ``since``/``until``
    (aware times, kept in UTC), each INVALID_INPUT under ``filter`` otherwise; for the
    frozen filters of transactions and purchases."""
    in_filter(
        limits.optional_text,
        narrowed.reference,
        "reference",
        max_length=limits.MAX_REFERENCE_LENGTH,
    )
    for name in ("since", "until"):
        moment = getattr(narrowed, name)
        if moment is not None:
            object.__setattr__(narrowed, name, in_filter(require_aware, moment, name))


@dataclass(frozen=True)
class TransactionFilter:
    """What a page of transactions is narrowed to; checked when made (kit.limits)."""

    kinds: list[EntryKind] | None = None
    member_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.member_ref is not None:
            in_filter(identity.check_ref, self.member_ref)
        check_window_and_reference(self)


@dataclass(frozen=True)
class TransactionPage:
    """``first`` entries older than ``before_id``; of one member when ``member_id``."""

    first: int
    before_id: int | None = None
    filter: TransactionFilter = TransactionFilter()
    member_id: int | None = None


@dataclass(frozen=True)
class LinkedMember:
    member_ref: str
    member_id: int
    linked_at: datetime


@dataclass(frozen=True)
class LinkedPage:
    first: int
    after_ref: str | None = None

    def __post_init__(self) -> None:
        if self.after_ref is not None:
            limits.text(self.after_ref, "after", max_length=limits.MAX_MEMBER_REF_LENGTH)


@use_case(partner="members:link")
async def link_member(call: Call, request: LinkMember) -> LinkResult:
    """Link one of the partner's customer refs to a coalition member by e-mail or phone."""
    return await identity.link_member(
        call.conn,
        keys=call.keys,
        partner_id=call.partner_id,
        member_ref=request.member_ref,
        email=request.email,
        phone=request.phone,
        now=call.now,
    )


@use_case(partner="members:link")
async def unlink_member(call: Call, request: UnlinkMember) -> str:
    """Remove one of the partner's customer refs; the member and its wallet stay. Returns
    the ref."""
    await identity.unlink_member(
        call.conn, partner_id=call.partner_id, member_ref=request.member_ref
    )
    return request.member_ref


@use_case(partner="members:link")
async def update_member_contact(call: Call, request: UpdateMemberContact) -> int:
    """A linked member's new e-mail and/or phone (a customer who changed address); the
    member's id."""
    return await identity.update_contact(
        call.conn,
        keys=call.keys,
        partner_id=call.partner_id,
        member_ref=request.member_ref,
        email=request.email,
        phone=request.phone,
    )


@use_case(partner="members:read")
async def member_by_ref(call: Call, request: MemberByRef) -> FoundMember | None:
    """A member linked to the calling partner, by its own ref (and its wallet, read in
    the same unit of work: resolving the ref proves the link reading it asks for)."""
    try:
        member_id = await identity.resolve(
            call.conn, partner_id=call.partner_id, member_ref=request.member_ref
        )
    except MemberNotLinked:
        return None
    wallet = await ledger.wallet(call.conn, member_id=member_id) if request.with_wallet else None
    return FoundMember(member_id, wallet)


async def may_read_member(call: Call, member_id: int) -> None:
    """A member reads its own wallet; a partner only the wallet of a member it linked."""
    principal = call.principal
    if principal.kind == PrincipalKind.MEMBER:
        if principal.member_id != member_id:
            raise Forbidden("a member can read only its own wallet")
    elif principal.kind == PrincipalKind.PARTNER:
        linked = await repository.is_linked(
            call.conn, partner_id=call.partner_id, member_id=member_id
        )
        if not linked:
            raise NotFound("no such member", field=["memberId"])


@use_case(partner="members:read", member="wallet:read", operator="ledger:read:all")
async def wallet(call: Call, member_id: int) -> Wallet:
    """A member's combined wallet."""
    await may_read_member(call, member_id)
    return await ledger.wallet(call.conn, member_id=member_id)


@use_case(member="wallet:read")
async def own_wallet(call: Call, _: None) -> Wallet:
    """A member token's own wallet."""
    return await ledger.wallet(call.conn, member_id=call.principal.require_member())


@use_case(partner="members:read", member="wallet:read", operator="ledger:read:all")
async def expiring(call: Call, request: Expiring) -> list[ExpiringPoints]:
    """A member's points expiring within some days."""
    await may_read_member(call, request.member_id)
    return await ledger.expiring(
        call.conn,
        member_id=request.member_id,
        now=call.now,
        within_days=request.within_days,
        limit=request.first,
    )


@use_case(partner="members:read", member="wallet:read", operator="ledger:read:all")
async def member_transactions(call: Call, page: TransactionPage) -> list[ledger.EntryView]:
    """A member's history as the caller may see it: a partner sees only its own entries
    with that member, the member and an operator everything of the member."""
    member_id = page.member_id
    if member_id is None:
        raise NotFound("no member given", field=["memberId"])
    await may_read_member(call, member_id)
    principal = call.principal
    partner_id = principal.partner_id if principal.kind == PrincipalKind.PARTNER else None
    return await ledger.entries(
        call.conn,
        limit=page.first,
        before_id=page.before_id,
        partner_id=partner_id,
        member_id=member_id,
    )


@use_case(partner="transactions:read", member="wallet:read", operator="ledger:read:all")
async def transactions(call: Call, page: TransactionPage) -> list[ledger.EntryView]:
    """A page of the caller's own transactions (an operator's: everyone's)."""
    principal = call.principal
    partner_id = member_id = None
    wanted = page.filter
    if principal.kind == PrincipalKind.PARTNER:
        partner_id = principal.partner_id
        if wanted.member_ref is not None:
            member_id = await identity.resolve(
                call.conn, partner_id=call.partner_id, member_ref=wanted.member_ref
            )
    elif principal.kind == PrincipalKind.MEMBER:
        member_id = principal.member_id
    return await ledger.entries(
        call.conn,
        limit=page.first,
        before_id=page.before_id,
        partner_id=partner_id,
        member_id=member_id,
        kinds=wanted.kinds,
        since=wanted.since,
        until=wanted.until,
        reference=wanted.reference,
    )


@use_case(partner="members:read")
async def linked_members(call: Call, page: LinkedPage) -> list[LinkedMember]:
    """The calling partner's own links, by ref; ``first`` rows."""
    rows = await repository.links_of_partner(
        call.conn, partner_id=call.partner_id, after_ref=page.after_ref, limit=page.first
    )
    return [LinkedMember(row.member_ref, int(row.member_id), row.created_at) for row in rows]


def _visible(call: Call, view: ledger.EntryView) -> bool:
    principal = call.principal
    if principal.kind == PrincipalKind.PARTNER:
        return view.partner_id == principal.partner_id
    if principal.kind == PrincipalKind.MEMBER:
        return principal.member_id in (view.member_id, view.counterparty_member_id)
    return True


@use_case(partner="", operator="", member="")
async def transactions_by_ids(call: Call, entry_ids: list[int]) -> dict[int, ledger.EntryView]:
    """Entries by id, each only if the caller may see it."""
    found = await ledger.entries_by_ids(call.conn, entry_ids=entry_ids)
    return {entry_id: view for entry_id, view in found.items() if _visible(call, view)}


@use_case(partner="", operator="", member="")
async def hold_by_id(call: Call, hold_id: int) -> Hold | None:
    """A hold, if the caller may see it."""
    found = await ledger.get_hold(call.conn, hold_id=hold_id)
    principal = call.principal
    if found is None:
        return None
    if principal.kind == PrincipalKind.PARTNER and found.partner_id != principal.partner_id:
        return None
    if principal.kind == PrincipalKind.MEMBER and found.member_id != principal.member_id:
        return None
    return found


@use_case(partner="", operator="", member="")
async def member_by_id(call: Call, member_id: int) -> int | None:
    """A member, if the caller may read its wallet."""
    try:
        wallet.permit(call.principal)
        await may_read_member(call, member_id)
        await ledger.wallet(call.conn, member_id=member_id)
    except DomainError:
        return None
    return member_id


@dataclass(frozen=True)
class WalletWatch:
    watcher: str
    until: datetime | None = None


@use_case(member="wallet:read")
async def watch_wallet(call: Call, watch: WalletWatch) -> None:
    """Lease (or, without ``until``, end) live updates of the member's own wallet."""
    member_id = call.principal.require_member()
    if watch.until is None:
        await ledger.unwatch_wallet(call.conn, member_id=member_id, watcher=watch.watcher)
    else:
        await ledger.watch_wallet(
            call.conn, member_id=member_id, watcher=watch.watcher, until=watch.until
        )
