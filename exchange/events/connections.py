"""The few HTTP/1.1 a webhook needs, on asyncio streams: POST a small body to an address
we checked, read the status, keep the connection for the next event when the answer
allows it (decision 0017, "Sending").

Why not a general client: a delivery needs no redirects, cookies, proxies, HTTP/2,
decompression or streaming, and must connect to the very address the SSRF check
resolved; a general client's pool did more work per request (a readiness probe of every
pooled connection each time) than the rest of a delivery together. What remains is
small: one request written in one go, the status line and headers read under a size
limit, a short body consumed so the connection can be reused, anything else closed.
TLS verifies the host's name (``server_hostname``) against the default trust store.
The caller bounds the time (``asyncio.timeout``); a connection that was interrupted is
closed, never reused."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict, deque
from dataclasses import dataclass

#: At most this much of an answer's head (status line and headers) is read.
MAX_HEAD_BYTES = 16 * 1024
#: A body up to this size is read (and the connection kept); a longer one closes it.
MAX_BODY_BYTES = 4096
#: An idle connection older than this is closed rather than reused.
IDLE_SECONDS = 30.0


class ProtocolError(Exception):
    """The answer is not HTTP/1.x we can read (or the connection closed early)."""


@dataclass(frozen=True)
class Destination:
    """Where a request goes: the checked address, its port, and for https the name TLS
    must verify (also sent as SNI)."""

    address: str
    port: int
    tls_name: str | None


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and now - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass(frozen=True)
class _Head:
    status: int
    keep_alive: bool
    length: int | None  # None: no Content-Length (chunked, or until close)


class Connections:
    """Keep-alive connections per destination, at most ``idle_per_destination`` kept."""

    def __init__(
        self, *, idle_per_destination: int = 16, tls: ssl.SSLContext | None = None
    ) -> None:
        self.idle_per_destination = idle_per_destination
        self._tls = tls
        self.idle: defaultdict[Destination, deque[_Connection]] = defaultdict(deque)

    @property
    def tls(self) -> ssl.SSLContext:
        """The TLS context, made at the first https connection: loading the default trust
        store takes some 50 ms of CPU, which plain-http receivers (development, the
        bench) need not pay."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def post(self, destination: Destination, head: bytes, body: bytes) -> int:
        """Send ``head`` (request line and headers, ending in a blank line) and ``body``;
        the answer's status. A reused connection the peer had closed meanwhile is
        replaced once (nothing of the answer was read, so nothing was lost)."""
        connection = self._reusable(destination)
        if connection is not None:
            try:
                return await self._exchange(destination, connection, head + body)
            except (ConnectionError, asyncio.IncompleteReadError, ProtocolError):
                pass  # closed by the peer while idle: once more on a new connection
        connection = await self._open(destination)
        return await self._exchange(destination, connection, head + body)

    async def close(self) -> None:
        for queue in self.idle.values():
            while queue:
                queue.popleft().close()
        self.idle.clear()

    def _reusable(self, destination: Destination) -> _Connection | None:
        queue = self.idle.get(destination)
        now = time.monotonic()
        while queue:
            connection = queue.pop()
            if connection.usable(now):
                return connection
            connection.close()
        return None

    async def _open(self, destination: Destination) -> _Connection:
        if destination.tls_name is None:
            reader, writer = await asyncio.open_connection(
                destination.address, destination.port, limit=MAX_HEAD_BYTES
            )
        else:
            reader, writer = await asyncio.open_connection(
                destination.address,
                destination.port,
                ssl=self.tls,
                server_hostname=destination.tls_name,
                limit=MAX_HEAD_BYTES,
            )
        return _Connection(reader, writer)

    async def _exchange(
        self, destination: Destination, connection: _Connection, data: bytes
    ) -> int:
        kept = False
        try:
            connection.writer.write(data)
            await connection.writer.drain()
            head = await _read_head(connection.reader)
            if head.keep_alive and head.length is not None and head.length <= MAX_BODY_BYTES:
                if head.length:
                    await connection.reader.readexactly(head.length)
                kept = self._keep(destination, connection)
            return head.status
        finally:
            if not kept:
                connection.close()

    def _keep(self, destination: Destination, connection: _Connection) -> bool:
        queue = self.idle[destination]
        if len(queue) >= self.idle_per_destination:
            return False
        connection.idle_since = time.monotonic()
        queue.append(connection)
        return True


async def _read_head(reader: asyncio.StreamReader) -> _Head:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ProtocolError("the answer's headers are too long") from None
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError("the answer is not HTTP/1.x")
    status = int(code)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip().lower()
    keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "")
    length: int | None = None
    if status in (204, 304):
        length = 0
    elif "transfer-encoding" not in headers and headers.get("content-length", "").isdigit():
        length = int(headers["content-length"])
    return _Head(status, keep_alive, length)
