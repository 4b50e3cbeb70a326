"""Serving details for uvicorn: the event loop and the HTTP parser ``exchange serve`` uses.

uvloop (libuv) and httptools (the C parser of llhttp) instead of asyncio's default loop
and h11, the pure-Python parser: they cost a worker less CPU per request
(docs/performance.md, "Performance II"; decision 0019).

With ``--workers``, uvicorn binds the listening socket itself (``proto=0``), and asyncio
then skips TCP_NODELAY on accepted connections; every keep-alive response written in two
parts waits ~40 ms for the client's delayed ACK (Nagle). The protocols here set it on
each connection, whatever the loop does.
"""

from __future__ import annotations

import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _no_delay(transport: Any) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with TCP_NODELAY on every connection: what ``exchange serve`` runs."""

    def connection_made(self, transport: Any) -> None:
        _no_delay(transport)
        super().connection_made(transport)


class NoDelayH11Protocol(H11Protocol):
    """h11, with TCP_NODELAY on every connection (the pure-Python parser, for a platform
    without httptools' wheels and to measure what httptools brings)."""

    def connection_made(self, transport: Any) -> None:
        _no_delay(transport)
        super().connection_made(transport)


#: ``exchange serve --http``: the protocol class of each parser.
PROTOCOLS: dict[str, type[HttpToolsProtocol | H11Protocol]] = {
    "httptools": NoDelayHttpToolsProtocol,
    "h11": NoDelayH11Protocol,
}
