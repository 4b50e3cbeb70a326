"""Running use cases: the permission first, then one unit of work under the caller's
row-level-security scope, committed when the use case returns and rolled back when it
raises (but for a DomainError raised with ``commit``, which is raised after the commit).
A transaction that meets a deadlock or a serialization failure is run again (it rolled
back, so nothing of it happened).

Micro-batching (docs/decisions/0006): a use case that declares a ``many`` form (earn,
purchase) is called through a :class:`~exchange.kit.batching.Coalescer` keyed by the
caller's whole principal. Concurrent calls of one caller then share a unit of work: fewer
than the use case's ``batch_from`` waiting calls run each in its own transaction; more
run as one batch. If a batch fails for any reason but a business error, nothing of it
was written and each call runs again on its own, so one bad request fails alone (a batch
that finds an item refused after writing it raises ``SplitBatch`` to ask for exactly
that). The caller of :meth:`Runner.run` cannot tell whether its call was batched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from exchange.kit.batching import Coalescer, SplitBatch
from exchange.kit.clock import Clock, utc_now
from exchange.kit.db import Database, is_transient
from exchange.kit.errors import DomainError
from exchange.kit.settings import Tunables
from exchange.ledger import MAX_BATCH
from exchange.usecases.core import Call, UseCase
from partners.identity import IdentityKeys
from partners.principal import Principal

log = logging.getLogger(__name__)

ATTEMPTS = 3

Q = TypeVar("Q")
A = TypeVar("A")
T = TypeVar("T")


async def _committing(work: Awaitable[A]) -> A | DomainError:
    """The outcome of a use case; a DomainError raised with ``commit`` becomes its result,
    so that its unit of work commits before the error is raised to the caller."""
    try:
        return await work
    except DomainError as error:
        if not error.commit:
            raise
        return error


class Runner:
    def __init__(
        self,
        database: Database,
        *,
        keys: IdentityKeys,
        clock: Clock = utc_now,
        micro_batching: bool = True,
        tunables: Tunables | None = None,
    ) -> None:
        self.database = database
        self.keys = keys
        self.tunables = tunables or Tunables()
        self.clock = clock
        self.micro_batching = micro_batching
        self._coalescers: dict[str, Coalescer[Principal, Any, Any]] = {}

    async def run(
        self, principal: Principal, use_case: UseCase[Q, A], request: Q, *, origin: str = ""
    ) -> A:
        """Run one use case for a caller; a business failure raises its DomainError.
        ``origin`` (the client's address) reaches a use case that is not batched, the
        ones that write the audit log; a batch serves many requests and has none."""
        use_case.permit(principal)
        if use_case.many is None or not self.micro_batching:
            return await self._once(principal, use_case, request, origin)
        outcome = await self.coalescer(use_case).submit(principal, request)
        if isinstance(outcome, BaseException):
            raise outcome
        result: A = outcome
        return result

    async def unit_of_work(
        self, principal: Principal, work: Callable[[Call], Awaitable[T]], origin: str = ""
    ) -> T:
        """``work`` in one transaction under the caller's scope, run again after a
        deadlock or serialization failure."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.database.transaction(principal.row_scope()) as conn:
                    call = Call(conn, principal, self.clock(), self.keys, self.tunables, origin)
                    return await work(call)
            except Exception as error:
                if attempt == ATTEMPTS or not is_transient(error):
                    raise
                log.info("transaction rolled back by the database (%s); running it again", error)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self, principal: Principal, use_case: UseCase[Q, A], request: Q, origin: str = ""
    ) -> A:
        outcome = await self.unit_of_work(
            principal, lambda call: _committing(use_case.run(call, request)), origin
        )
        if isinstance(outcome, DomainError):  # refused, and what it cost was committed
            raise outcome
        return outcome

    def coalescer(self, use_case: UseCase[Q, A]) -> Coalescer[Principal, Q, A | BaseException]:
        """The micro-batching queue of a use case (its ``stats`` say what it did)."""
        coalescer = self._coalescers.get(use_case.name)
        if coalescer is None:

            async def run(principal: Principal, requests: list[Q]) -> list[A | BaseException]:
                return await self._batch(principal, use_case, requests)

            coalescer = self._coalescers[use_case.name] = Coalescer(run, max_batch=MAX_BATCH)
        return coalescer

    async def _batch(
        self, principal: Principal, use_case: UseCase[Q, A], requests: Sequence[Q]
    ) -> list[A | BaseException]:
        many = use_case.many
        if many is None or len(requests) < use_case.batch_from:
            return await self._each(principal, use_case, requests)
        try:
            outcomes = await self.unit_of_work(principal, lambda call: many(call, requests))
        except DomainError as error:  # the batch as a whole was refused
            return [error] * len(requests)
        except SplitBatch:  # an item was refused after its rows were written
            return await self._each(principal, use_case, requests)
        except Exception:
            log.warning(
                "a batch of %d %s calls failed; nothing of it was written; retrying each",
                len(requests),
                use_case.name,
                exc_info=True,
            )
            return await self._each(principal, use_case, requests)
        return list(outcomes)

    async def _each(
        self, principal: Principal, use_case: UseCase[Q, A], requests: Sequence[Q]
    ) -> list[A | BaseException]:
        """Each call in its own transaction, concurrently; one failing fails only itself."""
        return list(
            await asyncio.gather(
                *(self._once(principal, use_case, request) for request in requests),
                return_exceptions=True,
            )
        )

    async def close(self) -> None:
        """Wait for the batches in flight (at shutdown)."""
        for coalescer in self._coalescers.values():
            await coalescer.close()
