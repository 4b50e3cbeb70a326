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
from graphql_schema.errors import ask, mutate
from graphql_schema.types import FirstArgument, Node, PageInfo, UserError
from settlement.models import RunStatus

# strawberry.enum() registers the domain enum under its GraphQL name and returns the same
# class; the plain alias is what annotations name (mypy takes no call as a type).
strawberry.enum(RunStatus, name="SettlementStatus")
SettlementStatus = RunStatus


@strawberry.type
class NetPosition:
    party: str = strawberry.field(description="'coalition' or 'partner:<id>'")
    amount: Decimal = strawberry.field(description="Positive: pays; negative: receives.")


@strawberry.type
class PaymentInstruction:
    payer: str
    payee: str
    amount: Decimal


@strawberry.type
class SettlementRun(Node):
    status: SettlementStatus
    period_from: datetime
    period_to: datetime
    currency: str
    digest: str
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


@strawberry.type
class SettlementRunEdge:
    cursor: str
    node: SettlementRun


@strawberry.type
class SettlementRunConnection:
    edges: list[SettlementRunEdge]
    page_info: PageInfo


async def settlement_runs(
    info: Info[Context, None], first: FirstArgument | None = None, after: str | None = None
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


@strawberry.input
class ExchangeRateInput:
    currency: str
    rate: Decimal = strawberry.field(description="1 unit = rate units of the settlement currency")


@strawberry.input
class RunSettlementInput:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    currency: str | None = None
    rates: list[ExchangeRateInput] | None = None


@strawberry.input
class FinalizeSettlementInput:
    run_id: strawberry.ID


@strawberry.type
class RunSettlementPayload:
    run: SettlementRun | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class FinalizeSettlementPayload:
    run: SettlementRun | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _run_id(global_id: str) -> int:
    run_id = ids.decode_as(global_id, "SettlementRun")
    if run_id is None:
        raise NotFound("no settlement run has that id", field=["runId"])
    return run_id


async def run_settlement(
    info: Info[Context, None], input: RunSettlementInput
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
    info: Info[Context, None], input: FinalizeSettlementInput
) -> FinalizeSettlementPayload:
    return await mutate(
        info,
        settlement_cases.finalize_settlement,
        lambda: _run_id(input.run_id),
        lambda view: FinalizeSettlementPayload(run=SettlementRun.of(view)),
        lambda errors: FinalizeSettlementPayload(user_errors=errors),
    )
