"""Relations load in batches: the number of SQL statements for a page does not grow with
the page size (no N+1)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import event

from exchange.kit.db import Database
from tests.graphql.conftest import Caller, email, new_partner

PAGE = """query($first: Int!) { transactions(first: $first) { edges { node {
  id kind points partner { id name contract { issuePrice } } } } } }"""


async def _statements(api: httpx.AsyncClient, caller: Caller, first: int) -> int:
    engine = api._transport.app.state.database.engine.sync_engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        result = await caller.gql(PAGE, first=first)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(result["data"]["transactions"]["edges"]) == first
    return len(seen)


async def test_a_page_of_50_costs_as_many_statements_as_a_page_of_5(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)
    ref = f"m-{secrets.token_hex(4)}"
    await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    for number in range(50):
        await partner.gql(
            "mutation($k: String!, $r: String!) { earnPoints(input: {idempotencyKey: $k,"
            " memberRef: $r, points: 1}) { userErrors { code } } }",
            k=f"k{number}",
            r=ref,
        )

    small = await _statements(api, partner, 5)
    large = await _statements(api, partner, 50)

    assert large == small
