"""The CPU time a local server spends, read from /proc (Linux), for `exchange bench`.

The server is the process that listens on the bench's port (found through
/proc/net/tcp{,6} and the processes' open sockets) or the process id given, together
with every process below it (uvicorn's workers), minus any PostgreSQL process (an
embedded server started by the exchange is the database's CPU, not the server's).
Children that ended and were waited for count through the parent's ``cutime``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _pids() -> Iterator[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(command name, parent id, CPU clock ticks of the process and its waited children)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return name, int(fields[1]), ticks


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == LISTEN:
                inodes.add(fields[9])
    return inodes


def _holders(inodes: set[str]) -> set[int]:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders: set[int] = set()
    for pid in _pids():
        try:
            descriptors = list((PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in wanted:
                    holders.add(pid)
                    break
            except OSError:
                continue
    return holders


def running(pid: int) -> bool:
    """A process of this id runs on this machine (and /proc shows it)."""
    return pid > 0 and _stat(pid) is not None


def listening_process(port: int) -> int | None:
    """The topmost process holding the socket that listens on ``port`` (uvicorn's
    supervisor when there are workers), or None when no local process does."""
    holders = _holders(_listening_inodes(port))
    if not holders:
        return None
    parents = {pid: stat[1] for pid in holders if (stat := _stat(pid)) is not None}
    roots = sorted(pid for pid, parent in parents.items() if parent not in holders)
    return roots[0] if roots else min(holders)


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user and system) of ``root`` and every process below it, PostgreSQL
    processes and what runs below them excepted."""
    stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None}
    children: dict[int, list[int]] = {}
    for pid, (_name, parent, _ticks) in stats.items():
        children.setdefault(parent, []).append(pid)
    ticks, pending = 0, [root]
    while pending:
        pid = pending.pop()
        stat = stats.get(pid)
        if stat is None or stat[0].startswith(("postgres", "pg_ctl")):
            continue
        ticks += stat[2]
        pending.extend(children.get(pid, ()))
    return ticks / os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """CPU of a local server over a span: :meth:`start`, then :meth:`seconds`."""

    def __init__(self, root: int | None) -> None:
        self.root = root
        self.before = 0.0

    @classmethod
    def find(cls, *, host: str, port: int, pid: int | None) -> ServerCpu:
        """The server given by ``pid``, else the local process listening on ``port`` when
        ``host`` is this machine; not measured (``root`` None) otherwise or off Linux."""
        if pid is not None:
            return cls(pid)
        if host not in LOOPBACK_HOSTS or not (PROC / "net" / "tcp").exists():
            return cls(None)
        return cls(listening_process(port))

    def start(self) -> None:
        if self.root is not None:
            self.before = tree_cpu_seconds(self.root)

    def seconds(self) -> float | None:
        if self.root is None:
            return None
        return max(0.0, tree_cpu_seconds(self.root) - self.before)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU clock ticks of the whole machine since boot (/proc/stat), or
    (0, 0) where there is no /proc: how saturated the machine was during a run."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return 0, 0
    values = [int(value) for value in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)
