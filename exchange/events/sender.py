"""One webhook request: signed by the Standard Webhooks scheme (the ``standardwebhooks``
package), sent to an address checked after resolution (the connection goes to that very
address; TLS still verifies the host's name), no redirect followed, 10 seconds at most,
at most 4 KiB of the answer read. Nothing here logs the secret."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from exchange.events import safety
from exchange.kit.errors import InvalidInput

TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 4096
USER_AGENT = "coalition-exchange-webhooks/1"


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


def signature(secrets: list[str], message_id: str, at: datetime, body: bytes) -> str:
    """The webhook-signature header: one v1 signature per secret in force."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(message_id, at, text) for secret in secrets)


def _pinned(target: safety.Target, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL with the checked address as its host, the Host header, the TLS name."""
    url = target.url
    shown = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = f"{shown}:{target.port}"
    path = url.path or "/"
    pinned = f"{url.scheme}://{netloc}{path}" + (f"?{url.query}" if url.query else "")
    default_port = 443 if url.scheme == "https" else 80
    host = target.host if target.port == default_port else f"{target.host}:{target.port}"
    extensions = {"sni_hostname": target.host} if url.scheme == "https" else {}
    return pinned, {"host": host}, extensions


async def send(
    client: httpx.AsyncClient,
    *,
    url: str,
    message_id: str,
    body: bytes,
    secrets: list[str],
    allow_private: bool,
    now: datetime | None = None,
) -> Outcome:
    at = (now or datetime.now(UTC)).astimezone(UTC)
    try:
        target = await safety.resolve(
            safety.check_url(url, allow_private=allow_private), allow_private=allow_private
        )
    except safety.UnsafeAddress as refused:
        return Outcome(None, f"refused: {refused}")
    except InvalidInput as refused:  # the URL's form (http:// once private is not allowed)
        return Outcome(None, f"refused: {refused.message}")
    pinned, host, extensions = _pinned(target, target.addresses[0])
    headers = {
        **host,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(secrets, message_id, at, body),
    }
    request = client.build_request("POST", pinned, content=body, headers=headers,
                                   extensions=extensions)  # fmt: skip
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            await _read_some(response)
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        return Outcome(None, f"no answer within {TIMEOUT_SECONDS:g} s")
    except httpx.HTTPError as error:
        return Outcome(None, f"{type(error).__name__}: {str(error)[:200]}")
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code)
    return Outcome(response.status_code, f"HTTP {response.status_code}")


async def _read_some(response: httpx.Response) -> bytes:
    """At most MAX_ANSWER_BYTES of the answer (we only need its status)."""
    read = b""
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= MAX_ANSWER_BYTES:
            break
    return read[:MAX_ANSWER_BYTES]


def client() -> httpx.AsyncClient:
    """The HTTP client deliveries share (no redirects, bounded time, no environment
    proxies: a proxy would reach addresses we did not check)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
    )
