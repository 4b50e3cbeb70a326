"""Settlement over GraphQL: an operator runs and finalizes; a partner reads only its own
statement; nobody else runs anything."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from exchange import ledger
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from graphql_schema import ids
from partners import clients
from tests.graphql.conftest import Caller, new_partner, token_for

RUN = """mutation($from: DateTime!, $to: DateTime!) {
  runSettlement(input: {from: $from, to: $to}) {
    run { id status currency netPositions { party amount } instructions { payer payee amount } }
    userErrors { field code message } } }"""
FINALIZE = """mutation($id: ID!) { finalizeSettlement(input: {runId: $id}) {
  run { status } userErrors { code message } } }"""


async def _operator(db: Database, api: httpx.AsyncClient) -> Caller:
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(
            conn, scopes=["settlement:run", "settlement:read:all"]
        )
    assert created.client_secret is not None
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret)


async def test_an_operator_runs_and_finalizes_and_a_partner_reads_its_statement(
    db: Database, api: httpx.AsyncClient
) -> None:
    from tests.graphql.test_isolation import _partner

    coffee = await _partner(db, api, price=__import__("decimal").Decimal("0.010"))
    operator = await _operator(db, api)
    start = datetime(1701 + secrets.randbelow(90), 6, 1, tzinfo=UTC)
    assert coffee.partner_id is not None
    async with db.transaction(SYSTEM) as conn:
        member = await ledger.open_member(conn)
        await ledger.earn(
            conn,
            client_id="api",
            partner_id=coffee.partner_id,
            request=ledger.EarnRequest(
                idempotency_key=f"s-{start.year}", member_id=member, points=500
            ),
            now=start + timedelta(days=1),
        )
    period = {"from": start.isoformat(), "to": (start + timedelta(days=30)).isoformat()}

    ran = (await operator.gql(RUN, **period))["data"]["runSettlement"]
    by_partner = (await coffee.gql(RUN, **period))["data"]["runSettlement"]
    finalized = (await operator.gql(FINALIZE, id=ran["run"]["id"]))["data"]["finalizeSettlement"]
    statement = await coffee.gql(
        "{ settlementRuns(first: 100) { edges { node { id netPositions { party amount } } } } }"
    )

    assert ran["userErrors"] == []
    assert ran["run"]["status"] == "DRAFT"
    # TERMS: ON_REDEMPTION, so issuing moves no money; nothing was redeemed.
    assert ran["run"]["netPositions"] == []
    assert by_partner["userErrors"][0]["code"] == "FORBIDDEN"
    assert finalized["run"]["status"] == "FINALIZED"
    ids = [e["node"]["id"] for e in statement["data"]["settlementRuns"]["edges"]]
    assert ran["run"]["id"] in ids


async def test_a_future_period_is_a_user_error(db: Database, api: httpx.AsyncClient) -> None:
    operator = await _operator(db, api)

    result = await operator.gql(
        RUN, **{"from": "2026-01-01T00:00:00+00:00", "to": "2999-01-01T00:00:00+00:00"}
    )

    assert result["data"]["runSettlement"]["userErrors"][0]["code"] == "INVALID_INPUT"


async def test_a_partner_without_settlement_read_is_forbidden(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api, scopes="points:earn")

    result = await partner.gql("{ settlementRuns { edges { node { id } } } }")

    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_settlement_currency_outside_iso_4217_is_an_invalid_input_user_error(
    db: Database, api: httpx.AsyncClient
) -> None:
    operator = await _operator(db, api)
    period = '{from: "1700-01-01T00:00:00+00:00", to: "1700-02-01T00:00:00+00:00"'
    currency = f'mutation {{ runSettlement(input: {period}, currency: "XYZ"}})'
    rate = (
        f'mutation {{ runSettlement(input: {period}, currency: "USD",'
        ' rates: [{currency: "XYZ", rate: "1.08"}]})'
    )
    fields = " { run { id } userErrors { field code message } } }"

    by_currency = (await operator.gql(currency + fields))["data"]["runSettlement"]
    by_rate = (await operator.gql(rate + fields))["data"]["runSettlement"]

    assert by_currency["run"] is None
    assert [(e["code"], e["field"]) for e in by_currency["userErrors"]] == [
        ("INVALID_INPUT", ["input", "currency"])
    ]
    assert "ISO 4217" in by_currency["userErrors"][0]["message"]
    assert by_rate["run"] is None
    assert [(e["code"], e["field"]) for e in by_rate["userErrors"]] == [
        ("INVALID_INPUT", ["input", "rates"])
    ]


async def test_finalizing_is_recorded_in_the_audit_log_and_running_is_not(
    db: Database, api: httpx.AsyncClient
) -> None:
    operator = await _operator(db, api)
    start = datetime(1601 + secrets.randbelow(99), 9, 1, tzinfo=UTC)
    period = {"from": start.isoformat(), "to": (start + timedelta(days=30)).isoformat()}
    async with db.transaction(SYSTEM) as conn:
        before = (await conn.execute(sql("SELECT coalesce(max(id), 0) FROM audit_log"))).scalar()

    ran = (await operator.gql(RUN, **period))["data"]["runSettlement"]
    after_run = await _audit_entries_after(db, before)
    finalized = (await operator.gql(FINALIZE, id=ran["run"]["id"]))["data"]["finalizeSettlement"]
    again = (await operator.gql(FINALIZE, id=ran["run"]["id"]))["data"]["finalizeSettlement"]
    entries = await _audit_entries_after(db, before)

    run_id = ids.decode_as(ran["run"]["id"], "SettlementRun")
    assert finalized["userErrors"] == []
    assert again["userErrors"][0]["code"] == "PERIOD_CLOSED"  # refused: nothing recorded
    assert after_run == []
    assert [(e.actor, e.origin, e.action, e.subject) for e in entries] == [
        (operator.client_id, "127.0.0.1", "settlement.finalized", f"settlement_run:{run_id}")
    ]
    assert entries[0].details["periodFrom"] == start.isoformat()


async def _audit_entries_after(db: Database, last_id: int) -> list[Any]:
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql(
                "SELECT actor, origin, action, subject, details FROM audit_log"
                " WHERE id > :last ORDER BY id"
            ),
            {"last": last_id},
        )
        return list(result.all())
