"""Micro-batching: concurrent calls with the same key share one batch call.

A call joins the queue of its key. While fewer than ``depth`` batches of that key are in
flight, a new batch starts with everything queued (up to ``max_batch``); otherwise the
call waits for one to finish, and everything that queued meanwhile goes out together.
A lone call therefore starts at once (no timer, no added latency when the server is
idle), and under load the batches grow with the load: group commit.

Every caller gets its own result. The batch function returns one result per item, in
order; if it raises, every caller of that batch gets the exception. A caller that gives
up (its request was cancelled) does not cancel the batch its item is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """What the coalescer did, for benchmarks and tests."""

    batches: int = 0
    items: int = 0
    largest: int = 0


@dataclass
class _Lane(Generic[T, R]):
    queue: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    in_flight: int = 0


class Coalescer(Generic[K, T, R]):
    def __init__(
        self,
        run: Callable[[K, list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int,
        depth: int = 2,
    ) -> None:
        if max_batch < 1 or depth < 1:
            raise ValueError("max_batch and depth must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._depth = depth
        self._lanes: dict[K, _Lane[T, R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = BatchStats()

    async def submit(self, key: K, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        lane = self._lanes.setdefault(key, _Lane())
        lane.queue.append((item, future))
        if lane.in_flight < self._depth:
            lane.in_flight += 1
            task = asyncio.create_task(self._drain(key, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future)

    async def _drain(self, key: K, lane: _Lane[T, R]) -> None:
        try:
            while lane.queue:
                batch = lane.queue[: self._max_batch]
                del lane.queue[: self._max_batch]
                self.stats.batches += 1
                self.stats.items += len(batch)
                self.stats.largest = max(self.stats.largest, len(batch))
                try:
                    results = await self._run(key, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(
                            f"a batch of {len(batch)} returned {len(results)} results"
                        )
                except BaseException as error:  # every caller of the batch sees it
                    failure = error if isinstance(error, Exception) else RuntimeError("cancelled")
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(failure)
                    if failure is not error:
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            lane.in_flight -= 1
            if lane.in_flight == 0:
                for _, future in lane.queue:  # left behind by a cancelled drain
                    if not future.done():
                        future.set_exception(RuntimeError("cancelled"))
                del self._lanes[key]

    async def close(self) -> None:
        """Wait for the batches in flight (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class SplitBatch(Exception):
    """Raised by a batch function when an item was refused after its rows were written:
    the batch's transaction must roll back, and each item then runs on its own, where
    its refusal is its own error."""
