"""A wallet or back-office page in a browser calling the API from another origin (CORS):
the origins EXCHANGE_CORS_ORIGINS names get the preflight and the headers a GraphQL
client needs; any other origin gets no CORS headers at all; unset, nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from exchange.app import create_app
from exchange.kit.db import Database
from exchange.kit.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, new_partner

WALLET = "https://wallet.example"
ELSEWHERE = "https://elsewhere.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}
QUERY = {"query": "{ viewer { kind } }"}


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture(scope="module")
async def browser_api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with EXCHANGE_CORS_ORIGINS naming the wallet's origin (and another)."""
    settings = Settings.from_environment(
        {
            "EXCHANGE_HOME": str(tmp_path_factory.mktemp("cors")),
            "DATABASE_URL": database_url,
            "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
            "EXCHANGE_PUBLIC_URL": BASE,
            "EXCHANGE_CORS_ORIGINS": f" {WALLET}, http://localhost:3000",
        }
    )
    app = create_app(settings, sweep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def test_a_preflight_from_a_named_origin_is_allowed_with_what_a_graphql_client_sends(
    browser_api: httpx.AsyncClient,
) -> None:
    response = await browser_api.options("/graphql", headers={"Origin": WALLET, **PREFLIGHT})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == WALLET
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "OPTIONS"}
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type"} <= {h.strip() for h in allowed.split(",")}
    assert "Origin" in response.headers["vary"]


async def test_the_call_after_the_preflight_carries_the_origin_and_readable_headers(
    db: Database, api: httpx.AsyncClient, browser_api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)

    response = await browser_api.post(
        "/graphql",
        json=QUERY,
        headers={"Origin": WALLET, "Authorization": f"Bearer {partner.token}"},
    )

    assert response.status_code == 200
    assert response.json()["data"] == {"viewer": {"kind": "PARTNER"}}
    assert response.headers["access-control-allow-origin"] == WALLET
    exposed = response.headers["access-control-expose-headers"]
    assert {h.strip() for h in exposed.split(",")} == {"Retry-After", "WWW-Authenticate"}


async def test_a_body_refused_before_graphql_still_reaches_the_named_origin_readably(
    browser_api: httpx.AsyncClient,
) -> None:
    response = await browser_api.post(
        "/graphql",
        content=b"{ viewer { kind } }",
        headers={"Origin": WALLET, "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert response.headers["access-control-allow-origin"] == WALLET


async def test_a_preflight_for_a_header_we_do_not_allow_is_refused_in_json(
    browser_api: httpx.AsyncClient,
) -> None:
    response = await browser_api.options(
        "/graphql",
        headers={
            "Origin": WALLET,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-custom",
        },
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "headers" in response.json()["errors"][0]["message"]


async def test_another_origin_gets_no_cors_headers_at_all(
    db: Database, api: httpx.AsyncClient, browser_api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)

    preflight = await browser_api.options("/graphql", headers={"Origin": ELSEWHERE, **PREFLIGHT})
    call = await browser_api.post(
        "/graphql",
        json=QUERY,
        headers={"Origin": ELSEWHERE, "Authorization": f"Bearer {partner.token}"},
    )

    assert preflight.status_code == 405  # as if CORS were off
    assert _cors_headers(preflight) == {}
    assert call.status_code == 200
    assert _cors_headers(call) == {}
    assert "Origin" in call.headers["vary"]  # no cache gives this answer to a named origin


async def test_without_the_setting_nothing_changes(db: Database, api: httpx.AsyncClient) -> None:
    partner = await new_partner(db, api)

    preflight = await api.options("/graphql", headers={"Origin": WALLET, **PREFLIGHT})
    call = await api.post(
        "/graphql",
        json=QUERY,
        headers={"Origin": WALLET, "Authorization": f"Bearer {partner.token}"},
    )

    assert preflight.status_code == 405
    assert _cors_headers(preflight) == {}
    assert call.status_code == 200
    assert _cors_headers(call) == {}
    assert "vary" not in call.headers


@pytest.mark.parametrize(
    "value",
    ["*", "wallet.example", "https://wallet.example/", "https://wallet.example/app",
     "ftp://wallet.example", "https://user@wallet.example", "https://wallet.example:99999"],
)  # fmt: skip
def test_a_setting_that_names_no_origin_is_refused_by_name(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="EXCHANGE_CORS_ORIGINS") as refused:
        Settings.from_environment({"EXCHANGE_HOME": str(tmp_path), "EXCHANGE_CORS_ORIGINS": value})

    assert repr(value) in str(refused.value)


def test_origins_are_read_as_a_browser_sends_them(tmp_path: Path) -> None:
    settings = Settings.from_environment(
        {
            "EXCHANGE_HOME": str(tmp_path),
            "EXCHANGE_CORS_ORIGINS": "https://Wallet.Example:443, http://localhost:3000,,",
        }
    )

    assert settings.cors_origins == ("https://wallet.example", "http://localhost:3000")
    assert Settings.from_environment({"EXCHANGE_HOME": str(tmp_path)}).cors_origins == ()
