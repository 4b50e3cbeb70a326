"""The pepper generated into EXCHANGE_HOME on first use: server processes starting
together on a fresh home (``exchange serve --workers N``) must all end up with the one
key, whole, and none may fail for having lost the race to create it."""

from __future__ import annotations

import multiprocessing
import os
import stat
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from exchange.kit.settings import SECRET_KEY_FILE, Settings

PROCESSES = 8
HOMES = 6


Outcome = tuple[str, bytes | str]


def _start(home: str, barrier: Barrier, results: Queue[Outcome]) -> None:
    settings = Settings.from_environment({"EXCHANGE_HOME": home})
    barrier.wait()
    try:
        results.put(("key", settings.secret_key()))
    except Exception as error:  # what a worker's startup would die of
        results.put(("error", repr(error)))


def test_processes_starting_together_on_a_fresh_home_share_one_whole_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for number in range(HOMES):
        home = tmp_path / f"home-{number}"
        barrier = context.Barrier(PROCESSES)
        results: Queue[Outcome] = context.Queue()
        processes = [
            context.Process(target=_start, args=(str(home), barrier, results))
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        assert [o for o in outcomes if o[0] == "error"] == []
        keys = {value for _, value in outcomes}
        assert len(keys) == 1
        [key] = keys
        assert len(key) == 64  # 48 random bytes, URL-safe base64
        assert stat.S_IMODE((home / SECRET_KEY_FILE).stat().st_mode) == 0o600
        assert [p.name for p in home.iterdir()] == [SECRET_KEY_FILE]  # nothing left behind


def test_a_home_on_a_file_system_without_hard_links_still_gets_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: str, target: Path) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    settings = Settings.from_environment({"EXCHANGE_HOME": str(tmp_path)})
    key = settings.secret_key()
    assert len(key) == 64
    assert settings.secret_key() == key
    assert stat.S_IMODE((tmp_path / SECRET_KEY_FILE).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_KEY_FILE]
