"""GraphiQL in a browser: GET /graphql asking for HTML serves it without a token, its
Headers editor prefilled with the Authorization placeholder and its first screen saying
how to get a token."""

from __future__ import annotations

import httpx
import pytest

from exchange.http import graphiql
from exchange.kit.invariant import InvariantViolation
from tests.graphql.conftest import BASE

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_the_ide_prefills_the_authorization_header_and_says_how_to_get_a_token(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/graphql", headers=BROWSER)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '\\"Authorization\\": \\"Bearer <token>\\"' in page  # the Headers editor's JSON
    assert "parameters.headers || DEFAULT_HEADERS" in page
    assert f"BASE={BASE}" in page
    assert 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials' in page
    assert "$BASE/oauth/token" in page
    assert "Welcome to GraphiQL" not in page  # Strawberry's own first screen is replaced


async def test_a_request_for_data_still_needs_a_token(api: httpx.AsyncClient) -> None:
    response = await api.get("/graphql", params={"query": "{ viewer { kind } }"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_server_address_can_not_break_out_of_the_page_script() -> None:
    page = graphiql.page("https://x.example/`${alert(1)}</script><script>alert(2)//")

    assert "</script><script>alert(2)" not in page
    assert "`${alert(1)}" not in page
    assert "\\`\\${alert(1)}\\x3c/script>" in page


def test_a_template_without_the_parts_to_replace_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(graphiql, "get_graphql_ide_html", lambda _: "<html></html>")

    with pytest.raises(InvariantViolation):
        graphiql.page(BASE)
