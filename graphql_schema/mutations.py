"""The Mutation root: one input object per mutation; every payload carries userErrors.
A business failure is a userError with a code and moves nothing (its unit of work is
rolled back); nothing here decides a business rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

import strawberry
from strawberry.types import Info

from exchange import ledger
from exchange.kit.errors import DomainError, NotFound
from exchange.ledger.models import EntryResult
from exchange.usecases import members
from exchange.usecases import points as point_cases
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.cost import list_size
from graphql_schema.errors import mutate, perform
from graphql_schema.insights import ConsentMutation, InsightsMutation, OfferMutation
from graphql_schema.loyalty import LoyaltyMutation
from graphql_schema.settlement import (
    FinalizeSettlementPayload,
    RunSettlementPayload,
    finalize_settlement,
    run_settlement,
)
from graphql_schema.types import Hold, InputArgument, Transaction, UserError
from graphql_schema.wallets import Member, Wallet, load_wallet
from graphql_schema.webhooks import WebhookMutation

KEY = "Unique per client: the same request again returns the first result and moves nothing."
REFERENCE = "Your own reference (a receipt, an order); at most 200 characters."


@strawberry.input(description="Your customer and how the coalition knows the person.")
class LinkMemberInput:
    member_ref: str = strawberry.field(description="Your customer reference (1 to 200 characters).")
    email: str | None = strawberry.field(default=None, description="The customer's e-mail.")
    phone: str | None = strawberry.field(
        default=None, description="The customer's phone, in international form (+14155550123)."
    )


@strawberry.input(description="One of your customer refs to unlink.")
class UnlinkMemberInput:
    member_ref: str = strawberry.field(description="Your customer reference of the member.")


@strawberry.input(
    description="A linked member's new contact details: give the e-mail, the phone or"
    " both; one you leave out (or null) stays as it is."
)
class UpdateMemberContactInput:
    member_ref: str = strawberry.field(description="Your customer reference of the member.")
    email: str | None = strawberry.field(default=None, description="The new e-mail address.")
    phone: str | None = strawberry.field(
        default=None, description="The new phone number, in international form (+14155550123)."
    )


@strawberry.input(description="Points to issue to one of your members.")
class EarnPointsInput:
    idempotency_key: str = strawberry.field(description=KEY)
    member_ref: str = strawberry.field(description="Your customer reference of the member.")
    points: int = strawberry.field(description="How many, 1 or more.")
    reference: str | None = strawberry.field(default=None, description=REFERENCE)
    expires_at: datetime | None = strawberry.field(
        default=None, description="When they expire; default: your contract's points lifetime."
    )

    def request(self) -> point_cases.EarnPoints:
        return point_cases.EarnPoints(
            self.idempotency_key, self.member_ref, self.points, self.reference, self.expires_at
        )


@strawberry.input(description="A bulk issuance.")
class EarnPointsBatchInput:
    items: list[EarnPointsInput] = strawberry.field(
        description="Up to 1,000 earns, each with its own idempotency key."
    )


@strawberry.input(description="Points one of your members spends with you.")
class RedeemPointsInput:
    idempotency_key: str = strawberry.field(description=KEY)
    member_ref: str = strawberry.field(description="Your customer reference of the member.")
    points: int = strawberry.field(description="How many, 1 or more.")
    reference: str | None = strawberry.field(default=None, description=REFERENCE)


@strawberry.input(description="Points to reserve at a point of sale.")
class HoldPointsInput:
    idempotency_key: str = strawberry.field(description=KEY)
    member_ref: str = strawberry.field(description="Your customer reference of the member.")
    points: int = strawberry.field(description="How many, 1 or more.")
    reference: str | None = strawberry.field(default=None, description=REFERENCE)
    ttl_seconds: int = strawberry.field(
        default=900,
        description="Seconds until it is released by itself (1 to 604,800; default 15 min).",
    )


@strawberry.input(description="A hold to redeem, all of it or part.")
class CaptureHoldInput:
    idempotency_key: str = strawberry.field(description=KEY)
    hold_id: strawberry.ID = strawberry.field(description="The hold's global ID.")
    points: int | None = strawberry.field(
        default=None, description="How many to redeem; default: all (the rest goes back)."
    )


@strawberry.input(description="A hold to give back.")
class ReleaseHoldInput:
    hold_id: strawberry.ID = strawberry.field(description="The hold's global ID.")


@strawberry.input(description="An earn or a redemption of yours to undo, all of it or part.")
class ReverseTransactionInput:
    idempotency_key: str = strawberry.field(description=KEY)
    transaction_id: strawberry.ID = strawberry.field(description="The transaction's global ID.")
    points: int | None = strawberry.field(
        default=None, description="How many to reverse; default: all that is left."
    )
    reference: str | None = strawberry.field(default=None, description=REFERENCE)


@strawberry.input(description="Points a member gives another member (a member token).")
class TransferPointsInput:
    idempotency_key: str = strawberry.field(description=KEY)
    points: int = strawberry.field(description="How many, 1 or more.")
    to_email: str | None = strawberry.field(
        default=None, description="The recipient's e-mail (or give toPhone)."
    )
    to_phone: str | None = strawberry.field(
        default=None, description="The recipient's phone (or give toEmail)."
    )
    reference: str | None = strawberry.field(default=None, description=REFERENCE)


@strawberry.type(description="The outcome of linkMember.")
class LinkMemberPayload:
    member: Member | None = strawberry.field(
        default=None, description="The member your ref is linked to; null when the call failed."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was linked."
    )


@strawberry.type(description="The outcome of unlinkMember.")
class UnlinkMemberPayload:
    member_ref: str | None = strawberry.field(
        default=None, description="The ref no longer linked; null when the call failed."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was unlinked."
    )


@strawberry.type(description="The outcome of updateMemberContact.")
class UpdateMemberContactPayload:
    member: Member | None = strawberry.field(
        default=None, description="The member with its new contact; null when the call failed."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing changed."
    )


@strawberry.type(description="The outcome of a call that moves points.")
class TransactionPayload:
    transaction: Transaction | None = strawberry.field(
        default=None, description="The transaction written (or replayed); null when refused."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused; then nothing moved."
    )
    member_id: strawberry.Private[int | None] = None

    @strawberry.field(description="The member's wallet after the operation (read if asked).")
    async def wallet(self, info: Info[Context, None]) -> Wallet | None:
        return await load_wallet(info, self.member_id) if self.member_id is not None else None


@strawberry.type(description="The outcome of a call on a hold.")
class HoldPayload:
    hold: Hold | None = strawberry.field(
        default=None, description="The hold after the call; null when refused."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused; then nothing moved."
    )
    member_id: strawberry.Private[int | None] = None

    @strawberry.field(description="The member's wallet after the operation (read if asked).")
    async def wallet(self, info: Info[Context, None]) -> Wallet | None:
        return await load_wallet(info, self.member_id) if self.member_id is not None else None


@strawberry.type(description="The outcome of one item of a bulk issuance.")
class EarnPointsBatchResult:
    idempotency_key: str = strawberry.field(description="The item's key, as given.")
    transaction: Transaction | None = strawberry.field(
        default=None, description="The item's earn; null when it was refused."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why the item was refused; then it moved nothing."
    )


@strawberry.type(description="The outcome of earnPointsBatch.")
class EarnPointsBatchPayload:
    results: list[EarnPointsBatchResult] = strawberry.field(
        default_factory=list,
        description="One result per item, in the order given.",
        # Each item's rows are paid for by the mutation's charge per input item.
        metadata=list_size(1),
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Errors of the batch as a whole (then no item ran)."
    )


# The contract names one payload type per mutation; they share a shape.
@strawberry.type(description="The outcome of earnPoints.")
class EarnPointsPayload(TransactionPayload):
    pass


@strawberry.type(description="The outcome of redeemPoints.")
class RedeemPointsPayload(TransactionPayload):
    pass


@strawberry.type(description="The outcome of captureHold: the redemption written.")
class CaptureHoldPayload(TransactionPayload):
    pass


@strawberry.type(description="The outcome of reverseTransaction: the reversal written.")
class ReverseTransactionPayload(TransactionPayload):
    pass


@strawberry.type(description="The outcome of transferPoints.")
class TransferPointsPayload(TransactionPayload):
    pass


@strawberry.type(description="The outcome of holdPoints.")
class HoldPointsPayload(HoldPayload):
    pass


@strawberry.type(description="The outcome of releaseHold.")
class ReleaseHoldPayload(HoldPayload):
    pass


MovedPayload = TypeVar("MovedPayload", bound=TransactionPayload)
HeldPayload = TypeVar("HeldPayload", bound=HoldPayload)
Payload = TypeVar("Payload", covariant=True)


class FailedPayload(Protocol[Payload]):
    """A payload type: built from userErrors alone."""

    def __call__(self, *, user_errors: list[UserError]) -> Payload: ...


def _key(global_id: str, type_name: str, field: str) -> int:
    key = ids.decode_as(global_id, type_name)
    if key is None:
        raise NotFound(f"no {type_name.lower()} has that id", field=[field])
    return key


def _moved(payload: type[MovedPayload]) -> Callable[[EntryResult], MovedPayload]:
    """A points-moving payload: the transaction written and the member's wallet."""
    return lambda result: payload(
        transaction=Transaction.of(result.entry), member_id=result.member_id
    )


async def earn(context: Context, input: EarnPointsInput) -> EarnPointsPayload:
    """earnPoints, for its resolver and for the direct lane (graphql_schema.direct)."""
    return await perform(
        context,
        point_cases.earn_points,
        input.request,
        _moved(EarnPointsPayload),
        _failed(EarnPointsPayload),
    )


async def redeem(context: Context, input: RedeemPointsInput) -> RedeemPointsPayload:
    """redeemPoints, for its resolver and for the direct lane (graphql_schema.direct)."""
    return await perform(
        context,
        point_cases.redeem_points,
        lambda: point_cases.RedeemPoints(
            input.idempotency_key, input.member_ref, input.points, input.reference
        ),
        _moved(RedeemPointsPayload),
        _failed(RedeemPointsPayload),
    )


def _held(payload: type[HeldPayload]) -> Callable[[point_cases.Held], HeldPayload]:
    return lambda held: payload(hold=Hold.of(held.hold), member_id=held.result.member_id)


def _failed(payload: FailedPayload[Payload]) -> Callable[[list[UserError]], Payload]:
    return lambda errors: payload(user_errors=errors)


def _batch_results(
    items: list[EarnPointsInput], outcomes: list[EntryResult | DomainError]
) -> EarnPointsBatchPayload:
    results = []
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, EntryResult):
            transaction = Transaction.of(outcome.entry)
            results.append(
                EarnPointsBatchResult(idempotency_key=item.idempotency_key, transaction=transaction)
            )
        else:
            results.append(
                EarnPointsBatchResult(
                    idempotency_key=item.idempotency_key, user_errors=[UserError.of(outcome)]
                )
            )
    return EarnPointsBatchPayload(results=results)


@strawberry.type(
    description="What a caller can change; every payload says what failed in userErrors."
)
class Mutation(LoyaltyMutation, WebhookMutation, InsightsMutation, ConsentMutation, OfferMutation):
    run_settlement: RunSettlementPayload = strawberry.mutation(
        resolver=run_settlement,
        description="Operators (settlement:run): a draft settlement run for a past period.",
    )
    finalize_settlement: FinalizeSettlementPayload = strawberry.mutation(
        resolver=finalize_settlement,
        description="Operators (settlement:run): close a draft run's period for good.",
    )

    @strawberry.mutation(
        description="Link one of your customer refs to a coalition member by e-mail or phone"
        " (members:link); the same person linked by another partner is the same member."
    )
    async def link_member(
        self, info: Info[Context, None], input: InputArgument[LinkMemberInput]
    ) -> LinkMemberPayload:
        return await mutate(
            info,
            members.link_member,
            lambda: members.LinkMember(input.member_ref, input.email, input.phone),
            lambda linked: LinkMemberPayload(member=Member.of(linked.member_id)),
            _failed(LinkMemberPayload),
        )

    @strawberry.mutation(
        description="Remove one of your customer refs (members:link): the member, its wallet"
        " and other partners' links stay; you can no longer reach it by that ref."
    )
    async def unlink_member(
        self, info: Info[Context, None], input: InputArgument[UnlinkMemberInput]
    ) -> UnlinkMemberPayload:
        return await mutate(
            info,
            members.unlink_member,
            lambda: members.UnlinkMember(input.member_ref),
            lambda member_ref: UnlinkMemberPayload(member_ref=member_ref),
            _failed(UnlinkMemberPayload),
        )

    @strawberry.mutation(
        description="A linked member's new e-mail and/or phone (members:link), for a customer"
        " who changed them; CONTACT_IN_USE when another member has it."
    )
    async def update_member_contact(
        self, info: Info[Context, None], input: InputArgument[UpdateMemberContactInput]
    ) -> UpdateMemberContactPayload:
        return await mutate(
            info,
            members.update_member_contact,
            lambda: members.UpdateMemberContact(input.member_ref, input.email, input.phone),
            lambda member_id: UpdateMemberContactPayload(member=Member.of(member_id)),
            _failed(UpdateMemberContactPayload),
        )

    @strawberry.mutation(description="Issue points to one of your members (points:earn).")
    async def earn_points(
        self, info: Info[Context, None], input: InputArgument[EarnPointsInput]
    ) -> EarnPointsPayload:
        return await earn(info.context, input)

    @strawberry.mutation(
        description="Bulk issuance: items that fail report their own userErrors and move"
        " nothing; the others are written together."
    )
    async def earn_points_batch(
        self, info: Info[Context, None], input: InputArgument[EarnPointsBatchInput]
    ) -> EarnPointsBatchPayload:
        return await mutate(
            info,
            point_cases.earn_points_batch,
            lambda: [item.request() for item in input.items],
            lambda outcomes: _batch_results(input.items, outcomes),
            _failed(EarnPointsBatchPayload),
        )

    @strawberry.mutation(
        description="A member spends points with you (points:redeem), soonest to expire first."
    )
    async def redeem_points(
        self, info: Info[Context, None], input: InputArgument[RedeemPointsInput]
    ) -> RedeemPointsPayload:
        return await redeem(info.context, input)

    @strawberry.mutation(
        description="Reserve a member's points at a point of sale (points:redeem) until"
        " captured, released or expired."
    )
    async def hold_points(
        self, info: Info[Context, None], input: InputArgument[HoldPointsInput]
    ) -> HoldPointsPayload:
        return await mutate(
            info,
            point_cases.hold_points,
            lambda: point_cases.HoldPoints(
                input.idempotency_key,
                input.member_ref,
                input.points,
                input.ttl_seconds,
                input.reference,
            ),
            _held(HoldPointsPayload),
            _failed(HoldPointsPayload),
        )

    @strawberry.mutation(
        description="Redeem a hold, all of it or part (points:redeem); the rest goes back."
    )
    async def capture_hold(
        self, info: Info[Context, None], input: InputArgument[CaptureHoldInput]
    ) -> CaptureHoldPayload:
        return await mutate(
            info,
            point_cases.capture_hold,
            lambda: ledger.CaptureRequest(
                input.idempotency_key, _key(input.hold_id, "Hold", "holdId"), input.points
            ),
            _moved(CaptureHoldPayload),
            _failed(CaptureHoldPayload),
        )

    @strawberry.mutation(description="Give a hold back to the member (points:redeem).")
    async def release_hold(
        self, info: Info[Context, None], input: InputArgument[ReleaseHoldInput]
    ) -> ReleaseHoldPayload:
        return await mutate(
            info,
            point_cases.release_hold,
            lambda: _key(input.hold_id, "Hold", "holdId"),
            _held(ReleaseHoldPayload),
            _failed(ReleaseHoldPayload),
        )

    @strawberry.mutation(
        description="Undo an earn or a redemption of yours, all or part (points:reverse)."
    )
    async def reverse_transaction(
        self, info: Info[Context, None], input: InputArgument[ReverseTransactionInput]
    ) -> ReverseTransactionPayload:
        return await mutate(
            info,
            point_cases.reverse_transaction,
            lambda: ledger.ReverseRequest(
                input.idempotency_key,
                _key(input.transaction_id, "Transaction", "transactionId"),
                input.points,
                input.reference,
            ),
            _moved(ReverseTransactionPayload),
            _failed(ReverseTransactionPayload),
        )

    @strawberry.mutation(
        description="A member gives points to another member, by e-mail or phone (a member"
        " token with wallet:transfer)."
    )
    async def transfer_points(
        self, info: Info[Context, None], input: InputArgument[TransferPointsInput]
    ) -> TransferPointsPayload:
        return await mutate(
            info,
            point_cases.transfer_points,
            lambda: point_cases.TransferPoints(
                input.idempotency_key,
                input.points,
                input.to_email,
                input.to_phone,
                input.reference,
            ),
            _moved(TransferPointsPayload),
            _failed(TransferPointsPayload),
        )
