"""One webhook request: signed by the Standard Webhooks scheme (the ``standardwebhooks``
package), sent to an address checked after resolution (the connection goes to that very
address; TLS still verifies the host's name), no redirect followed (only the status
counts), 10 seconds at most (the deliverer's limit), at most 4 KiB of an answer's body
read (exchange.events.connections). Nothing here logs the secret."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from standardwebhooks import Webhook

from exchange.events import safety
from exchange.events.connections import Connections, Destination, ProtocolError
from exchange.kit.errors import InvalidInput

TIMEOUT_SECONDS = 10.0
USER_AGENT = "coalition-exchange-webhooks/1"
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_HOST_SAFE = "[]:-._~"


@dataclass(frozen=True)
class Outcome:
    """2xx: delivered. ``status`` None: no answer (``error`` says why)."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver asks us to stop (the endpoint is disabled)."""
        return self.status == 410


def signers(secrets: Sequence[str]) -> tuple[Webhook, ...]:
    """A signer per secret in force (``standardwebhooks``; built once per endpoint and
    round, not per event)."""
    return tuple(Webhook(secret) for secret in secrets)


def signature(signers: Sequence[Webhook], message_id: str, at: datetime, body: bytes) -> str:
    """The webhook-signature header: one v1 signature per secret in force."""
    text = body.decode()
    return " ".join(signer.sign(message_id, at, text) for signer in signers)


def _request_head(
    target: safety.Target, message_id: str, at: datetime, signed: str, size: int
) -> bytes:
    """The request line and headers: the path as the URL gives it (anything a request
    line can't carry percent-encoded), the Host header as the URL names it."""
    url = target.url
    path = quote(url.path or "/", safe=_PATH_SAFE) + (
        "?" + quote(url.query, safe=_PATH_SAFE + "?") if url.query else ""
    )
    default_port = 443 if url.scheme == "https" else 80
    host = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and target.port == default_port:
        host = f"[{target.host}]"
    elif ":" in target.host:
        host = f"[{target.host}]:{target.port}"
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {quote(host, safe=_HOST_SAFE)}",
        "content-type: application/json",
        f"content-length: {size}",
        f"user-agent: {USER_AGENT}",
        f"webhook-id: {message_id}",
        f"webhook-timestamp: {int(at.timestamp())}",
        f"webhook-signature: {signed}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def send(
    connections: Connections,
    *,
    url: str,
    message_id: str,
    body: bytes,
    signers: Sequence[Webhook],
    allow_private: bool,
    now: datetime | None = None,
    resolutions: safety.Resolutions | None = None,
) -> Outcome:
    """Check the URL and its addresses again, then POST the signed event to the first
    address (the connection goes to that very address; TLS verifies the host's name).
    ``resolutions`` keeps a checked resolution for a few seconds (the deliverer's);
    without it the host is resolved now. The caller bounds the time."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    resolve = resolutions.resolve if resolutions is not None else safety.resolve
    try:
        target = await resolve(
            safety.url_form(url, allow_private=allow_private), allow_private=allow_private
        )
    except safety.UnsafeAddress as refused:
        return Outcome(None, f"refused: {refused}")
    except InvalidInput as refused:  # the URL's form (http:// once private is not allowed)
        return Outcome(None, f"refused: {refused.message}")
    destination = Destination(
        target.addresses[0], target.port, target.host if target.url.scheme == "https" else None
    )
    head = _request_head(
        target, message_id, at, signature(signers, message_id, at, body), len(body)
    )
    try:
        status = await connections.post(destination, head, body)
    except ssl.SSLError as error:
        return Outcome(None, f"TLS: {str(error)[:200]}")
    except (OSError, asyncio.IncompleteReadError, ProtocolError) as error:
        return Outcome(None, f"{type(error).__name__}: {str(error)[:200]}")
    if 200 <= status < 300:
        return Outcome(status)
    return Outcome(status, f"HTTP {status}")


def connections() -> Connections:
    """The connections deliveries share (no proxies: a proxy would reach addresses we
    did not check)."""
    return Connections()
