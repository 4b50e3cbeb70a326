"""What the schema fuzzer (test_fuzz.py) found, each held by a test of its own: the input
that failed inside the server, and the clear answer it gets now."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from exchange.kit.db import Database
from tests.graphql.conftest import new_operator

CHANGE_CONTRACT = """mutation {{ changeContract(input: {{partnerId: "UGFydG5lcjox",
  effectiveFrom: "2100-01-01T00:00:00+00:00", creditLimitPoints: {literal}}}) {{
  userErrors {{ code }} }} }}"""


def _no_internal_error(result: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = result.get("errors") or []
    for error in errors:
        assert not error["message"].startswith("Unexpected error"), error
        assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR", error
    return errors


@pytest.mark.parametrize("literal", ['"abc"', '"٣"', '"--5"', f'"{"9" * 5000}"', "true"])
async def test_a_bigint_that_is_no_64_bit_integer_is_refused_as_the_clients_mistake(
    db: Database, api: httpx.AsyncClient, literal: str
) -> None:
    """Found: a BigInt literal that is not an integer (``creditLimitPoints: "abc"``) was
    a masked "Unexpected error": the scalar raised a ValueError, which the schema treats
    as a bug of ours. Non-ASCII digits were read as digits."""
    operator = await new_operator(db, api)
    as_literal = await api.post(
        "/graphql",
        json={"query": CHANGE_CONTRACT.format(literal=literal)},
        headers={"Authorization": f"Bearer {operator.token}"},
    )
    as_variable = await api.post(
        "/graphql",
        json={
            "query": CHANGE_CONTRACT.format(literal="$v").replace(
                "mutation", "mutation($v: BigInt)"
            ),
            "variables": {"v": literal.strip('"') if literal != "true" else True},
        },
        headers={"Authorization": f"Bearer {operator.token}"},
    )

    for response in (as_literal, as_variable):
        assert response.status_code == 200, response.text
        errors = _no_internal_error(response.json())
        assert len(errors) == 1
        assert "BigInt must be" in errors[0]["message"]
        assert response.json().get("data") is None  # refused before anything ran
