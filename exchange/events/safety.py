"""Where a webhook may go: https only, and never to a loopback, private, link-local,
shared, multicast, reserved or metadata address (server-side request forgery), checked
when an endpoint is made and again at each delivery, after DNS resolution, on the very
addresses the connection then uses (a name that later resolves elsewhere cannot steer a
delivery inside). ``allow_private`` (EXCHANGE_WEBHOOK_ALLOW_PRIVATE) lifts both rules,
for development and tests."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

from exchange.kit import limits
from exchange.kit.errors import InvalidInput

MAX_URL_LENGTH = limits.MAX_WEBHOOK_URL_LENGTH
#: Carrier-grade NAT space: not "private" to the ipaddress module, not public either.
SHARED = ipaddress.ip_network("100.64.0.0/10")


class UnsafeAddress(Exception):
    """A delivery's host resolved to an address it must not reach (or none)."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to, in the resolver's order."""

    url: SplitResult
    host: str
    port: int
    addresses: tuple[str, ...]


def public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip in SHARED
    )


def check_url(url: object, *, allow_private: bool, field: str = "url") -> SplitResult:
    """The URL's form: https (http too when private addresses are allowed), a host, no
    user or password in it, at most MAX_URL_LENGTH characters."""
    text = limits.text(url, field, max_length=MAX_URL_LENGTH)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidInput(f"{field} is not a URL", field=[field]) from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise InvalidInput(f"{field} must be an https:// URL", field=[field])
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{field} must name a host and no user or password", field=[field])
    if port == 0:
        raise InvalidInput(f"{field} has no usable port", field=[field])
    return parts


@lru_cache(maxsize=1024)
def url_form(url: str, *, allow_private: bool) -> SplitResult:
    """:func:`check_url` of a stored endpoint URL, remembered (a delivery checks its
    endpoint's URL each time; a refusal is raised again, not remembered)."""
    return check_url(url, allow_private=allow_private)


async def resolve(url: SplitResult, *, allow_private: bool) -> Target:
    """The host's addresses, every one of them public unless private ones are allowed;
    :class:`UnsafeAddress` otherwise (or when the name does not resolve). An address
    written in the URL is its own resolution (no resolver call, the same check)."""
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = _literal(host) or await _lookup(host, port)
    if not allow_private and not all(public(address) for address in addresses):
        raise UnsafeAddress(f"{host} resolves to an address webhooks may not reach")
    return Target(url, host, port, addresses)


def _literal(host: str) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        return ()


async def _lookup(host: str, port: int) -> tuple[str, ...]:
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise UnsafeAddress(f"{host} does not resolve") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise UnsafeAddress(f"{host} does not resolve")
    return addresses


class Resolutions:
    """Checked resolutions, each kept ``seconds`` (a burst of deliveries to one host asks
    the resolver once, not once per event, through a thread each time). Only what passed
    the check is kept, and the connection goes to that very address, so a name that
    resolves elsewhere later (rebinding) is checked again once its entry has gone."""

    def __init__(self, seconds: float = 5.0, *, most: int = 1000) -> None:
        self.seconds = seconds
        self.most = most
        self._kept: dict[tuple[str, str, int, bool], tuple[float, Target]] = {}

    async def resolve(self, url: SplitResult, *, allow_private: bool) -> Target:
        key = (url.scheme, url.hostname or "", url.port or 0, allow_private)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < self.seconds:
            return replace(kept[1], url=url)
        target = await resolve(url, allow_private=allow_private)
        if len(self._kept) >= self.most:
            self._kept.clear()
        self._kept[key] = (now, target)
        return target


async def checked(url: object, *, allow_private: bool) -> str:
    """A new endpoint's URL, refused (INVALID_INPUT on url) unless webhooks may reach it."""
    parts = check_url(url, allow_private=allow_private)
    try:
        await resolve(parts, allow_private=allow_private)
    except UnsafeAddress as unsafe:
        raise InvalidInput(f"url: {unsafe}", field=["url"]) from None
    return parts.geturl()
