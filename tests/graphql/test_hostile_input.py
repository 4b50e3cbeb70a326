"""Hostile input at the edge (issue 12): every value a client controls is held to the
written limits (exchange.kit.limits) and refused with a clear error that moves nothing —
a userError with its code and field (mutations), a GraphQL error with extensions.code
(queries), a 4xx with a JSON body (HTTP and OAuth) — never a 500, never a masked
"Unexpected error".

Bodies are sent as JSON with ASCII escapes (``\\u0000``, ``\\ud800``), the way an
attacker writes NULs and unpaired surrogates. A 500 would surface as an exception: the
test client raises the application's errors."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from exchange import ledger
from exchange.kit import limits
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from graphql_schema import ids
from partners import clients
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.graphql.conftest import Caller, email, new_operator, new_partner
from tests.graphql.test_settlement_api import _operator as settlement_operator

LINK = """mutation($ref: String!, $email: String, $phone: String) {
  linkMember(input: {memberRef: $ref, email: $email, phone: $phone}) {
    member { id } userErrors { field code message } } }"""
EARN = """mutation($key: String!, $ref: String!, $points: Int!, $reference: String,
                   $expires: DateTime) {
  earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points,
                     reference: $reference, expiresAt: $expires}) {
    transaction { id points } userErrors { field code message } } }"""
REDEEM = """mutation($key: String!, $ref: String!, $reference: String) {
  redeemPoints(input: {idempotencyKey: $key, memberRef: $ref, points: 1,
                       reference: $reference}) {
    transaction { id } userErrors { field code message } } }"""
HOLD = """mutation($key: String!, $ref: String!) {
  holdPoints(input: {idempotencyKey: $key, memberRef: $ref, points: 1}) {
    hold { id } userErrors { field code message } } }"""
REVERSE = """mutation($key: String!, $tx: ID!, $reference: String) {
  reverseTransaction(input: {idempotencyKey: $key, transactionId: $tx,
                             reference: $reference}) {
    transaction { id } userErrors { field code message } } }"""
TRANSFER = """mutation($key: String!, $to: String!) {
  transferPoints(input: {idempotencyKey: $key, points: 1, toEmail: $to}) {
    transaction { id } userErrors { field code message } } }"""
BATCH = """mutation($items: [EarnPointsInput!]!) {
  earnPointsBatch(input: {items: $items}) {
    results { transaction { id } userErrors { field code message } }
    userErrors { field code message } } }"""
BALANCE = "query($ref: String!) { member(memberRef: $ref) { wallet { balance } } }"
NUL, SURROGATE = "\x00", "\ud800"


def key() -> str:
    return secrets.token_hex(8)


async def post(api: httpx.AsyncClient, token: str, query: str, **variables: Any) -> Any:
    """A GraphQL request whose body is JSON with ASCII escapes (what json.dumps writes:
    a NUL as \\u0000, an unpaired surrogate as \\ud800)."""
    response = await api.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}),
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def never_internal(body: Any) -> None:
    """No masked internal error anywhere in a response."""
    dumped = json.dumps(body)
    assert "Unexpected error" not in dumped
    assert "INTERNAL_SERVER_ERROR" not in dumped


async def written(db: Database) -> tuple[int, ...]:
    """How many rows of each kind a request could write: 'nothing moved' compares it."""
    async with db.transaction(SYSTEM) as conn:
        row = (
            await conn.execute(
                sql(
                    "SELECT (SELECT count(*) FROM ledger_entry), (SELECT count(*) FROM"
                    " ledger_posting), (SELECT count(*) FROM member_link), (SELECT count(*)"
                    " FROM member_identity), (SELECT count(*) FROM settlement_run),"
                    " (SELECT count(*) FROM used_client_assertion)"
                )
            )
        ).one()
    return tuple(int(count) for count in row)


async def ledger_verifies(db: Database) -> None:
    async with db.transaction(SYSTEM) as conn:
        report = await ledger.verify(conn)
    assert report.ok, [(check.name, check.examples) for check in report.checks if not check.ok]


async def linked(partner: Caller, points: int = 0) -> tuple[str, str | None]:
    """A member linked by a fresh ref, with ``points`` earned; (ref, the earn's id)."""
    ref = f"hostile-{secrets.token_hex(4)}"
    result = await partner.gql(LINK, ref=ref, email=email())
    assert result["data"]["linkMember"]["userErrors"] == []
    if not points:
        return ref, None
    earned = (await partner.gql(EARN, key=key(), ref=ref, points=points))["data"]["earnPoints"]
    assert earned["userErrors"] == []
    return ref, earned["transaction"]["id"]


async def balance(partner: Caller, ref: str) -> str:
    result = await partner.gql(BALANCE, ref=ref)
    return str(result["data"]["member"]["wallet"]["balance"])


def errors_of(result: Any, field: str) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in result["data"][field]["userErrors"]]


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


# --- 1. Values that reached the database or datetime code unchecked -----------------


def spellings(type_name: str, key: int) -> dict[str, str]:
    """Ways to write a key that are not the one encode() writes."""
    arabic_indic = str(key).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    raw = {
        "2**63, 19 digits": "9223372036854775808",
        "20 digits": "99999999999999999999",
        "superscript two": "²",
        "Arabic-Indic digits of a real key": arabic_indic,
        "leading zeros": f"000{key}",
        "a sign": f"+{key}",
    }
    return {
        name: base64.urlsafe_b64encode(f"{type_name}:{digits}".encode()).decode().rstrip("=")
        for name, digits in raw.items()
    }


async def test_ids_beyond_64_bits_or_not_in_ascii_digits_name_nothing(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    ref, earn_id = await linked(partner, 10)
    assert earn_id is not None
    entry = ids.decode_as(earn_id, "Transaction")
    assert entry is not None
    held = await partner.gql(HOLD, key=key(), ref=ref)
    hold = ids.decode_as(held["data"]["holdPoints"]["hold"]["id"], "Hold")
    assert hold is not None
    operator = await settlement_operator(db, api)
    before = await written(db)
    mutations = """mutation($tx: ID!, $hold: ID!, $key: String!) {
      reverse: reverseTransaction(input: {idempotencyKey: $key, transactionId: $tx}) {
        transaction { id } userErrors { field code } }
      capture: captureHold(input: {idempotencyKey: $key, holdId: $hold}) {
        transaction { id } userErrors { field code } }
      release: releaseHold(input: {holdId: $hold}) { hold { id } userErrors { field code } } }"""

    for name, transaction_id in spellings("Transaction", entry).items():
        hold_id = spellings("Hold", hold)[name]
        moved = await post(
            api, partner.token, mutations, tx=transaction_id, hold=hold_id, key=key()
        )
        node = await post(
            api, partner.token, "query($id: ID!) { node(id: $id) { id } }", id=transaction_id
        )
        run_id = spellings("SettlementRun", 1)[name]
        finalized = await post(
            api,
            operator.token,
            "mutation($id: ID!) { finalizeSettlement(input: {runId: $id}) {"
            " run { id } userErrors { field code } } }",
            id=run_id,
        )

        never_internal([moved, node, finalized])
        assert errors_of(moved, "reverse") == [("NOT_FOUND", ["input", "transactionId"])], name
        assert errors_of(moved, "capture") == [("NOT_FOUND", ["input", "holdId"])], name
        assert errors_of(moved, "release") == [("NOT_FOUND", ["input", "holdId"])], name
        assert errors_of(finalized, "finalizeSettlement") == [("NOT_FOUND", ["input", "runId"])]
        assert node["data"]["node"] is None
        [error] = node["errors"]
        assert (error["extensions"]["code"], error["extensions"]["field"]) == ("NOT_FOUND", ["id"])
    assert await written(db) == before
    assert await balance(partner, ref) == "10"
    await ledger_verifies(db)


async def test_cursors_beyond_64_bits_or_not_ours_are_invalid_input(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    operator = await new_operator(db, api)
    pages = {
        "transactions": ("partner", "Transaction"),
        "partners": ("partner", "Partner"),
        "settlementRuns": ("operator", "SettlementRun"),
    }
    for field, (who, type_name) in pages.items():
        caller = partner if who == "partner" else operator
        for name, cursor in spellings(type_name, 1).items():
            result = await post(
                api,
                caller.token,
                f"query($after: String) {{ {field}(first: 1, after: $after) {{"
                " edges { cursor } } }",
                after=cursor,
            )

            never_internal(result)
            [error] = result["errors"]
            assert error["extensions"] == {"code": "INVALID_INPUT", "field": ["after"]}, (
                field,
                name,
            )
    odd = {
        "ledgerAccounts": ("account:99999999999999999999", operator),
        "members": ("ref:a" + NUL, partner),
    }
    for field, (raw, caller) in odd.items():
        cursor = base64.urlsafe_b64encode(raw.encode()).decode()
        result = await post(
            api,
            caller.token,
            f"query($after: String) {{ {field}(first: 1, after: $after) {{"
            " edges { cursor } } }",
            after=cursor,
        )

        never_internal(result)
        assert result["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": ["after"]}


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["NUL", "unpaired surrogate"])
async def test_strings_with_a_nul_or_an_unpaired_surrogate_are_invalid_input(
    db: Database, api: httpx.AsyncClient, partner: Caller, bad: str
) -> None:
    ref, earn_id = await linked(partner, 10)
    member = await partner.member_token(ref, "wallet:read wallet:transfer")
    before = await written(db)
    cases = [
        (partner, LINK, {"ref": f"r{bad}", "email": email()}, "linkMember", "memberRef"),
        (partner, LINK, {"ref": key(), "email": f"a{bad}b@example.com"}, "linkMember", "email"),
        (partner, LINK, {"ref": key(), "phone": f"+1415555{bad}0123"}, "linkMember", "phone"),
        (
            partner,
            EARN,
            {"key": key(), "ref": f"{ref}{bad}", "points": 1},
            "earnPoints",
            "memberRef",
        ),
        (
            partner,
            EARN,
            {"key": f"k{bad}", "ref": ref, "points": 1},
            "earnPoints",
            "idempotencyKey",
        ),
        (
            partner,
            EARN,
            {"key": key(), "ref": ref, "points": 1, "reference": f"r{bad}"},
            "earnPoints",
            "reference",
        ),
        (
            partner,
            REDEEM,
            {"key": key(), "ref": ref, "reference": bad},
            "redeemPoints",
            "reference",
        ),
        (partner, HOLD, {"key": f"{bad}", "ref": ref}, "holdPoints", "idempotencyKey"),
        (
            partner,
            REVERSE,
            {"key": key(), "tx": earn_id, "reference": f"x{bad}"},
            "reverseTransaction",
            "reference",
        ),
        (member, TRANSFER, {"key": key(), "to": f"{bad}@example.com"}, "transferPoints", "toEmail"),
    ]

    for caller, document, variables, field, argument in cases:
        result = await post(api, caller.token, document, **variables)

        never_internal(result)
        assert errors_of(result, field) == [("INVALID_INPUT", ["input", argument])], (
            field,
            argument,
        )
    assert await written(db) == before
    assert await balance(partner, ref) == "10"
    await ledger_verifies(db)


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["NUL", "unpaired surrogate"])
async def test_query_strings_with_a_nul_or_an_unpaired_surrogate_are_invalid_input(
    api: httpx.AsyncClient, partner: Caller, bad: str
) -> None:
    cases = [
        ("query($v: String!) { member(memberRef: $v) { id } }", ["memberRef"]),
        (
            "query($v: String) { transactions(filter: {memberRef: $v}) { edges { cursor } } }",
            ["filter", "memberRef"],
        ),
        (
            "query($v: String) { transactions(filter: {reference: $v}) { edges { cursor } } }",
            ["filter", "reference"],
        ),
    ]
    for document, field in cases:
        result = await post(api, partner.token, document, v=f"x{bad}y")

        never_internal(result)
        [error] = result["errors"]
        assert error["extensions"] == {"code": "INVALID_INPUT", "field": field}


async def test_a_bad_item_of_a_batch_fails_alone_and_a_bad_mutation_leaves_its_neighbours(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    ref, _ = await linked(partner)
    items = [
        {"idempotencyKey": key(), "memberRef": ref, "points": 2},
        {"idempotencyKey": key(), "memberRef": f"{ref}{NUL}", "points": 3},
        {"idempotencyKey": key(), "memberRef": ref, "points": 4},
    ]
    both = """mutation($ref: String!, $key: String!) {
      bad: linkMember(input: {memberRef: "x\\u0000", email: "a@example.com"}) {
        userErrors { field code } }
      good: earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: 5}) {
        transaction { points } userErrors { field code } } }"""

    batch = await post(api, partner.token, BATCH, items=items)
    document = await post(api, partner.token, both, ref=ref, key=key())

    never_internal([batch, document])
    results = batch["data"]["earnPointsBatch"]["results"]
    assert [r["transaction"] is not None for r in results] == [True, False, True]
    assert [(e["code"], e["field"]) for e in results[1]["userErrors"]] == [
        ("INVALID_INPUT", ["input", "items", "1", "memberRef"])
    ]
    assert errors_of(document, "bad") == [("INVALID_INPUT", ["input", "memberRef"])]
    assert document["data"]["good"] == {"transaction": {"points": "5"}, "userErrors": []}
    assert await balance(partner, ref) == str(2 + 4 + 5)
    await ledger_verifies(db)


#: Valid ISO 8601 times whose conversion to UTC leaves Python's datetime range.
OVERFLOWING = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("moment", OVERFLOWING)
async def test_datetimes_that_overflow_in_utc_are_invalid_input(
    db: Database, api: httpx.AsyncClient, partner: Caller, moment: str
) -> None:
    ref, _ = await linked(partner, 10)
    operator = await settlement_operator(db, api)
    before = await written(db)
    run = """mutation($from: DateTime!, $to: DateTime!) {
      runSettlement(input: {from: $from, to: $to}) { run { id } userErrors { field code } } }"""
    in_range = "2001-01-01T00:00:00+00:00"

    earned = await post(api, partner.token, EARN, key=key(), ref=ref, points=1, expires=moment)
    since = await post(
        api,
        partner.token,
        "query($t: DateTime) { transactions(filter: {since: $t}) { edges { cursor } } }",
        t=moment,
    )
    until = await post(
        api,
        partner.token,
        "query($t: DateTime) { transactions(filter: {until: $t}) { edges { cursor } } }",
        t=moment,
    )
    settled_from = await post(api, operator.token, run, **{"from": moment, "to": in_range})
    settled_to = await post(api, operator.token, run, **{"from": in_range, "to": moment})

    never_internal([earned, since, until, settled_from, settled_to])
    assert errors_of(earned, "earnPoints") == [("INVALID_INPUT", ["input", "expiresAt"])]
    assert since["errors"][0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": ["filter", "since"],
    }
    assert until["errors"][0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": ["filter", "until"],
    }
    assert errors_of(settled_from, "runSettlement") == [("INVALID_INPUT", ["input", "from"])]
    assert errors_of(settled_to, "runSettlement") == [("INVALID_INPUT", ["input", "to"])]
    assert await written(db) == before
    await ledger_verifies(db)


@pytest.mark.parametrize(
    ("currency", "rates", "field"),
    [
        (None, [{"currency": "EUR", "rate": "1e999999"}], "rates"),
        (None, [{"currency": "EUR", "rate": "1e-999999"}], "rates"),
        (None, [{"currency": "EUR", "rate": "0.0000000000001"}], "rates"),
        (None, [{"currency": "EUR", "rate": "NaN"}], "rates"),
        (None, [{"currency": "E" * 1000, "rate": "1.08"}], "rates"),
        ("U" * 1000, None, "currency"),
        ("US\u0000", None, "currency"),
        (None, [{"currency": f"E{n:02}", "rate": "1"} for n in range(51)], "rates"),
    ],
    ids=[
        "rate 1e999999",
        "rate 1e-999999",
        "rate with 13 places",
        "rate NaN",
        "rate of a 1000-character currency",
        "1000-character currency",
        "currency with a NUL",
        "51 rates",
    ],
)
async def test_absurd_settlement_inputs_are_invalid_input(
    db: Database,
    api: httpx.AsyncClient,
    currency: str | None,
    rates: list[dict[str, str]] | None,
    field: str,
) -> None:
    operator = await settlement_operator(db, api)
    before = await written(db)
    run = """mutation($currency: String, $rates: [ExchangeRateInput!]) {
      runSettlement(input: {from: "2001-01-01T00:00:00Z", to: "2001-02-01T00:00:00Z",
                            currency: $currency, rates: $rates}) {
        run { id } userErrors { field code } } }"""

    result = await post(api, operator.token, run, currency=currency, rates=rates)

    never_internal(result)
    assert errors_of(result, "runSettlement") == [("INVALID_INPUT", ["input", field])]
    assert await written(db) == before


# --- 2. Requests that were plain HTTP 500s --------------------------------------------


def graphql_http_error(response: httpx.Response, status: int, code: str) -> str:
    """The message of an HTTP-level error in the GraphQL error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code
    message: str = error["message"]
    return message


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'"hello"', "JSON object"),
        (b"42", "JSON object"),
        (b"null", "JSON object"),
        (b'[{"query": "{ viewer { kind } }"}]', "JSON object"),
        (b'{"query": "{ viewer { kind } }", "variables": {"a": ' + DEEP.encode() + b"}}", "deeper"),
        (b'{"query": "{ viewer { kind } }", "extensions": ' + DEEP.encode() + b"}", "deeper"),
        (b'{"query": "{ viewer { kind } }", "x": "\xff\xfe"}', "UTF-8"),
        (b"{not json", "JSON"),
    ],
    ids=[
        "a string",
        "a number",
        "null",
        "a batch",
        "deeply nested variables",
        "deeply nested arrays",
        "invalid UTF-8",
        "not JSON",
    ],
)
async def test_malformed_graphql_bodies_are_400_in_the_graphql_error_shape(
    api: httpx.AsyncClient, partner: Caller, body: bytes, words: str
) -> None:
    response = await api.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {partner.token}", "content-type": "application/json"},
    )

    assert words in graphql_http_error(response, 400, "BAD_REQUEST")


async def test_deeply_nested_variables_in_a_get_are_400(
    api: httpx.AsyncClient, partner: Caller
) -> None:
    response = await api.get(
        "/graphql",
        params={"query": "{ viewer { kind } }", "variables": '{"a": ' + DEEP + "}"},
        headers={"Authorization": f"Bearer {partner.token}"},
    )

    graphql_http_error(response, 400, "BAD_REQUEST")


async def test_a_wrong_content_type_is_415_naming_what_is_accepted(
    api: httpx.AsyncClient, partner: Caller
) -> None:
    headers = {"Authorization": f"Bearer {partner.token}"}
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ):
        response = await api.post(
            "/graphql",
            content=b'{"query": "{ viewer { kind } }"}',
            headers=headers | {"content-type": content_type},
        )

        assert "application/json" in graphql_http_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def oauth_refusal(response: httpx.Response, status: int, error: str) -> str:
    """An RFC 6749 section 5.2 error: its JSON body, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    description: str = body["error_description"]
    return description


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_the_token_endpoint_answers_malformed_requests_as_rfc_6749_says(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    ref, _ = await linked(partner)
    before = await written(db)
    credentials = (partner.client_id, partner.client_secret)
    exchange = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": MEMBER_REF_TOKEN_TYPE}
    not_utf8 = base64.b64encode(b"\xff\xfe:secret").decode()
    nul_in_basic = base64.b64encode(f"{partner.client_id}%00:x".encode()).decode()
    deep = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")

    nul_client = await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": f"a{NUL}", "client_secret": "x"},
    )
    nul_subject = await api.post(
        "/oauth/token", data=exchange | {"subject_token": f"{ref}{NUL}"}, auth=credentials
    )
    bad_basic = await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {not_utf8}"},
    )
    nul_basic = await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {nul_in_basic}"},
    )
    deep_assertion = await api.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": f"eyJhbGciOiJFUzI1NiJ9.{deep}.c2ln",
        },
    )

    for response in (nul_client, nul_subject, bad_basic, nul_basic, deep_assertion):
        oauth_refusal(response, 400, "invalid_request")
    assert await written(db) == before


async def test_a_private_key_jwt_for_a_client_without_keys_is_invalid_client(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    # The partner's client authenticates with a secret and has no key registered; an
    # assertion signed by any key naming it must fail authentication, not the server.
    signer = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    assertion = pyjwt.encode(
        {
            "iss": partner.client_id,
            "sub": partner.client_id,
            "aud": "http://127.0.0.1:8000/oauth/token",
            "jti": secrets.token_hex(8),
            "iat": now,
            "exp": now + 60,
        },
        signer,
        algorithm="ES256",
    )

    response = await api.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )

    assert oauth_refusal(response, 400, "invalid_client") == "client authentication failed"


async def test_assertion_claims_that_could_not_be_stored_are_invalid_client(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    # Signed by the client's own key, so only the claims are wrong: a jti with a NUL,
    # too long or not a string, an exp no datetime can hold.
    signer = ec.generate_private_key(ec.SECP256R1())
    pem = signer.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = ECKey.import_key(pem).as_dict(private=False) | {"kid": "hostile-1"}
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(
            conn,
            scopes=["transactions:read"],
            partner_id=partner.partner_id,
            jwks={"keys": [public]},
        )
    now = int(time.time())
    claims = {
        "iss": created.client_id,
        "sub": created.client_id,
        "aud": "http://127.0.0.1:8000/oauth/token",
        "iat": now,
        "exp": now + 60,
    }
    before = await written(db)

    for wrong in (
        {"jti": f"a{NUL}b"},
        {"jti": "j" * 201},
        {"jti": 5},
        {"jti": key(), "exp": 10**30},
    ):
        assertion = pyjwt.encode(
            claims | wrong, signer, algorithm="ES256", headers={"kid": "hostile-1"}
        )
        response = await api.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )

        assert oauth_refusal(response, 400, "invalid_client") == "client authentication failed"
    assert await written(db) == before


async def test_invalid_client_says_client_authentication_failed_and_nothing_more(
    api: httpx.AsyncClient,
) -> None:
    unknown = await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(f"pt_{secrets.token_hex(10)}", "nope"),
    )
    anonymous = await api.post("/oauth/token", data={"grant_type": "client_credentials"})

    for response in (unknown, anonymous):
        assert oauth_refusal(response, 401, "invalid_client") == "client authentication failed"


# --- 3. One bad earn among its micro-batched neighbours ---------------------------------


async def test_an_overflowing_earn_fails_alone_among_concurrent_earns_of_its_client(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    refs = [(await linked(partner))[0] for _ in range(4)]
    good = [(key(), refs[n % 4], 1 + n % 3) for n in range(100)]
    bad = [(f"bad-{n}", refs[n % 4], 7) for n in range(5)]
    calls: list[tuple[str, str, int, str | None]] = [(*g, None) for g in good]
    for n, item in enumerate(bad):  # one bad earn among every twenty good ones
        calls.insert(20 * n + 10, (*item, OVERFLOWING[n % 2]))

    results = await asyncio.gather(
        *(post(api, partner.token, EARN, key=k, ref=r, points=p, expires=e) for k, r, p, e in calls)
    )

    never_internal(results)
    by_key = {
        call[0]: result["data"]["earnPoints"] for call, result in zip(calls, results, strict=True)
    }
    for k, _, points in good:
        assert by_key[k]["userErrors"] == [], by_key[k]
        assert by_key[k]["transaction"]["points"] == str(points)
    for k, _, _ in bad:
        assert by_key[k]["transaction"] is None
        assert [(e["code"], e["field"]) for e in by_key[k]["userErrors"]] == [
            ("INVALID_INPUT", ["input", "expiresAt"])
        ]
    for ref in refs:
        assert await balance(partner, ref) == str(sum(p for _, r, p in good if r == ref))
    await ledger_verifies(db)


# --- 4. Body limits enforced while reading, for every route and encoding -------------


class Chunks:
    """A streamed (chunked) body of ``total`` bytes, counting what the server pulled."""

    def __init__(self, total: int, chunk: int = 16 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += self.chunk
            yield b" " * self.chunk


TWO_HUNDRED_MIB = 200 * 1024 * 1024


@pytest.mark.parametrize(
    ("path", "content_type", "limit", "shape"),
    [
        ("/graphql", "application/json", limits.GRAPHQL_BODY_BYTES, "graphql"),
        ("/oauth/token", "application/x-www-form-urlencoded", limits.OAUTH_BODY_BYTES, "oauth"),
        (
            "/oauth/introspect",
            "application/x-www-form-urlencoded",
            limits.OAUTH_BODY_BYTES,
            "oauth",
        ),
        ("/oauth/revoke", "application/x-www-form-urlencoded", limits.OAUTH_BODY_BYTES, "oauth"),
        ("/api/whoami", "application/json", limits.OTHER_BODY_BYTES, "graphql"),
        ("/", "application/octet-stream", limits.OTHER_BODY_BYTES, "graphql"),
        ("/bulk/earn", "application/x-ndjson", limits.BULK_BODY_BYTES, "graphql"),
    ],
)
async def test_a_chunked_body_is_cut_off_at_its_routes_limit_while_reading(
    api: httpx.AsyncClient, partner: Caller, path: str, content_type: str, limit: int, shape: str
) -> None:
    body = Chunks(TWO_HUNDRED_MIB)
    headers = {"content-type": content_type}
    if path in ("/graphql", "/bulk/earn"):
        headers["Authorization"] = f"Bearer {partner.token}"
    method = "GET" if path in ("/api/whoami", "/") else "POST"

    response = await api.request(method, path, content=body, headers=headers)

    assert "content-length" not in response.request.headers  # sent chunked
    assert body.sent <= limit + body.chunk  # not a byte more than one chunk past the limit
    if shape == "graphql":
        assert str(limit) in graphql_http_error(response, 413, "PAYLOAD_TOO_LARGE")
    else:
        assert str(limit) in oauth_refusal(response, 413, "invalid_request")


async def test_a_declared_length_above_the_limit_is_refused_before_reading(
    api: httpx.AsyncClient, partner: Caller
) -> None:
    body = Chunks(TWO_HUNDRED_MIB)

    response = await api.post(
        "/graphql",
        content=body,
        headers={
            "Authorization": f"Bearer {partner.token}",
            "content-type": "application/json",
            "content-length": str(TWO_HUNDRED_MIB),
        },
    )

    graphql_http_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body.sent == 0


async def test_a_body_within_the_limit_still_runs_when_sent_chunked(
    api: httpx.AsyncClient, partner: Caller
) -> None:
    document = json.dumps({"query": "{ viewer { kind } }"}).encode()

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(document), 7):
            yield document[start : start + 7]

    response = await api.post(
        "/graphql",
        content=chunked(),
        headers={"Authorization": f"Bearer {partner.token}", "content-type": "application/json"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"viewer": {"kind": "PARTNER"}}
