"""The server's log as an operator reads it: a client's mistake is one INFO line with
the request id, a real failure a traceback at ERROR, JSON lines parse, and no secret,
token or personal data is ever written (the handler `exchange serve` configures,
captured)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from exchange.kit import logs
from exchange.kit.db import Database
from exchange.usecases import members
from exchange.usecases.core import Call, UseCase
from tests.graphql.conftest import email, new_partner

ServerLog = Callable[[logs.LogFormat], io.StringIO]
SCHEMA_LOGGER = "graphql_schema.schema"


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    """Logging configured as `exchange serve` does, into a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def start(log_format: logs.LogFormat) -> io.StringIO:
        captured = io.StringIO()
        logs.configure(log_format, stream=captured)
        return captured

    yield start
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def post(api: httpx.AsyncClient, token: str, query: str) -> httpx.Response:
    return await api.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )


def schema_lines(captured: io.StringIO) -> list[str]:
    """The lines the GraphQL layer logged (the test's own HTTP client logs too)."""
    return [line for line in captured.getvalue().splitlines() if f" {SCHEMA_LOGGER} " in line]


@pytest.mark.parametrize(
    ("query", "scopes", "code"),
    [
        ("{ transactions(first: 101) { edges { node { id } } } }", "transactions:read",
         "INVALID_INPUT"),
        ("{ transactions(first: 5) { edges { node { id } } } }", "points:earn", "FORBIDDEN"),
        ('{ node(id: "not-an-id") { id } }', "transactions:read", "NOT_FOUND"),
        ("{ transactions(first: 5) { edges { node { nope } } } }", "transactions:read",
         "GRAPHQL_VALIDATION_FAILED"),
    ],
    ids=["first-101", "missing-scope", "bad-id", "validation"],
)  # fmt: skip
async def test_a_client_error_logs_one_info_line_with_the_request_id_and_no_traceback(
    db: Database,
    api: httpx.AsyncClient,
    server_log: ServerLog,
    query: str,
    scopes: str,
    code: str,
) -> None:
    partner = await new_partner(db, api, scopes=scopes)
    captured = server_log("text")

    response = await post(api, partner.token, query)

    assert response.json()["errors"], response.text
    request_id = response.headers["x-request-id"]
    lines = schema_lines(captured)
    assert len(lines) == 1, captured.getvalue()
    assert f" INFO {SCHEMA_LOGGER} [request {request_id}] client error {code} " in lines[0]
    assert "Traceback" not in captured.getvalue()
    assert " ERROR " not in captured.getvalue()


def broken_member_lookup(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """A bug in a use case: it raises what no rule expects."""

    async def boom(call: Call, request: Any) -> None:
        raise RuntimeError(message)

    original = members.member_by_ref
    monkeypatch.setattr(members, "member_by_ref", UseCase(original.name, original.permits, boom))


async def test_an_unexpected_error_logs_its_traceback_at_error_with_the_request_id(
    db: Database, api: httpx.AsyncClient, server_log: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner = await new_partner(db, api)
    broken_member_lookup(monkeypatch, "a bug in the member lookup")
    captured = server_log("text")

    response = await post(api, partner.token, '{ member(memberRef: "alice") { id } }')

    error = response.json()["errors"][0]
    request_id = response.headers["x-request-id"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    output = captured.getvalue()
    assert len(schema_lines(captured)) == 1, output  # logged once, not once per layer
    assert f" ERROR {SCHEMA_LOGGER} [request {request_id}] unexpected error at member" in output
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: a bug in the member lookup" in output


async def test_json_log_lines_parse_with_time_level_logger_message_and_request_id(
    db: Database, api: httpx.AsyncClient, server_log: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner = await new_partner(db, api)
    captured = server_log("json")

    refused = await post(api, partner.token, "{ transactions(first: 101) { edges { cursor } } }")
    broken_member_lookup(monkeypatch, "a bug in the member lookup")
    failed = await post(api, partner.token, '{ member(memberRef: "alice") { id } }')

    entries = [json.loads(line) for line in captured.getvalue().splitlines()]
    ours = [entry for entry in entries if entry["logger"] == SCHEMA_LOGGER]
    assert [(entry["level"], entry["request_id"]) for entry in ours] == [
        ("INFO", refused.headers["x-request-id"]),
        ("ERROR", failed.headers["x-request-id"]),
    ]
    assert all(set(entry) >= {"time", "level", "logger", "message"} for entry in entries)
    assert ours[0]["message"] == (
        "client error INVALID_INPUT at transactions: first must be between 1 and 100"
    )
    assert "exception" not in ours[0]
    assert "RuntimeError: a bug in the member lookup" in ours[1]["exception"]
    assert ours[1]["time"].endswith("Z")


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_secret_token_or_personal_data_reaches_the_log(
    db: Database,
    api: httpx.AsyncClient,
    server_log: ServerLog,
    monkeypatch: pytest.MonkeyPatch,
    log_format: logs.LogFormat,
) -> None:
    partner = await new_partner(db, api)
    address, phone, name = email(), "+14155550123", "Alice Q. Member"
    captured = server_log(log_format)

    await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": partner.client_id,
              "client_secret": partner.client_secret},
    )  # fmt: skip
    await api.post("/oauth/token?client_secret=" + partner.client_secret, data={"grant_type": "x"})
    await post(api, partner.token + "x", "{ viewer { scopes } }")  # a token that fails
    for value in (address, name):
        await post(
            api, partner.token, f'{{ transactions(first: "{value}") {{ edges {{ cursor }} }} }}'
        )
    await post(
        api,
        partner.token,
        f'mutation {{ linkMember(input: {{memberRef: "{address}", email: "{address}",'
        f' phone: "{phone}", points: 1}}) {{ userErrors {{ code }} }} }}',
    )
    broken_member_lookup(
        monkeypatch,
        f"a bug that puts {address}, {phone}, Bearer {partner.token} and"
        f" client_secret={partner.client_secret} into its message",
    )
    await post(api, partner.token, f'{{ member(memberRef: "{address}") {{ id }} }}')

    output = captured.getvalue()
    assert len(schema_lines(captured) if log_format == "text" else output.splitlines()) >= 3
    assert "RuntimeError: a bug that puts [e-mail], [phone], Bearer [token]" in output
    for secret in (partner.client_secret, partner.token, address, phone, phone[1:], name):
        assert secret not in output
