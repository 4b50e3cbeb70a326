"""Settlement in the API: runs as Nodes, runSettlement and finalizeSettlement."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.types import Info

from exchange.kit.errors import InvalidInput, NotFound
from exchange.kit.limits import DEFAULT_PAGE, MAX_PAGE
from exchange.usecases import settlement as settlement_cases
from exchange.usecases.settlement import RunView
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.cost import list_size
from graphql_schema.enums import describe_enum
from graphql_schema.errors import ask, mutate
from graphql_schema.types import (
    AfterArgument,
    FirstArgument,
    InputArgument,
    Node,
    PageInfo,
    UserError,
)
from settlement.models import RunStatus

# describe_enum() registers the domain enum under its GraphQL name; the plain alias is
# what annotations name (mypy takes no call as a type).
describe_enum(
    RunStatus,
    name="SettlementStatus",
    description="Where a settlement run is in its life.",
    values={
        RunStatus.DRAFT: "Computed; it can be computed again or finalized.",
        RunStatus.SUPERSEDED: "A later draft of the same period replaced it.",
        RunStatus.FINALIZED: "Immutable: its period is closed.",
        RunStatus.PAID: "Every payment instruction is recorded as paid.",
    },
)
SettlementStatus = RunStatus


@strawberry.type(description="What one party pays or receives in a run.")
class NetPosition:
    party: str = strawberry.field(description="'coalition' or 'partner:<id>'")
    amount: Decimal = strawberry.field(description="Positive: pays; negative: receives.")


@strawberry.type(description="One payment that settles a run.")
class PaymentInstruction:
    payer: str = strawberry.field(description="The party that pays ('partner:<id>', 'coalition').")
    payee: str = strawberry.field(description="The party that is paid.")
    amount: Decimal = strawberry.field(description="In the run's currency.")


@strawberry.type(
    description="Settlement of a period [from, to): the points ledger priced, netted and"
    " turned into payments between partners."
)
class SettlementRun(Node):
    status: SettlementStatus = strawberry.field(description="Where it is in its life.")
    period_from: datetime = strawberry.field(description="The period's start (included).")
    period_to: datetime = strawberry.field(description="The period's end (excluded).")
    currency: str = strawberry.field(description="The settlement currency (ISO 4217).")
    digest: str = strawberry.field(description="A hash of its document: equal runs, equal digests.")
    # Both lists are read whole with the run (they are stored in its row).
    net_positions: list[NetPosition] = strawberry.field(
        description="One per partner in the run, and the coalition.", metadata=list_size(1)
    )
    instructions: list[PaymentInstruction] = strawberry.field(
        description="The payments that settle the run: fewer than its partners.",
        metadata=list_size(1),
    )

    @classmethod
    def of(cls, view: RunView) -> SettlementRun:
        return cls(
            id=strawberry.ID(ids.encode("SettlementRun", view.id)),
            status=view.status,
            period_from=view.period_start,
            period_to=view.period_end,
            currency=view.currency,
            digest=view.digest,
            net_positions=[
                NetPosition(party=k, amount=Decimal(v)) for k, v in view.net_positions.items()
            ],
            instructions=[
                PaymentInstruction(payer=i["payer"], payee=i["payee"], amount=Decimal(i["amount"]))
                for i in view.instructions
            ],
        )


@strawberry.type(description="A settlement run in a list, with its cursor.")
class SettlementRunEdge:
    cursor: str = strawberry.field(description="Where the list can continue after it.")
    node: SettlementRun = strawberry.field(description="The run.")


@strawberry.type(description="A page of settlement runs, newest first.")
class SettlementRunConnection:
    edges: list[SettlementRunEdge] = strawberry.field(description="The page's runs.")
    page_info: PageInfo = strawberry.field(description="Where the page ends.")


async def settlement_runs(
    info: Info[Context, None], first: FirstArgument = None, after: AfterArgument = None
) -> SettlementRunConnection:
    size = DEFAULT_PAGE if first is None else first

    def page() -> settlement_cases.RunPage:
        before_id = ids.decode_as(after, "SettlementRun") if after else None
        if not 1 <= size <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}", field=["first"])
        if after and before_id is None:
            raise InvalidInput("after is not a cursor from here", field=["after"])
        return settlement_cases.RunPage(first=size + 1, before_id=before_id)

    views = await ask(info, settlement_cases.settlement_runs, page)
    edges = [
        SettlementRunEdge(cursor=ids.encode("SettlementRun", v.id), node=SettlementRun.of(v))
        for v in views[:size]
    ]
    return SettlementRunConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(views) > size, end_cursor=edges[-1].cursor if edges else None
        ),
    )


@strawberry.input(description="How one contract currency converts to the settlement currency.")
class ExchangeRateInput:
    currency: str = strawberry.field(description="A contract currency (ISO 4217).")
    rate: Decimal = strawberry.field(description="1 unit = rate units of the settlement currency")


@strawberry.input(description="The period to settle.")
class RunSettlementInput:
    from_: datetime = strawberry.field(name="from", description="The start (included).")
    to: datetime = strawberry.field(description="The end (excluded); in the past.")
    currency: str | None = strawberry.field(
        default=None,
        description="The settlement currency; default: the partners' one currency.",
    )
    rates: list[ExchangeRateInput] | None = strawberry.field(
        default=None, description="Rates for every other contract currency in the period."
    )


@strawberry.input(description="The draft run to finalize.")
class FinalizeSettlementInput:
    run_id: strawberry.ID = strawberry.field(description="The run's global ID.")


@strawberry.type(description="The outcome of runSettlement.")
class RunSettlementPayload:
    run: SettlementRun | None = strawberry.field(
        default=None, description="The new draft run; null when the call failed."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why no run was made."
    )


@strawberry.type(description="The outcome of finalizeSettlement.")
class FinalizeSettlementPayload:
    run: SettlementRun | None = strawberry.field(
        default=None, description="The finalized run; null when the call failed."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why the run was not finalized."
    )


def _run_id(global_id: str) -> int:
    run_id = ids.decode_as(global_id, "SettlementRun")
    if run_id is None:
        raise NotFound("no settlement run has that id", field=["runId"])
    return run_id


async def run_settlement(
    info: Info[Context, None], input: InputArgument[RunSettlementInput]
) -> RunSettlementPayload:
    return await mutate(
        info,
        settlement_cases.run_settlement,
        lambda: settlement_cases.RunSettlement(
            start=input.from_,
            end=input.to,
            currency=input.currency,
            rates={r.currency: r.rate for r in input.rates or []},
        ),
        lambda view: RunSettlementPayload(run=SettlementRun.of(view)),
        lambda errors: RunSettlementPayload(user_errors=errors),
    )


async def finalize_settlement(
    info: Info[Context, None], input: InputArgument[FinalizeSettlementInput]
) -> FinalizeSettlementPayload:
    return await mutate(
        info,
        settlement_cases.finalize_settlement,
        lambda: _run_id(input.run_id),
        lambda view: FinalizeSettlementPayload(run=SettlementRun.of(view)),
        lambda errors: FinalizeSettlementPayload(user_errors=errors),
    )
