"""How every ledger operation runs: read under lock, plan, write once, settle keys.

An :class:`Operation` knows its rule in two steps: :meth:`~Operation.read` takes the
locks it needs and reads what it plans against (wallets, lots, holds, a target entry);
:meth:`~Operation.plan` turns one request into the entries it writes, or raises the
request's :class:`DomainError`. :func:`execute` does the rest, the same for every
operation and for one request or a thousand:

1. plan each request in order against the state read (a request planned later sees what
   earlier ones took); a key given twice in one call is planned once;
2. write every plan in one statement (:func:`exchange.ledger.repository.write`), which
   claims each request's idempotency key;
3. settle keys (:mod:`exchange.ledger.idempotency`): a request whose key was already
   taken, or that failed before it was written, is decided by the earlier request with
   its key (replay, or IDEMPOTENCY_KEY_REUSED); with none, its own outcome stands.

Each request gets its own outcome, in order; one failing request moves nothing and does
not stop the others.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from exchange.kit.db import Connection
from exchange.kit.errors import DomainError, InvalidInput
from exchange.kit.invariant import invariant, present
from exchange.kit.limits import MAX_BATCH
from exchange.ledger import idempotency, repository
from exchange.ledger.models import EntryKind, EntryResult, EntryView
from exchange.ledger.plans import EntryPlan, Key

Outcome = EntryResult | DomainError

R = TypeVar("R", contravariant=True)
S = TypeVar("S")


class Operation(Protocol[R, S]):
    @property
    def kind(self) -> EntryKind:
        """The kind of the entry a request writes (its key's digest names it)."""
        ...

    @property
    def keyed(self) -> bool:
        """Whether requests carry an idempotency key."""
        ...

    async def read(self, conn: Connection, requests: Sequence[R], now: datetime) -> S:
        """Take the locks the plans need and read what they plan against."""
        ...

    def plan(self, state: S, request: R, now: datetime) -> list[EntryPlan]:
        """The entries one request writes, its own last; [] when there is nothing to do.
        Updates ``state`` with what the request takes, for the requests after it."""
        ...


@dataclass
class _Run(Generic[R]):
    requests: Sequence[R]
    keys: list[Key | None]
    outcomes: list[Outcome | None]
    plans: list[EntryPlan] = field(default_factory=list)
    #: request index -> index of its own entry's plan
    own_plan: dict[int, int] = field(default_factory=dict)
    #: request index -> request index of the first use of the same key
    repeats: dict[int, int] = field(default_factory=dict)


async def execute(
    conn: Connection,
    operation: Operation[R, S],
    requests: Sequence[R],
    *,
    now: datetime,
    client_id: str | None = None,
    partner_id: int | None = None,
) -> list[Outcome | None]:
    """Run ``operation`` for each request; one outcome per request, in order (None: the
    request had nothing to do)."""
    if not 1 <= len(requests) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} requests", field=["items"])
    run = _Run(requests, _keys(operation, requests, client_id, partner_id), [None] * len(requests))
    state = await operation.read(conn, requests, now)
    _plan(run, operation, state, now)
    written = await repository.write(conn, run.plans)
    _record(run, written)
    await _settle_keys(conn, run)
    return run.outcomes


def single(outcomes: Sequence[Outcome | None]) -> EntryResult:
    """The one outcome of a single request, raising its error."""
    invariant(len(outcomes) == 1, "a single request has one outcome")
    outcome = outcomes[0]
    if isinstance(outcome, DomainError):
        raise outcome
    return present(outcome, "a single request writes an entry")


def _keys(
    operation: Operation[R, S], requests: Sequence[R], client_id: str | None, partner_id: int | None
) -> list[Key | None]:
    if not operation.keyed:
        return [None] * len(requests)
    if not client_id:
        raise InvalidInput("a client is required", field=["clientId"])
    return [
        idempotency.key_of(r, kind=operation.kind, client_id=client_id, partner_id=partner_id)  # type: ignore[arg-type]
        for r in requests
    ]


def _plan(run: _Run[R], operation: Operation[R, S], state: S, now: datetime) -> None:
    first_use: dict[str, int] = {}
    for index, request in enumerate(run.requests):
        key = run.keys[index]
        if key is not None:
            if key.idempotency_key in first_use:
                run.repeats[index] = first_use[key.idempotency_key]
                continue
            first_use[key.idempotency_key] = index
        try:
            planned = operation.plan(state, request, now)
        except DomainError as error:
            run.outcomes[index] = error
            continue
        if not planned:
            continue
        planned[-1].key = key
        run.own_plan[index] = len(run.plans) + len(planned) - 1
        run.plans.extend(planned)


def _record(run: _Run[R], written: repository.Written) -> None:
    """Results of the written plans, each with its wallet's balance right after it: the
    final balance less what later written plans changed on the same account."""
    later: dict[int, int] = {}
    after: dict[int, int | None] = {}
    for number in reversed(range(len(run.plans))):
        plan = run.plans[number]
        if written.entry_ids[number] is None:
            continue
        wallet = plan.wallet_account_id
        if wallet is not None and wallet in written.balances:
            after[number] = written.balances[wallet] - later.get(wallet, 0)
        for leg in plan.legs:
            if not leg.sharded:
                later[leg.account_id] = later.get(leg.account_id, 0) + leg.amount
    for index, number in run.own_plan.items():
        entry_id = written.entry_ids[number]
        if entry_id is not None:
            run.outcomes[index] = _result(run.plans[number], entry_id, after.get(number))


def _result(plan: EntryPlan, entry_id: int, balance: int | None) -> EntryResult:
    entry = EntryView(
        id=entry_id,
        kind=plan.kind,
        points=plan.points,
        partner_id=plan.partner_id,
        member_id=plan.member_id,
        counterparty_member_id=plan.counterparty_member_id,
        reference=plan.reference,
        created_at=plan.created_at,
        effective_at=plan.effective_at,
        target_entry_id=plan.target_entry_id,
        hold_id=plan.hold_id,
    )
    hold_id = plan.new_hold.id if plan.new_hold is not None else plan.hold_id
    return EntryResult(entry=entry, wallet_balance=balance, hold_id=hold_id)


async def _settle_keys(conn: Connection, run: _Run[R]) -> None:
    """Requests not written that carry a key are decided by the earlier use of the key."""
    unsettled = [
        index
        for index, key in enumerate(run.keys)
        if key is not None
        and index not in run.repeats
        and not isinstance(run.outcomes[index], EntryResult)
    ]
    found = await idempotency.earlier(
        conn, [key for index in unsettled if (key := run.keys[index]) is not None]
    )
    for index in unsettled:
        key = present(run.keys[index], "only keyed requests are settled")
        decided = found.get(key.idempotency_key)
        if decided is not None:
            run.outcomes[index] = decided
        else:
            invariant(index not in run.own_plan, "a key not written was taken by a request")
    for index, first in run.repeats.items():
        run.outcomes[index] = _repeat(run.keys[index], run.keys[first], run.outcomes[first])


def _repeat(key: Key | None, first_key: Key | None, first: Outcome | None) -> Outcome | None:
    """A key given twice in one call: the second use is a replay of the first."""
    if key is None or first_key is None or key.digest != first_key.digest:
        return idempotency.reused()
    if isinstance(first, EntryResult):
        return EntryResult(
            entry=first.entry,
            wallet_balance=first.wallet_balance,
            replayed=True,
            hold_id=first.hold_id,
        )
    return copy.copy(first)
