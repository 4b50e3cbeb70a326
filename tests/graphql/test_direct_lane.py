"""The direct lane (graphql_schema.direct) answers a hot mutation exactly as the executor
does: each case sends one document the lane takes and its twin the lane can't take (the
same with ``@include(if: true)`` on the root field, which changes nothing of the answer)
over HTTP with a real token, and the two answers must be the same, status and body."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
import strawberry
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.types.arguments import convert_arguments

from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from exchange.usecases import points as point_cases
from exchange.usecases.core import Call, UseCase
from graphql_schema import direct
from graphql_schema.schema import schema
from tests.graphql.conftest import Caller, email, new_partner
from tests.graphql.test_server_log import SCHEMA_LOGGER, ServerLog, server_log

__all__ = ["server_log"]  # the fixture, used below

LINK = """mutation($ref: String!, $email: String) {
  linkMember(input: {memberRef: $ref, email: $email}) { userErrors { code } } }"""
EARN = """mutation Earn($key: String!, $ref: String!, $points: Int!) {
  earned: earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points}) %s {
    transaction { id kind points reference createdAt __typename }
    userErrors { field code message } } }"""
REDEEM = """mutation($key: String!, $ref: String!, $points: Int!) {
  redeemPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points}) %s {
    transaction { id kind points } userErrors { field code message } } }"""
FORCED = "@include(if: true)"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def key() -> str:
    return secrets.token_hex(8)


async def post(caller: Caller, query: str, accept: str, **variables: Any) -> httpx.Response:
    return await caller.api.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {caller.token}", "Accept": accept},
    )


def comparable(response: httpx.Response) -> tuple[int, str, Any]:
    """Status, media type and body, without what differs between any two calls: the new
    transaction's id and time, and the points left in the caller's bucket."""
    body = response.json()
    for payload in (body.get("data") or {}).values():
        transaction = (payload or {}).get("transaction")
        if transaction:
            transaction["id"], transaction["createdAt"] = "<id>", "<time>"
    cost = (body.get("extensions") or {}).get("cost")
    if cost:
        cost["throttleStatus"].pop("currentlyAvailable")
    return response.status_code, response.headers["content-type"], body


async def both_ways(caller: Caller, document: str, accept: str, **variables: Any) -> Any:
    """The answers of the lane and of the executor to one request, which must agree."""
    lane, executor = document % "", document % FORCED
    assert direct.plan_of(lane, None) is not None
    assert direct.plan_of(executor, None) is None
    first = await post(caller, lane, accept, **variables)
    if "key" in variables:
        variables = {**variables, "key": key()}
    second = await post(caller, executor, accept, **variables)
    assert comparable(first) == comparable(second)
    return first.json()


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


async def linked(partner: Caller) -> str:
    ref = f"cust-{secrets.token_hex(4)}"
    answer = await partner.gql(LINK, ref=ref, email=email())
    assert answer["data"]["linkMember"]["userErrors"] == []
    return ref


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_an_earn_a_redemption_and_their_refusals_answer_the_same(
    partner: Caller, accept: str
) -> None:
    ref = await linked(partner)
    earned = await both_ways(partner, EARN, accept, key=key(), ref=ref, points=500)
    assert earned["data"]["earned"]["transaction"]["kind"] == "EARN"
    assert earned["data"]["earned"]["transaction"]["__typename"] == "Transaction"
    redeemed = await both_ways(partner, REDEEM, accept, key=key(), ref=ref, points=100)
    assert redeemed["data"]["redeemPoints"]["transaction"]["points"] == "100"

    too_many = await both_ways(partner, REDEEM, accept, key=key(), ref=ref, points=10**6)
    assert too_many["data"]["redeemPoints"]["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    unknown = await both_ways(partner, EARN, accept, key=key(), ref="nobody-here", points=5)
    assert unknown["data"]["earned"]["userErrors"][0]["code"] == "MEMBER_NOT_LINKED"
    zero = await both_ways(partner, EARN, accept, key=key(), ref=ref, points=0)
    assert zero["data"]["earned"]["userErrors"][0]["field"] == ["input", "points"]


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_a_variable_the_schema_refuses_is_answered_by_the_executor(
    partner: Caller, accept: str
) -> None:
    ref = await linked(partner)
    refused = await both_ways(partner, EARN, accept, key=key(), ref=ref, points="many")
    assert "data" not in refused or refused["data"] is None
    assert "$points" in refused["errors"][0]["message"]
    missing = await both_ways(partner, EARN, accept, ref=ref, points=5)
    assert "$key" in missing["errors"][0]["message"]


async def test_a_key_first_used_by_the_executor_replays_through_the_lane(
    partner: Caller,
) -> None:
    ref, same_key = await linked(partner), key()
    first = await post(partner, EARN % FORCED, "application/json", key=same_key, ref=ref, points=7)
    again = await post(partner, EARN % "", "application/json", key=same_key, ref=ref, points=7)
    original = first.json()["data"]["earned"]["transaction"]
    assert again.json()["data"]["earned"]["transaction"]["id"] == original["id"]


async def test_an_unexpected_error_is_masked_and_logged_once_as_the_executor_does(
    partner: Caller, server_log: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = await linked(partner)

    async def boom(call: Call, request: Any) -> None:
        raise RuntimeError("a bug in the earn")

    original = point_cases.earn_points
    monkeypatch.setattr(point_cases, "earn_points", UseCase(original.name, original.permits, boom))
    captured = server_log("text")

    response = await post(partner, EARN % "", "application/json", key=key(), ref=ref, points=5)

    body, request_id = response.json(), response.headers["x-request-id"]
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": request_id,
    }
    assert body["errors"][0]["path"] == ["earned"]
    assert "a bug" not in response.text
    lines = [line for line in captured.getvalue().splitlines() if SCHEMA_LOGGER in line]
    assert len(lines) == 1, captured.getvalue()
    assert f"ERROR {SCHEMA_LOGGER} [request {request_id}] unexpected error at earned" in lines[0]
    assert "RuntimeError: a bug in the earn" in captured.getvalue()


async def test_a_client_whose_budget_is_spent_is_throttled_the_same_way(
    db: Database, partner: Caller, server_log: ServerLog
) -> None:
    # The client's query-cost bucket, full for the next hour (its first request leases
    # from it, and nothing can be leased).
    async with db.transaction(SYSTEM) as conn:
        await conn.execute(
            sql(
                "INSERT INTO limit_bucket (name, client_id, level, granted, updated_at)"
                " VALUES (:name, :client, 20000, 0, now() + interval '1 hour')"
            ),
            {"name": f"cost:{partner.client_id}", "client": partner.client_id},
        )
    captured = server_log("text")

    answers = [
        (await post(partner, EARN % forced, "application/json", key=key(), ref="r", points=5))
        for forced in ("", FORCED)
    ]

    lane, executor = (answer.json() for answer in answers)
    for body in (lane, executor):
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert body["extensions"]["cost"]["actualQueryCost"] == 0
    assert lane["errors"][0]["message"] == executor["errors"][0]["message"]
    logged = [line for line in captured.getvalue().splitlines() if "client error THROTTLED" in line]
    assert len(logged) == 2, captured.getvalue()  # one line for each answer


@pytest.mark.parametrize(
    "document",
    [
        # a field with a resolver (the wallet, the transaction's partner)
        'mutation { earnPoints(input: {idempotencyKey: "k", memberRef: "r", points: 1})'
        " { wallet { balance } } }",
        'mutation { earnPoints(input: {idempotencyKey: "k", memberRef: "r", points: 1})'
        " { transaction { partner { name } } } }",
        # fragments, directives, two root fields, a query, a mutation the lane does not know
        'mutation { earnPoints(input: {idempotencyKey: "k", memberRef: "r", points: 1})'
        " { ...P } } fragment P on EarnPointsPayload { userErrors { code } }",
        'mutation { earnPoints(input: {idempotencyKey: "k", memberRef: "r", points: 1})'
        " { userErrors { code @skip(if: false) } } }",
        'mutation { a: earnPoints(input: {idempotencyKey: "k", memberRef: "r", points: 1})'
        ' { userErrors { code } } b: earnPoints(input: {idempotencyKey: "l", memberRef: "r",'
        " points: 1}) { userErrors { code } } }",
        "{ partners { edges { cursor } } }",
        'mutation { holdPoints(input: {idempotencyKey: "k", memberRef: "r", points: 1})'
        " { userErrors { code } } }",
        # one key twice (merged by the executor), and a document that does not validate
        'mutation { earnPoints(input: {idempotencyKey: "k", memberRef: "r", points: 1})'
        " { userErrors { code } userErrors { code } } }",
        'mutation { earnPoints(input: {idempotencyKey: "k"}) { userErrors { code } } }',
    ],
)
def test_the_lane_leaves_every_other_document_to_the_executor(document: str) -> None:
    assert direct.plan_of(document, None) is None


def test_the_lane_takes_a_purchase_and_a_named_operation_only_by_its_name() -> None:
    purchase = (
        "mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {"
        " purchase { id points awards { points rule } } transactions { id points }"
        " userErrors { field code message } } }"
    )
    assert direct.plan_of(purchase, None) is not None
    named = EARN % ""
    assert direct.plan_of(named, "Earn") is not None
    assert direct.plan_of(named, "Other") is None


PURCHASE_INPUTS = [
    {"idempotencyKey": "k", "memberRef": "r", "amount": "12.50", "currency": "USD"},
    {
        "idempotencyKey": "k", "memberRef": "r", "amount": "12.50", "currency": "USD",
        "occurredAt": "2026-11-01T10:00:00Z", "channel": "APP", "storeRef": "s1",
        "reference": "till 4", "items": [
            {"sku": "p-1", "category": "snacks", "amount": "2.50", "quantity": 3},
            {"category": "popcorn", "amount": "10.00"},
        ],
    },
    {
        "idempotencyKey": "k", "memberRef": "r", "amount": "1", "currency": "JPY",
        "occurredAt": None, "channel": None, "storeRef": None, "items": None, "reference": None,
    },
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (EARN % "", {"key": "k", "ref": "r", "points": 5}),
        (REDEEM % "", {"key": "k", "ref": "r", "points": 5}),
        *[
            ("mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {"
             " userErrors { code } } }", {"input": value})
            for value in PURCHASE_INPUTS
        ],
    ],
)  # fmt: skip
def test_the_lane_converts_arguments_exactly_as_strawberry_does(
    document: str, variables: dict[str, Any]
) -> None:
    plan = direct.plan_of(document, None)
    assert plan is not None
    coerced = get_variable_values(
        schema._schema, plan.operation.variable_definitions or (), variables
    )
    assert not isinstance(coerced, list)  # refused variables come back as a list of errors
    raw = get_argument_values(plan.definition, plan.field, coerced)
    expected = convert_arguments(
        raw,
        plan.definition.extensions["strawberry-definition"].arguments,
        scalar_registry=schema.schema_converter.scalar_registry,
        config=schema.config,
    )
    converted = plan.convert(raw)
    assert converted == expected
    assert [type(v) for v in converted.values()] == [type(v) for v in expected.values()]


@strawberry.input
class Nested:
    """An input that contains itself (the schema has none yet)."""

    name: str
    child: Nested | None = None


def test_an_input_that_contains_itself_is_left_to_strawberry() -> None:
    with pytest.raises(direct.Ineligible):
        direct.converter_of(Nested)
