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
from graphql_schema.errors import mutate
from graphql_schema.insights import ConsentMutation, InsightsMutation, OfferMutation
from graphql_schema.loyalty import LoyaltyMutation
from graphql_schema.settlement import (
    FinalizeSettlementPayload,
    RunSettlementPayload,
    finalize_settlement,
    run_settlement,
)
from graphql_schema.types import Hold, Transaction, UserError
from graphql_schema.wallets import Member, Wallet, load_wallet
from graphql_schema.webhooks import WebhookMutation


@strawberry.input
class LinkMemberInput:
    member_ref: str
    email: str | None = None
    phone: str | None = None


@strawberry.input
class EarnPointsInput:
    idempotency_key: str
    member_ref: str
    points: int
    reference: str | None = None
    expires_at: datetime | None = None

    def request(self) -> point_cases.EarnPoints:
        return point_cases.EarnPoints(
            self.idempotency_key, self.member_ref, self.points, self.reference, self.expires_at
        )


@strawberry.input
class EarnPointsBatchInput:
    items: list[EarnPointsInput] = strawberry.field(
        description="Up to 1,000 earns, each with its own idempotency key."
    )


@strawberry.input
class RedeemPointsInput:
    idempotency_key: str
    member_ref: str
    points: int
    reference: str | None = None


@strawberry.input
class HoldPointsInput:
    idempotency_key: str
    member_ref: str
    points: int
    reference: str | None = None
    ttl_seconds: int = 900


@strawberry.input
class CaptureHoldInput:
    idempotency_key: str
    hold_id: strawberry.ID
    points: int | None = None


@strawberry.input
class ReleaseHoldInput:
    hold_id: strawberry.ID


@strawberry.input
class ReverseTransactionInput:
    idempotency_key: str
    transaction_id: strawberry.ID
    points: int | None = None
    reference: str | None = None


@strawberry.input
class TransferPointsInput:
    idempotency_key: str
    points: int
    to_email: str | None = None
    to_phone: str | None = None
    reference: str | None = None


@strawberry.type
class LinkMemberPayload:
    member: Member | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TransactionPayload:
    transaction: Transaction | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
    member_id: strawberry.Private[int | None] = None

    @strawberry.field(description="The member's wallet after the operation (read if asked).")
    async def wallet(self, info: Info[Context, None]) -> Wallet | None:
        return await load_wallet(info, self.member_id) if self.member_id is not None else None


@strawberry.type
class HoldPayload:
    hold: Hold | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
    member_id: strawberry.Private[int | None] = None

    @strawberry.field(description="The member's wallet after the operation (read if asked).")
    async def wallet(self, info: Info[Context, None]) -> Wallet | None:
        return await load_wallet(info, self.member_id) if self.member_id is not None else None


@strawberry.type(description="The outcome of one item of a bulk issuance.")
class EarnPointsBatchResult:
    idempotency_key: str
    transaction: Transaction | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
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
@strawberry.type
class EarnPointsPayload(TransactionPayload):
    pass


@strawberry.type
class RedeemPointsPayload(TransactionPayload):
    pass


@strawberry.type
class CaptureHoldPayload(TransactionPayload):
    pass


@strawberry.type
class ReverseTransactionPayload(TransactionPayload):
    pass


@strawberry.type
class TransferPointsPayload(TransactionPayload):
    pass


@strawberry.type
class HoldPointsPayload(HoldPayload):
    pass


@strawberry.type
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


@strawberry.type
class Mutation(LoyaltyMutation, WebhookMutation, InsightsMutation, ConsentMutation, OfferMutation):
    run_settlement: RunSettlementPayload = strawberry.mutation(resolver=run_settlement)
    finalize_settlement: FinalizeSettlementPayload = strawberry.mutation(
        resolver=finalize_settlement
    )

    @strawberry.mutation
    async def link_member(
        self, info: Info[Context, None], input: LinkMemberInput
    ) -> LinkMemberPayload:
        return await mutate(
            info,
            members.link_member,
            lambda: members.LinkMember(input.member_ref, input.email, input.phone),
            lambda linked: LinkMemberPayload(member=Member.of(linked.member_id)),
            _failed(LinkMemberPayload),
        )

    @strawberry.mutation
    async def earn_points(
        self, info: Info[Context, None], input: EarnPointsInput
    ) -> EarnPointsPayload:
        return await mutate(
            info,
            point_cases.earn_points,
            input.request,
            _moved(EarnPointsPayload),
            _failed(EarnPointsPayload),
        )

    @strawberry.mutation(
        description="Bulk issuance: items that fail report their own userErrors and move"
        " nothing; the others are written together."
    )
    async def earn_points_batch(
        self, info: Info[Context, None], input: EarnPointsBatchInput
    ) -> EarnPointsBatchPayload:
        return await mutate(
            info,
            point_cases.earn_points_batch,
            lambda: [item.request() for item in input.items],
            lambda outcomes: _batch_results(input.items, outcomes),
            _failed(EarnPointsBatchPayload),
        )

    @strawberry.mutation
    async def redeem_points(
        self, info: Info[Context, None], input: RedeemPointsInput
    ) -> RedeemPointsPayload:
        return await mutate(
            info,
            point_cases.redeem_points,
            lambda: point_cases.RedeemPoints(
                input.idempotency_key, input.member_ref, input.points, input.reference
            ),
            _moved(RedeemPointsPayload),
            _failed(RedeemPointsPayload),
        )

    @strawberry.mutation
    async def hold_points(
        self, info: Info[Context, None], input: HoldPointsInput
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

    @strawberry.mutation
    async def capture_hold(
        self, info: Info[Context, None], input: CaptureHoldInput
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

    @strawberry.mutation
    async def release_hold(
        self, info: Info[Context, None], input: ReleaseHoldInput
    ) -> ReleaseHoldPayload:
        return await mutate(
            info,
            point_cases.release_hold,
            lambda: _key(input.hold_id, "Hold", "holdId"),
            _held(ReleaseHoldPayload),
            _failed(ReleaseHoldPayload),
        )

    @strawberry.mutation
    async def reverse_transaction(
        self, info: Info[Context, None], input: ReverseTransactionInput
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

    @strawberry.mutation
    async def transfer_points(
        self, info: Info[Context, None], input: TransferPointsInput
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
