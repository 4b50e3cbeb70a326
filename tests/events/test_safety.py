"""Where a delivery may go, as the deliverer resolves it: an address written in the URL
is checked without asking a resolver; a name's checked resolution is kept for a few
seconds (then asked again, so a name that resolves elsewhere later is checked again);
a refused one is not kept. The real resolver answers; the test only counts its calls."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest

from exchange.events import safety


@pytest.fixture
async def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names the event loop's resolver is asked for (it still answers)."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    asked: list[str] = []

    async def counted(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counted)
    return asked


async def test_an_address_in_the_url_is_checked_without_a_lookup(lookups: list[str]) -> None:
    found = await safety.resolve(urlsplit("http://127.0.0.1:8080/hook"), allow_private=True)
    for refused in ("https://127.0.0.1/", "https://[::ffff:10.0.0.1]/", "https://169.254.169.254/"):
        with pytest.raises(safety.UnsafeAddress):
            await safety.resolve(urlsplit(refused), allow_private=False)

    assert (found.addresses, found.port) == (("127.0.0.1",), 8080)
    assert lookups == []


async def test_a_names_checked_resolution_is_kept_for_seconds_then_asked_again(
    lookups: list[str],
) -> None:
    kept = safety.Resolutions(seconds=60)
    first = await kept.resolve(urlsplit("http://localhost:8080/a"), allow_private=True)
    second = await kept.resolve(urlsplit("http://localhost:8080/b?x=1"), allow_private=True)
    other_port = await kept.resolve(urlsplit("http://localhost:9090/a"), allow_private=True)
    brief = safety.Resolutions(seconds=0)
    for _ in range(2):
        await brief.resolve(urlsplit("http://localhost:8080/a"), allow_private=True)

    assert lookups == ["localhost"] * 4  # 8080 once, 9090 once, then twice when not kept
    assert second.addresses == first.addresses
    assert (second.url.path, second.url.query, other_port.port) == ("/b", "x=1", 9090)


async def test_a_refused_resolution_is_not_kept(lookups: list[str]) -> None:
    kept = safety.Resolutions(seconds=60)
    for _ in range(2):
        with pytest.raises(safety.UnsafeAddress):
            await kept.resolve(urlsplit("https://localhost/hook"), allow_private=False)

    assert lookups == ["localhost", "localhost"]
