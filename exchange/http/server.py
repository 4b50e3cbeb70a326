"""Serving details for uvicorn.

With ``--workers``, uvicorn binds the listening socket itself (``proto=0``), and asyncio
then skips TCP_NODELAY on accepted connections; every keep-alive response written in two
parts waits ~40 ms for the client's delayed ACK (Nagle). This protocol sets it on each
connection.
"""

from __future__ import annotations

import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
