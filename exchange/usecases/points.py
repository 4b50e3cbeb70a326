"""Moving points: what partner apps and members ask of the ledger, addressed the way the
caller knows the member (a partner by its own member ref, a member by its token, a
recipient by contact). Each use case resolves the address, builds the ledger's request
and calls one ledger operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from exchange import ledger
from exchange.kit import limits
from exchange.kit.db import grant
from exchange.kit.errors import DomainError, InvalidInput, Kind, NotFound, Ref
from exchange.kit.invariant import present
from exchange.kit.units import positive_points
from exchange.ledger.errors import LimitExceeded
from exchange.ledger.idempotency import reused
from exchange.ledger.models import Hold, HoldStatus
from exchange.ledger.requests import checked_key, checked_reference
from exchange.limits import Limit
from exchange.limits import room as limit_room
from exchange.limits import spend as limit_spend
from exchange.usecases.addressed import for_members
from exchange.usecases.core import Call, use_case
from partners import identity


@dataclass(frozen=True)
class EarnPoints:
    idempotency_key: str
    member_ref: str
    points: int
    reference: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class RedeemPoints:
    idempotency_key: str
    member_ref: str
    points: int
    reference: str | None = None


@dataclass(frozen=True)
class HoldPoints:
    idempotency_key: str
    member_ref: str
    points: int
    ttl_seconds: int = 900
    reference: str | None = None


@dataclass(frozen=True)
class TransferPoints:
    """A gift, checked whole when made: a bad value found only after the recipient was
    looked up would tell that the recipient exists."""

    idempotency_key: str
    points: int
    to_email: str | None = None
    to_phone: str | None = None
    reference: str | None = None
    recipient: identity.Contact = field(init=False)

    def __post_init__(self) -> None:
        checked_key(self.idempotency_key)
        object.__setattr__(self, "points", positive_points(self.points))
        checked_reference(self.reference)
        contact = identity.contact(self.to_email, self.to_phone, field_prefix="to")
        object.__setattr__(self, "recipient", contact)


#: A member's failed recipient look-ups (no member has that e-mail or phone): at most
#: MAX_FAILED_RECIPIENT_LOOKUPS in any window, one back per window (docs/decisions/0013).
FAILED_LOOKUPS = Limit(
    "failed-lookups",
    capacity=limits.MAX_FAILED_RECIPIENT_LOOKUPS,
    refill_points=1,
    refill_seconds=limits.FAILED_LOOKUP_WINDOW_SECONDS,
    lease_points=1,
)


@dataclass(frozen=True)
class Held:
    """A hold and the entry that opened or closed it."""

    result: ledger.EntryResult
    hold: Hold


def _earn_request(item: EarnPoints, member_id: int) -> ledger.EarnRequest:
    return ledger.EarnRequest(
        idempotency_key=item.idempotency_key,
        member_id=member_id,
        points=item.points,
        reference=item.reference,
        expires_at=item.expires_at,
    )


LedgerRequest = TypeVar("LedgerRequest")
Write = Callable[[list[LedgerRequest]], Awaitable[list[ledger.Outcome | None]]]


def _written(call: Call, many: Callable[..., Awaitable[list[ledger.Outcome | None]]]) -> Write[Any]:
    """Requests of the calling partner written by one of the ledger's batch operations."""

    async def write(requests: list[Any]) -> list[ledger.Outcome | None]:
        return await many(
            call.conn, client_id=call.principal.client_id, partner_id=call.partner_id,
            requests=requests, now=call.now,
        )  # fmt: skip

    return write


async def _earn_all(
    call: Call, items: Sequence[EarnPoints], *, field_prefix: bool
) -> list[ledger.EntryResult | DomainError]:
    """Earns of one partner in one statement."""
    return await for_members(
        call, items, _earn_request, _written(call, ledger.earn_many), field_prefix=field_prefix
    )


async def _earn_many(
    call: Call, items: Sequence[EarnPoints]
) -> list[ledger.EntryResult | DomainError]:
    return await _earn_all(call, items, field_prefix=False)


@use_case(partner="points:earn", many=_earn_many)
async def earn_points(call: Call, item: EarnPoints) -> ledger.EntryResult:
    """Issue points to one of the partner's members."""
    member_id = await identity.resolve(
        call.conn, partner_id=call.partner_id, member_ref=item.member_ref
    )
    return await ledger.earn(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=_earn_request(item, member_id),
        now=call.now,
    )


@use_case(partner="points:earn")
async def earn_points_batch(
    call: Call, items: Sequence[EarnPoints]
) -> list[ledger.EntryResult | DomainError]:
    """Bulk issuance: up to 1,000 earns, each with its own key and its own outcome."""
    if not 1 <= len(items) <= ledger.MAX_BATCH:
        raise InvalidInput(f"a batch holds 1 to {ledger.MAX_BATCH} items", field=["items"])
    return await _earn_all(call, items, field_prefix=True)


def _redeem_request(item: RedeemPoints, member_id: int) -> ledger.RedeemRequest:
    return ledger.RedeemRequest(
        idempotency_key=item.idempotency_key,
        member_id=member_id,
        points=item.points,
        reference=item.reference,
    )


async def _redeem_many(
    call: Call, items: Sequence[RedeemPoints]
) -> list[ledger.EntryResult | DomainError]:
    """Redemptions of one partner in one statement (wallets locked in member order, lots
    taken oldest expiry first, a member's second redemption planned after its first)."""
    return await for_members(call, items, _redeem_request, _written(call, ledger.redeem_many))


@use_case(partner="points:redeem", many=_redeem_many, batch_from=2)
async def redeem_points(call: Call, item: RedeemPoints) -> ledger.EntryResult:
    """Spend a member's points at the partner."""
    member_id = await identity.resolve(
        call.conn, partner_id=call.partner_id, member_ref=item.member_ref
    )
    return await ledger.redeem(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=_redeem_request(item, member_id),
        now=call.now,
    )


def _hold_request(item: HoldPoints, member_id: int) -> ledger.HoldRequest:
    return ledger.HoldRequest(
        idempotency_key=item.idempotency_key,
        member_id=member_id,
        points=item.points,
        ttl_seconds=item.ttl_seconds,
        reference=item.reference,
    )


async def _held(call: Call, ttl_seconds: int, result: ledger.EntryResult) -> Held:
    """The hold an entry opened (a replay: as it is now)."""
    hold_id = present(result.hold_id, "a hold entry names its hold")
    if result.replayed:
        return Held(result, await _hold(call, hold_id))
    created = result.entry.created_at
    hold = Hold(
        id=hold_id,
        member_id=present(result.entry.member_id, "a hold entry names its member"),
        partner_id=call.partner_id,
        points=result.points,
        captured_points=0,
        status=HoldStatus.ACTIVE,
        created_at=created,
        expires_at=created + timedelta(seconds=ttl_seconds),
    )
    return Held(result, hold)


async def _hold_many(call: Call, items: Sequence[HoldPoints]) -> list[Held | DomainError]:
    """Holds of one partner in one statement, as redemptions are."""
    outcomes = await for_members(call, items, _hold_request, _written(call, ledger.hold_many))
    return [
        outcome if isinstance(outcome, DomainError)
        else await _held(call, item.ttl_seconds, outcome)
        for item, outcome in zip(items, outcomes, strict=True)
    ]  # fmt: skip


@use_case(partner="points:redeem", many=_hold_many, batch_from=2)
async def hold_points(call: Call, item: HoldPoints) -> Held:
    """Reserve a member's points for a pending purchase."""
    member_id = await identity.resolve(
        call.conn, partner_id=call.partner_id, member_ref=item.member_ref
    )
    result = await ledger.hold(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=_hold_request(item, member_id),
        now=call.now,
    )
    return await _held(call, item.ttl_seconds, result)


async def _hold(call: Call, hold_id: int) -> Hold:
    found = await ledger.get_hold(call.conn, hold_id=hold_id)
    if found is None:
        raise NotFound(
            "hold {hold} does not exist", field=["holdId"], refs={"hold": Ref(Kind.HOLD, hold_id)}
        )
    return found


@use_case(partner="points:redeem")
async def capture_hold(call: Call, request: ledger.CaptureRequest) -> ledger.EntryResult:
    """Redeem all of a hold or part of it; the rest goes back to the wallet."""
    return await ledger.capture(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=request,
        now=call.now,
    )


@use_case(partner="points:redeem")
async def release_hold(call: Call, hold_id: int) -> Held:
    """Give a hold's points back to the wallet."""
    result = await ledger.release(
        call.conn, partner_id=call.partner_id, hold_id=hold_id, now=call.now
    )
    return Held(result, await _hold(call, hold_id))


@use_case(partner="points:reverse")
async def reverse_transaction(call: Call, request: ledger.ReverseRequest) -> ledger.EntryResult:
    """Undo all or part of an earn or a redemption of the partner."""
    return await ledger.reverse(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=request,
        now=call.now,
    )


@use_case(member="wallet:transfer")
async def transfer_points(call: Call, item: TransferPoints) -> ledger.EntryResult:
    """A member gifts points to another member, named by e-mail or phone.

    Whether a contact belongs to a member is not for the sender to learn by trying
    (docs/decisions/0013): the sender's balance is checked first, and a sender over its
    limit of failed look-ups is refused before any look-up, whoever it names. A failed
    look-up is counted, and the count commits with the refusal. A key used before is
    decided by its earlier use whoever the contact names (replay or
    IDEMPOTENCY_KEY_REUSED), with nothing checked or counted first.

    Any member may receive a gift, so once the recipient is found the transaction is
    granted the recipient's wallet (to credit it) and new lots, nothing else of theirs."""
    sender = call.principal.require_member()
    client_id = call.key_owner
    contact = item.recipient
    lookups = f"member:{sender}"
    used = await ledger.entries_by_keys(call.conn, client_id=client_id, keys=[item.idempotency_key])
    if not used:
        await ledger.require_spendable(
            call.conn, member_id=sender, points=item.points, now=call.now
        )
        if await limit_room(call.conn, FAILED_LOOKUPS, lookups) < 1:
            raise _too_many_lookups(contact)
    recipient = await identity.member_with(call.conn, keys=call.keys, contact=contact)
    if recipient is None:
        if used:  # the key's earlier use named a member, so this is another request
            raise reused()
        counted = await limit_spend(call.conn, FAILED_LOOKUPS, lookups, 1, member_id=sender)
        if not counted.allowed:
            raise _too_many_lookups(contact, commit=True)
        raise NotFound("no coalition member has that contact", field=[contact.field], commit=True)
    await grant(call.conn, members=[recipient])
    request = ledger.TransferRequest(
        idempotency_key=item.idempotency_key,
        from_member_id=sender,
        to_member_id=recipient,
        points=item.points,
        reference=item.reference,
    )
    return await ledger.transfer(call.conn, client_id=client_id, request=request, now=call.now)


def _too_many_lookups(contact: identity.Contact, *, commit: bool = False) -> LimitExceeded:
    return LimitExceeded(
        f"too many transfers to unknown recipients: at most {limits.MAX_FAILED_RECIPIENT_LOOKUPS}"
        " a day; try again later",
        field=[contact.field],
        commit=commit,
    )
