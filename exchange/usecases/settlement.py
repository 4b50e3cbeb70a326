"""Settlement as the API offers it. An operator with settlement:run runs and finalizes;
settlement:read:all reads every run; a partner with settlement:read reads its own
statement of each finalized run, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from exchange import audit
from exchange.kit import limits
from exchange.kit.errors import Kind, NotFound, Ref
from exchange.usecases.core import Call, use_case
from partners.principal import PrincipalKind
from settlement import repository, service
from settlement.models import RunStatus, party


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


@dataclass(frozen=True)
class RunSettlement:
    start: datetime
    end: datetime
    currency: str | None = None
    rates: dict[str, Decimal] | None = None


@dataclass(frozen=True)
class RunPage:
    first: int
    before_id: int | None = None


def _view(call: Call, row: Any) -> RunView:
    document = dict(row.document)
    net, instructions = document["netPositions"], document["instructions"]
    if call.principal.kind == PrincipalKind.PARTNER:
        own = party(call.principal.partner_id)
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


async def _run_view(call: Call, run_id: int) -> RunView:
    row = await repository.run_by_id(call.conn, run_id=run_id)
    if row is None:
        raise NotFound(
            "settlement run {run} does not exist",
            field=["runId"],
            refs={"run": Ref(Kind.SETTLEMENT_RUN, run_id)},
        )
    return _view(call, row)


@use_case(operator="settlement:run")
async def run_settlement(call: Call, request: RunSettlement) -> RunView:
    """A DRAFT settlement run for a period [from, to)."""
    run = await service.run_settlement(
        call.conn,
        start=request.start,
        end=request.end,
        now=call.now,
        currency=request.currency,
        rates=request.rates,
    )
    return await _run_view(call, run.id)


@use_case(operator="settlement:run")
async def finalize_settlement(call: Call, run_id: int) -> RunView:
    """Finalize a run: its period closes (an operator's change, so the audit log records
    it in the same transaction)."""
    run = await service.finalize(call.conn, run_id=run_id, now=call.now)
    await audit.record(
        call.conn,
        actor=call.actor,
        action=audit.Action.SETTLEMENT_FINALIZED,
        subject=f"settlement_run:{run.id}",
        details=run.summary(),
        at=call.now,
    )
    return await _run_view(call, run.id)


@use_case(operator="settlement:read:all", partner="settlement:read")
async def settlement_runs(call: Call, page: RunPage) -> list[RunView]:
    """Runs, newest first: an operator every run, a partner its statement of each
    finalized run."""
    rows = await repository.runs_page(
        call.conn,
        before_id=page.before_id,
        limit=page.first,
        finalized_only=call.principal.kind == PrincipalKind.PARTNER,
    )
    return [_view(call, row) for row in rows]


@use_case(operator="settlement:read:all", partner="settlement:read", member="")
async def settlement_run(call: Call, run_id: int) -> RunView | None:
    """One run, if the caller may see it."""
    if call.principal.kind == PrincipalKind.MEMBER:
        return None
    # Every id is at most MAX_ID: for that id, "older than MAX_ID + 1" is every run (and
    # MAX_ID + 1 would not fit the bigint the query compares with).
    before_id = run_id + 1 if run_id < limits.MAX_ID else None
    runs = await settlement_runs.run(call, RunPage(first=1, before_id=before_id))
    return runs[0] if runs and runs[0].id == run_id else None
