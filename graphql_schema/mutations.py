"""The Mutation root: one input object per mutation; every payload carries userErrors.
A business failure is a userError with a code and moves nothing (its unit of work is
rolled back); nothing here decides a business rule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types import Info

from exchange.kit.errors import DomainError, NotFound
from exchange.ledger.models import EntryResult
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.settlement import (
    FinalizeSettlementPayload,
    RunSettlementPayload,
    finalize_settlement,
    run_settlement,
)
from graphql_schema.types import Hold, Transaction, UserError
from graphql_schema.wallets import Member, Wallet, load_wallet
from partners import operations


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
        default_factory=list, description="One result per item, in the order given."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Errors of the batch as a whole (then no item ran)."
    )


# The contract names one payload type per mutation; they share a shape.
EarnPointsPayload = strawberry.type(type("EarnPointsPayload", (TransactionPayload,), {}))
RedeemPointsPayload = strawberry.type(type("RedeemPointsPayload", (TransactionPayload,), {}))
CaptureHoldPayload = strawberry.type(type("CaptureHoldPayload", (TransactionPayload,), {}))
ReverseTransactionPayload = strawberry.type(
    type("ReverseTransactionPayload", (TransactionPayload,), {})
)
TransferPointsPayload = strawberry.type(type("TransferPointsPayload", (TransactionPayload,), {}))
HoldPointsPayload = strawberry.type(type("HoldPointsPayload", (HoldPayload,), {}))
ReleaseHoldPayload = strawberry.type(type("ReleaseHoldPayload", (HoldPayload,), {}))

Work = Callable[[AsyncConnection], Awaitable[EntryResult]]


def _key(global_id: str, type_name: str, field: str) -> int:
    key = ids.decode_as(global_id, type_name)
    if key is None:
        raise NotFound(f"no {type_name.lower()} has that id", field=[field])
    return key


async def _entry_payload(info: Info[Context, None], payload: type, work: Work) -> Any:
    context = info.context
    try:
        async with context.unit_of_work() as conn:
            result = await work(conn)
            entry = await operations.transaction_for(conn, context.principal, result.entry_id)
    except DomainError as error:
        return payload(user_errors=[UserError.of(error)])
    return payload(transaction=Transaction.of(entry) if entry else None, member_id=result.member_id)


async def _hold_payload(info: Info[Context, None], payload: type, work: Work) -> Any:
    context = info.context
    try:
        async with context.unit_of_work() as conn:
            result = await work(conn)
            assert result.hold_id is not None
            hold = await operations.hold_for(conn, context.principal, result.hold_id)
    except DomainError as error:
        return payload(user_errors=[UserError.of(error)])
    return payload(hold=Hold.of(hold) if hold else None, member_id=result.member_id)


@strawberry.type
class Mutation:
    run_settlement: RunSettlementPayload = strawberry.mutation(resolver=run_settlement)
    finalize_settlement: FinalizeSettlementPayload = strawberry.mutation(
        resolver=finalize_settlement
    )

    @strawberry.mutation
    async def link_member(
        self, info: Info[Context, None], input: LinkMemberInput
    ) -> LinkMemberPayload:
        context = info.context
        try:
            async with context.unit_of_work() as conn:
                linked = await operations.link_member(
                    conn,
                    context.principal,
                    keys=context.identity_keys,
                    member_ref=input.member_ref,
                    email=input.email,
                    phone=input.phone,
                    now=context.clock(),
                )
        except DomainError as error:
            return LinkMemberPayload(user_errors=[UserError.of(error)])
        return LinkMemberPayload(member=Member.of(linked.member_id))

    @strawberry.mutation
    async def earn_points(
        self, info: Info[Context, None], input: EarnPointsInput
    ) -> EarnPointsPayload:  # type: ignore[valid-type]
        c = info.context
        item = operations.BatchEarn(
            idempotency_key=input.idempotency_key,
            member_ref=input.member_ref,
            points=input.points,
            reference=input.reference,
            expires_at=input.expires_at,
        )
        if c.earns is not None:
            try:
                c.principal.require("points:earn")
                c.principal.require_partner()
            except DomainError as error:
                return EarnPointsPayload(user_errors=[UserError.of(error)])
            outcome, view = await c.earns.submit(c.principal, item)
            if isinstance(outcome, DomainError):
                return EarnPointsPayload(user_errors=[UserError.of(outcome)])
            if isinstance(outcome, Exception):
                raise outcome  # the database failed on this earn alone: a masked error
            return EarnPointsPayload(
                transaction=Transaction.of(view) if view is not None else None,
                member_id=outcome.member_id,
            )
        return await _entry_payload(
            info,
            EarnPointsPayload,
            lambda conn: operations.earn_item(conn, c.principal, item, now=c.clock()),
        )

    @strawberry.mutation(
        description="Bulk issuance: items that fail report their own userErrors and move"
        " nothing; the others are written together."
    )
    async def earn_points_batch(
        self, info: Info[Context, None], input: EarnPointsBatchInput
    ) -> EarnPointsBatchPayload:
        c = info.context
        items = [
            operations.BatchEarn(
                idempotency_key=item.idempotency_key,
                member_ref=item.member_ref,
                points=item.points,
                reference=item.reference,
                expires_at=item.expires_at,
            )
            for item in input.items
        ]
        try:
            async with c.unit_of_work() as conn:
                outcomes = await operations.earn_points_batch(
                    conn, c.principal, items=items, now=c.clock()
                )
                written = [o.entry_id for o in outcomes if isinstance(o, EntryResult)]
                views = await operations.transactions_for(conn, c.principal, written)
        except DomainError as error:
            return EarnPointsBatchPayload(user_errors=[UserError.of(error)])
        results = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, EntryResult):
                view = views.get(outcome.entry_id)
                transaction = Transaction.of(view) if view is not None else None
                results.append(
                    EarnPointsBatchResult(
                        idempotency_key=item.idempotency_key, transaction=transaction
                    )
                )
            else:
                results.append(
                    EarnPointsBatchResult(
                        idempotency_key=item.idempotency_key, user_errors=[UserError.of(outcome)]
                    )
                )
        return EarnPointsBatchPayload(results=results)

    @strawberry.mutation
    async def redeem_points(
        self, info: Info[Context, None], input: RedeemPointsInput
    ) -> RedeemPointsPayload:  # type: ignore[valid-type]
        c = info.context
        return await _entry_payload(
            info,
            RedeemPointsPayload,
            lambda conn: operations.redeem_points(
                conn,
                c.principal,
                idempotency_key=input.idempotency_key,
                member_ref=input.member_ref,
                points=input.points,
                now=c.clock(),
                reference=input.reference,
            ),
        )

    @strawberry.mutation
    async def hold_points(
        self, info: Info[Context, None], input: HoldPointsInput
    ) -> HoldPointsPayload:  # type: ignore[valid-type]
        c = info.context
        return await _hold_payload(
            info,
            HoldPointsPayload,
            lambda conn: operations.hold_points(
                conn,
                c.principal,
                idempotency_key=input.idempotency_key,
                member_ref=input.member_ref,
                points=input.points,
                now=c.clock(),
                ttl_seconds=input.ttl_seconds,
                reference=input.reference,
            ),
        )

    @strawberry.mutation
    async def capture_hold(
        self, info: Info[Context, None], input: CaptureHoldInput
    ) -> CaptureHoldPayload:  # type: ignore[valid-type]
        c = info.context

        async def work(conn: AsyncConnection) -> EntryResult:
            return await operations.capture_hold(
                conn,
                c.principal,
                idempotency_key=input.idempotency_key,
                hold_id=_key(input.hold_id, "Hold", "holdId"),
                points=input.points,
                now=c.clock(),
            )

        return await _entry_payload(info, CaptureHoldPayload, work)

    @strawberry.mutation
    async def release_hold(
        self, info: Info[Context, None], input: ReleaseHoldInput
    ) -> ReleaseHoldPayload:  # type: ignore[valid-type]
        c = info.context

        async def work(conn: AsyncConnection) -> EntryResult:
            return await operations.release_hold(
                conn, c.principal, hold_id=_key(input.hold_id, "Hold", "holdId"), now=c.clock()
            )

        return await _hold_payload(info, ReleaseHoldPayload, work)

    @strawberry.mutation
    async def reverse_transaction(
        self, info: Info[Context, None], input: ReverseTransactionInput
    ) -> ReverseTransactionPayload:  # type: ignore[valid-type]
        c = info.context

        async def work(conn: AsyncConnection) -> EntryResult:
            return await operations.reverse_transaction(
                conn,
                c.principal,
                idempotency_key=input.idempotency_key,
                entry_id=_key(input.transaction_id, "Transaction", "transactionId"),
                points=input.points,
                reference=input.reference,
                now=c.clock(),
            )

        return await _entry_payload(info, ReverseTransactionPayload, work)

    @strawberry.mutation
    async def transfer_points(
        self, info: Info[Context, None], input: TransferPointsInput
    ) -> TransferPointsPayload:  # type: ignore[valid-type]
        c = info.context
        return await _entry_payload(
            info,
            TransferPointsPayload,
            lambda conn: operations.transfer_points(
                conn,
                c.principal,
                keys=c.identity_keys,
                idempotency_key=input.idempotency_key,
                points=input.points,
                to_email=input.to_email,
                to_phone=input.to_phone,
                reference=input.reference,
                now=c.clock(),
            ),
        )
