"""Micro-batching: concurrent calls with one key share a batch; each caller gets its own
result; a lone call does not wait; a failing batch fails only its own callers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from exchange.kit.batching import Coalescer
from exchange.kit.settings import Settings


class Recorder:
    """A batch function that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_when: int | None = None

    async def run(self, key: str, items: list[int]) -> list[str]:
        self.batches.append((key, list(items)))
        await self.gate.wait()
        if self.fail_when in items:
            raise ValueError(f"item {self.fail_when} broke the batch")
        return [f"{key}:{item * 10}" for item in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_call_runs_at_once_as_a_batch_of_one() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int, str] = Coalescer(recorder.run, max_batch=10)

    assert await asyncio.wait_for(coalescer.submit("a", 7), timeout=5) == "a:70"
    assert recorder.batches == [("a", [7])]


async def test_calls_that_arrive_while_a_batch_runs_go_out_together_in_order() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int, str] = Coalescer(recorder.run, max_batch=10, depth=1)
    recorder.gate.clear()
    first = asyncio.create_task(coalescer.submit("a", 1))
    await _settle()
    waiting = [asyncio.create_task(coalescer.submit("a", n)) for n in (2, 3, 4)]
    await _settle()
    recorder.gate.set()

    assert await first == "a:10"
    assert [await task for task in waiting] == ["a:20", "a:30", "a:40"]
    assert recorder.batches == [("a", [1]), ("a", [2, 3, 4])]
    assert (coalescer.stats.batches, coalescer.stats.items, coalescer.stats.largest) == (2, 4, 3)


async def test_two_batches_of_a_key_may_be_in_flight_but_not_three() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int, str] = Coalescer(recorder.run, max_batch=10, depth=2)
    recorder.gate.clear()
    tasks = [asyncio.create_task(coalescer.submit("a", 1))]
    await _settle()
    tasks.append(asyncio.create_task(coalescer.submit("a", 2)))
    await _settle()
    tasks += [asyncio.create_task(coalescer.submit("a", n)) for n in (3, 4)]
    await _settle()
    assert recorder.batches == [("a", [1]), ("a", [2])]  # 3 and 4 wait
    recorder.gate.set()

    assert await asyncio.gather(*tasks) == ["a:10", "a:20", "a:30", "a:40"]
    assert recorder.batches[2] == ("a", [3, 4])


async def test_keys_never_share_a_batch() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int, str] = Coalescer(recorder.run, max_batch=10, depth=1)
    recorder.gate.clear()
    tasks = [asyncio.create_task(coalescer.submit(key, n)) for key, n in [("a", 1), ("b", 2)]]
    await _settle()
    tasks += [asyncio.create_task(coalescer.submit(key, n)) for key, n in [("a", 3), ("b", 4)]]
    await _settle()
    recorder.gate.set()

    assert await asyncio.gather(*tasks) == ["a:10", "b:20", "a:30", "b:40"]
    assert sorted(recorder.batches) == [("a", [1]), ("a", [3]), ("b", [2]), ("b", [4])]


async def test_a_batch_never_exceeds_max_batch() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int, str] = Coalescer(recorder.run, max_batch=2, depth=1)
    recorder.gate.clear()
    tasks = [asyncio.create_task(coalescer.submit("a", n)) for n in range(5)]
    await _settle()
    recorder.gate.set()

    assert await asyncio.gather(*tasks) == [f"a:{n * 10}" for n in range(5)]
    # all five queued before the first batch started
    assert [items for _, items in recorder.batches] == [[0, 1], [2, 3], [4]]


async def test_a_failing_batch_fails_only_its_own_callers() -> None:
    recorder = Recorder()
    recorder.fail_when = 3
    coalescer: Coalescer[str, int, str] = Coalescer(recorder.run, max_batch=10, depth=1)
    recorder.gate.clear()
    first = asyncio.create_task(coalescer.submit("a", 1))
    await _settle()
    doomed = [asyncio.create_task(coalescer.submit("a", n)) for n in (2, 3)]
    await _settle()
    recorder.gate.set()

    assert await first == "a:10"
    for task in doomed:
        with pytest.raises(ValueError, match="item 3 broke the batch"):
            await task
    assert await coalescer.submit("a", 5) == "a:50"


async def test_a_caller_that_gives_up_does_not_cancel_the_batch() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int, str] = Coalescer(recorder.run, max_batch=10, depth=1)
    recorder.gate.clear()
    quitter = asyncio.create_task(coalescer.submit("a", 1))
    stayer = asyncio.create_task(coalescer.submit("a", 2))
    await _settle()
    quitter.cancel()
    await _settle()
    recorder.gate.set()

    assert await stayer == "a:20"
    assert quitter.cancelled()
    assert recorder.batches == [("a", [1, 2])]


@pytest.mark.parametrize(
    ("value", "on"), [(None, True), ("on", True), ("off", False), ("0", False), ("FALSE", False)]
)
def test_micro_batching_is_on_unless_the_environment_turns_it_off(
    value: str | None, on: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    environ = {"EXCHANGE_HOME": str(tmp_path)}
    if value is not None:
        environ["EXCHANGE_MICRO_BATCHING"] = value
    assert Settings.from_environment(environ).micro_batching is on
