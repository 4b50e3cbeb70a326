"""Micro-batching of ``earnPoints``: concurrent earns of one caller share a transaction.

Under load, the earns one token sends at the same time are queued (see
:mod:`exchange.kit.batching`) and written together by the bulk-issuance path
(:func:`partners.operations.earn_points_batch`): one transaction, one statement per
table, instead of one transaction each. Each request keeps its own result and its own
errors: an item that fails moves nothing and reports the error it would have got alone.
Fewer than ``BATCH_FROM`` waiting earns go the single-earn way, each in its own
transaction (a plain earn is one statement; a batch costs about ten however small).

The key of a queue is the caller's whole principal (client, partner, scopes, token), so
a batch only ever runs with the authority every request in it had.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from exchange.kit.batching import Coalescer
from exchange.kit.db import Database
from exchange.kit.errors import DomainError
from exchange.ledger import MAX_BATCH
from exchange.ledger.models import EntryResult
from exchange.ledger.queries import EntryView
from partners import operations
from partners.principal import Principal

log = logging.getLogger(__name__)

BATCH_FROM = 3

#: An earn's result and its transaction; or its business error; or, if the database
#: failed on that earn alone, the exception its request then raises.
Outcome = tuple[EntryResult | Exception, EntryView | None]
EarnCoalescer = Coalescer[Principal, operations.BatchEarn, Outcome]


@dataclass(frozen=True)
class _Runner:
    database: Database
    clock: Callable[[], datetime]

    async def run(self, principal: Principal, items: list[operations.BatchEarn]) -> list[Outcome]:
        if len(items) < BATCH_FROM:
            return await self.each(principal, items)
        try:
            async with self.database.transaction(principal.row_scope()) as conn:
                outcomes = await operations.earn_points_batch(
                    conn, principal, items=items, now=self.clock()
                )
                written = [o.entry_id for o in outcomes if isinstance(o, EntryResult)]
                views = await operations.transactions_for(conn, principal, written)
        except DomainError as error:
            return [(error, None)] * len(items)
        except DBAPIError:
            # Nothing of the batch was written; a database failure (one item's bad value,
            # a lock timeout) must not fail its neighbours: each earn runs on its own.
            log.warning("an earn batch of %d failed in the database; retrying each", len(items))
            return await self.each(principal, items)
        return [
            (outcome, views.get(outcome.entry_id))
            if isinstance(outcome, EntryResult)
            else (_as_single(outcome), None)
            for outcome in outcomes
        ]

    async def each(self, principal: Principal, items: list[operations.BatchEarn]) -> list[Outcome]:
        """Each earn in its own transaction, concurrently; one failing fails only itself."""
        done = await asyncio.gather(
            *(self.one(principal, item) for item in items), return_exceptions=True
        )
        return [
            outcome if not isinstance(outcome, BaseException) else (_unexpected(outcome), None)
            for outcome in done
        ]

    async def one(self, principal: Principal, item: operations.BatchEarn) -> Outcome:
        try:
            async with self.database.transaction(principal.row_scope()) as conn:
                result = await operations.earn_item(conn, principal, item, now=self.clock())
                view = await operations.transaction_for(conn, principal, result.entry_id)
        except DomainError as error:
            return error, None
        return result, view


def _unexpected(error: BaseException) -> Exception:
    return error if isinstance(error, Exception) else RuntimeError("earn cancelled")


def _as_single(error: DomainError) -> DomainError:
    """A batch names the failing field ``items.<n>.<field>``; a single earn ``<field>``."""
    if error.field and len(error.field) >= 2 and error.field[0] == "items":
        error.field = error.field[2:] or None
    return error


def earn_coalescer(database: Database, clock: Callable[[], datetime]) -> EarnCoalescer:
    return Coalescer(_Runner(database, clock).run, max_batch=MAX_BATCH)
