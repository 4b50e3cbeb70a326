"""The webhook sender's HTTP/1.1 connections, against real servers on loopback: kept
alive and reused, replaced when the peer closed one while idle, closed after an answer
too long to read, TLS verifying the host's name, and a request line the URL's odd
characters cannot break."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exchange.events import sender
from exchange.events.connections import Connections, Destination

HEAD = b"POST /hook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\n\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


@dataclass
class Peer:
    """A raw HTTP/1.1 server: counts connections, records request heads, answers each
    request with ``answer`` and closes after ``close_after`` requests on a connection."""

    answer: bytes = NO_CONTENT
    close_after: int | None = None
    #: after this many answers on a connection, read the next request and close unanswered
    drop_after: int | None = None
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while self.close_after is None or served < self.close_after:
                head = await reader.readuntil(b"\r\n\r\n")
                if served == self.drop_after:
                    break
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                self.heads.append(head)
                writer.write(self.answer)
                await writer.drain()
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Serve = Callable[[Peer, ssl.SSLContext | None], Awaitable[Peer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(peer: Peer, tls: ssl.SSLContext | None = None) -> Peer:
        server = await asyncio.start_server(peer.handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        peer.port = server.sockets[0].getsockname()[1]
        return peer

    yield start
    for server in servers:
        server.close()


def _plain(peer: Peer) -> Destination:
    return Destination("127.0.0.1", peer.port, None)


async def test_a_connection_is_kept_alive_and_reused(serve: Serve) -> None:
    peer = await serve(Peer(), None)
    connections = Connections()

    statuses = [await connections.post(_plain(peer), HEAD, b"{}") for _ in range(5)]

    assert statuses == [204] * 5
    assert peer.connections == 1
    await connections.close()


async def test_a_connection_the_peer_closed_while_idle_is_replaced(serve: Serve) -> None:
    peer = await serve(Peer(close_after=1), None)
    connections = Connections()

    first = await connections.post(_plain(peer), HEAD, b"{}")
    await asyncio.sleep(0.05)  # the peer has closed it by now
    second = await connections.post(_plain(peer), HEAD, b"{}")

    assert (first, second) == (204, 204)
    assert peer.connections == 2
    await connections.close()


async def test_a_kept_connection_that_fails_before_any_answer_is_replaced_once(
    serve: Serve,
) -> None:
    peer = await serve(Peer(drop_after=1), None)
    connections = Connections()

    statuses = [await connections.post(_plain(peer), HEAD, b"{}") for _ in range(2)]

    assert statuses == [204, 204]
    assert peer.connections == 2
    assert len(peer.heads) == 2
    await connections.close()


async def test_an_answer_too_long_to_read_closes_the_connection(serve: Serve) -> None:
    body = b"x" * 10_000
    peer = await serve(
        Peer(answer=b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)),
        None,
    )
    connections = Connections()

    statuses = [await connections.post(_plain(peer), HEAD, b"{}") for _ in range(2)]

    assert statuses == [500, 500]
    assert peer.connections == 2  # the unread body made the first unusable
    await connections.close()


def _certificate(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for "localhost": the server's context, and a client
    context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_tls_verifies_the_host_name_not_the_address(serve: Serve, tmp_path: Path) -> None:
    server_tls, client_tls = _certificate(tmp_path)
    peer = await serve(Peer(), server_tls)
    connections = Connections(tls=client_tls)

    status = await connections.post(Destination("127.0.0.1", peer.port, "localhost"), HEAD, b"{}")
    with pytest.raises(ssl.SSLCertVerificationError):
        await connections.post(Destination("127.0.0.1", peer.port, "evil.example"), HEAD, b"{}")

    assert status == 204
    await connections.close()


async def test_the_request_line_carries_the_urls_odd_characters_encoded(serve: Serve) -> None:
    peer = await serve(Peer(), None)
    connections = Connections()

    outcome = await sender.send(
        connections,
        url=f"http://127.0.0.1:{peer.port}/a b/ü?x=1 2&y=ok",
        message_id="msg_1",
        body=b"{}",
        signers=sender.signers(["whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]),
        allow_private=True,
    )

    assert outcome.delivered
    request_line = peer.heads[0].split(b"\r\n")[0]
    assert request_line == b"POST /a%20b/%C3%BC?x=1%202&y=ok HTTP/1.1"
    assert f"host: 127.0.0.1:{peer.port}".encode() in peer.heads[0]
    await connections.close()
