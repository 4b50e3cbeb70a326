"""`exchange bench` reads a local server's CPU from /proc: the process that listens on
the port, and every process below it (uvicorn's workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange.devtools.server_cpu import ServerCpu, listening_process, tree_cpu_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")

#: A parent that starts a child burning ``seconds`` of CPU, then both wait.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import time
end = time.process_time() + float(__import__("sys").argv[1])
while time.process_time() < end:
    pass
print("burnt", flush=True)
time.sleep(60)
''', sys.argv[1]], stdout=sys.stdout)
time.sleep(60)
"""

#: A process that listens on a port it prints, then waits.
LISTENER = """
import socket, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
time.sleep(60)
"""


def _start(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own: _stop ends its child with it
    )


def _stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def test_the_cpu_of_a_worker_below_the_server_counts_as_the_servers() -> None:
    parent = _start(PARENT, "0.6")
    try:
        before = tree_cpu_seconds(parent.pid)
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "burnt"
        spent = tree_cpu_seconds(parent.pid) - before
    finally:
        _stop(parent)

    assert spent >= 0.5  # the child's burn; the parent itself only sleeps


def test_the_server_is_the_local_process_listening_on_the_port() -> None:
    listener = _start(LISTENER)
    try:
        assert listener.stdout is not None
        port = int(listener.stdout.readline())
        found = listening_process(port)
        measured = ServerCpu.find(host="127.0.0.1", port=port, pid=None)
        remote = ServerCpu.find(host="example.org", port=port, pid=None)
    finally:
        _stop(listener)

    assert found == listener.pid
    assert measured.root == listener.pid
    assert remote.root is None
    assert remote.seconds() is None


def test_a_port_nobody_listens_on_has_no_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])  # bound, not listening

    assert listening_process(port) is None


def test_work_done_before_the_span_starts_is_not_counted() -> None:
    parent = _start(PARENT, "0.6")
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "burnt"
        server = ServerCpu(parent.pid)
        server.start()
        time.sleep(0.1)
        spent = server.seconds()
    finally:
        _stop(parent)

    assert spent is not None
    assert 0 <= spent < 0.3
