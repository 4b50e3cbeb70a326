"""The settlement use cases the API calls, given the caller's principal. An operator
with settlement:run runs and finalizes; settlement:read:all reads every run; a partner
with settlement:read reads its own statement of each finalized run, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import Forbidden
from partners.principal import Principal, PrincipalKind
from settlement import repository, service
from settlement.models import RunStatus, SettlementRun, party


@dataclass(frozen=True)
class RunView:
    """A run as one caller may see it (a partner: only what concerns it)."""

    id: int
    status: RunStatus
    period_start: datetime
    period_end: datetime
    currency: str
    digest: str
    net_positions: dict[str, str]
    instructions: list[dict[str, str]]


def _operator(principal: Principal, scope: str) -> None:
    if principal.kind != PrincipalKind.OPERATOR:
        raise Forbidden("settlement runs are the operator's")
    principal.require(scope)


async def run(
    conn: AsyncConnection,
    principal: Principal,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    currency: str | None = None,
    rates: dict[str, Decimal] | None = None,
) -> SettlementRun:
    _operator(principal, "settlement:run")
    return await service.run_settlement(
        conn, start=start, end=end, now=now, currency=currency, rates=rates
    )


async def finalize(
    conn: AsyncConnection, principal: Principal, *, run_id: int, now: datetime
) -> SettlementRun:
    _operator(principal, "settlement:run")
    return await service.finalize(conn, run_id=run_id, now=now)


def _view(row: Any, principal: Principal) -> RunView:
    document = dict(row.document)
    net, instructions = document["netPositions"], document["instructions"]
    if principal.kind == PrincipalKind.PARTNER:
        own = party(principal.partner_id)
        net = {k: v for k, v in net.items() if k == own}
        instructions = [i for i in instructions if own in (i["payer"], i["payee"])]
    return RunView(
        id=int(row.id),
        status=RunStatus(row.status),
        period_start=row.period_start,
        period_end=row.period_end,
        currency=row.currency,
        digest=row.digest,
        net_positions=net,
        instructions=instructions,
    )


async def runs(
    conn: AsyncConnection, principal: Principal, *, first: int, before_id: int | None
) -> list[RunView]:
    if principal.kind == PrincipalKind.OPERATOR:
        principal.require("settlement:read:all")
        finalized_only = False
    elif principal.kind == PrincipalKind.PARTNER:
        principal.require("settlement:read")
        finalized_only = True
    else:
        raise Forbidden("members have no settlement runs")
    rows = await repository.runs_page(
        conn, before_id=before_id, limit=first, finalized_only=finalized_only
    )
    return [_view(row, principal) for row in rows]


async def run_view(conn: AsyncConnection, principal: Principal, *, run_id: int) -> RunView:
    row = await repository.run_by_id(conn, run_id=run_id)
    if row is None:
        from exchange.kit.errors import NotFound

        raise NotFound(f"settlement run {run_id} does not exist", field=["runId"])
    return _view(row, principal)
