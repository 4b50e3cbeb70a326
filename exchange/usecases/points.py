"""Moving points: what partner apps and members ask of the ledger, addressed the way the
caller knows the member (a partner by its own member ref, a member by its token, a
recipient by contact). Each use case resolves the address, builds the ledger's request
and calls one ledger operation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange import ledger
from exchange.kit.db import grant
from exchange.kit.errors import DomainError, InvalidInput, Kind, NotFound, Ref
from exchange.kit.invariant import InvariantViolation, invariant, present
from exchange.ledger.models import Hold, HoldStatus
from exchange.usecases.core import Call, use_case
from partners import identity
from partners.errors import MemberNotLinked


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
    idempotency_key: str
    points: int
    to_email: str | None = None
    to_phone: str | None = None
    reference: str | None = None


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


async def _earn_all(
    call: Call, items: Sequence[EarnPoints], *, field_prefix: bool
) -> list[ledger.EntryResult | DomainError]:
    """Earns of one partner in one statement: refs resolved in one query, each item its
    own outcome (``field_prefix``: errors name ``items.<n>.<field>``)."""
    partner_id = call.partner_id
    members = await identity.resolve_many(
        call.conn, partner_id=partner_id, member_refs=[item.member_ref for item in items]
    )
    outcomes: dict[int, ledger.EntryResult | DomainError] = {}
    requests: list[ledger.EarnRequest] = []
    positions: list[int] = []
    for index, item in enumerate(items):
        try:
            member_id = members.get(identity.check_ref(item.member_ref))
            if member_id is None:
                raise MemberNotLinked(
                    f"no member is linked to memberRef {item.member_ref!r}", field=["memberRef"]
                )
            requests.append(_earn_request(item, member_id))
            positions.append(index)
        except DomainError as error:
            outcomes[index] = error
    if requests:
        written = await ledger.earn_many(
            call.conn,
            client_id=call.principal.client_id,
            partner_id=partner_id,
            requests=requests,
            now=call.now,
        )
        for index, outcome in zip(positions, written, strict=True):
            if outcome is None:  # (present() would widen the union to object)
                raise InvariantViolation("every earn has an outcome")
            outcomes[index] = outcome
    invariant(len(outcomes) == len(items), "every earn has an outcome")
    done: list[ledger.EntryResult | DomainError] = []
    for index in range(len(items)):
        result = outcomes[index]
        if isinstance(result, DomainError) and field_prefix:
            result.field = ["items", str(index), *(result.field or [])]
        done.append(result)
    return done


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


@use_case(partner="points:redeem")
async def redeem_points(call: Call, item: RedeemPoints) -> ledger.EntryResult:
    """Spend a member's points at the partner."""
    member_id = await identity.resolve(
        call.conn, partner_id=call.partner_id, member_ref=item.member_ref
    )
    request = ledger.RedeemRequest(
        idempotency_key=item.idempotency_key,
        member_id=member_id,
        points=item.points,
        reference=item.reference,
    )
    return await ledger.redeem(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=request,
        now=call.now,
    )


@use_case(partner="points:redeem")
async def hold_points(call: Call, item: HoldPoints) -> Held:
    """Reserve a member's points for a pending purchase."""
    member_id = await identity.resolve(
        call.conn, partner_id=call.partner_id, member_ref=item.member_ref
    )
    request = ledger.HoldRequest(
        idempotency_key=item.idempotency_key,
        member_id=member_id,
        points=item.points,
        ttl_seconds=item.ttl_seconds,
        reference=item.reference,
    )
    result = await ledger.hold(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=request,
        now=call.now,
    )
    hold_id = present(result.hold_id, "a hold entry names its hold")
    if result.replayed:
        return Held(result, await _hold(call, hold_id))
    created = result.entry.created_at
    hold = Hold(
        id=hold_id,
        member_id=member_id,
        partner_id=call.partner_id,
        points=result.points,
        captured_points=0,
        status=HoldStatus.ACTIVE,
        created_at=created,
        expires_at=created + timedelta(seconds=request.ttl_seconds),
    )
    return Held(result, hold)


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
    """A member gifts points to another member, named by e-mail or phone. Any member may
    receive a gift, so once the recipient is found the transaction is granted the
    recipient's wallet (to credit it) and new lots, nothing else of theirs."""
    sender = call.principal.require_member()
    recipient = await identity.find_member(
        call.conn, keys=call.keys, email=item.to_email, phone=item.to_phone, field_prefix="to"
    )
    await grant(call.conn, members=[recipient])
    request = ledger.TransferRequest(
        idempotency_key=item.idempotency_key,
        from_member_id=sender,
        to_member_id=recipient,
        points=item.points,
        reference=item.reference,
    )
    return await ledger.transfer(
        call.conn, client_id=call.principal.client_id, request=request, now=call.now
    )
