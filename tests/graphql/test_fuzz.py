"""Hostile documents over the whole schema (issue 12): for every root Query and Mutation
field and three kinds of caller (a partner with every partner scope, an operator with
every operator scope, a member by token exchange), documents generated from the
committed schema (tests/graphql/fuzzing.py says how) are sent over HTTP through the
ASGI app with real tokens. Whatever they hold, the server answers without a 5xx, without
a masked internal error, without another partner's secrets in the answer, and leaves the
ledger's invariants whole (checked after each test, as for every test using ``db``).

Many documents are refused (schema validation, cost, input limits, permissions): each
with a code. The last test makes sure the resolvers did run for every field and kind.

FUZZ_EXAMPLES sets the examples per field and kind (25 here, derandomized under the
``ci`` profile); ``scripts/fuzz`` runs a long, random run and prints FUZZ_SUMMARY.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from exchange.app import create_app
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from exchange.migrations import upgrade
from graphql_schema import ids
from partners import clients, registry
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from partners.scopes import OPERATOR_SCOPES, PARTNER_SCOPES
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, email
from tests.graphql.fuzzing import (
    CONNECTIONS,
    KINDS,
    ROOT_FIELDS,
    Outcome,
    Pools,
    Request,
    Tally,
    classify,
    documents,
    requests,
)
from tests.partners.test_registry import TERMS

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
#: A token is renewed this long before it would expire (member tokens live 5 minutes).
RENEW_AFTER_SECONDS = 240
LONG_AGO = datetime(1700, 1, 1, tzinfo=UTC)


@dataclass
class Client:
    client_id: str
    secret: str = field(repr=False)
    member_ref: str | None = None
    token: str = field(default="", repr=False)
    issued: float = 0.0


@dataclass(repr=False)  # a failing example prints its arguments: no tokens, no secrets
class Fuzz:
    """The world the fuzzer plays in, its callers and what it counted."""

    http: httpx.AsyncClient
    callers: dict[str, Client]
    pools: dict[str, Pools]
    #: Another partner's: none of them may appear in a partner's or member's answers.
    secrets: list[str]
    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    _requests: dict[tuple[str, str], st.SearchStrategy[Request]] = field(default_factory=dict)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How Hypothesis prints a failing example's arguments: without the callers'
        secrets and tokens (its printer walks a dataclass's fields, ``repr`` or not)."""
        printer.text(f"Fuzz(callers={sorted(self.callers)})")

    def requests(self, kind: str, root_field: str) -> st.SearchStrategy[Request]:
        built = self._requests.get((kind, root_field))
        if built is None:
            built = self._requests[kind, root_field] = requests(
                documents(self.pools[kind], root_field)
            )
        return built

    async def token(self, kind: str) -> str:
        caller = self.callers[kind]
        if time.monotonic() - caller.issued > RENEW_AFTER_SECONDS:
            caller.token = await _token(self.http, caller)
            caller.issued = time.monotonic()
        return caller.token

    async def learn_cursors(self) -> None:
        """Add the cursors each caller's first pages give to what it sends: a valid
        ``after`` is the only way documents reach a second page."""
        for kind in KINDS:
            token = await self.token(kind)
            for connection in CONNECTIONS:
                response = await self.http.post(
                    "/graphql",
                    json={"query": f"{{ {connection}(first: 2) {{ edges {{ cursor }} }} }}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                page = (response.json().get("data") or {}).get(connection) or {}
                self.pools[kind].strings += [edge["cursor"] for edge in page.get("edges", [])]

    async def send(self, kind: str, root_field: str, request: Request) -> Outcome:
        response = await self.http.post(
            "/graphql",
            content=request.body(),
            headers={
                "Authorization": f"Bearer {await self.token(kind)}",
                "Content-Type": "application/json",
                "Accept": request.accept,
            },
        )
        watched = self.secrets if kind != "operator" else []
        outcome = classify(root_field, response.status_code, response.text, watched)
        self.tallies[kind].add(root_field, outcome, request)
        return outcome


async def _token(http: httpx.AsyncClient, caller: Client) -> str:
    if caller.member_ref is None:
        form = {"grant_type": "client_credentials"}
    else:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": caller.member_ref,
            "subject_token_type": MEMBER_REF_TOKEN_TYPE,
            "scope": "wallet:read wallet:transfer",
        }
    response = await http.post("/oauth/token", data=form, auth=(caller.client_id, caller.secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def _client(db: Database, scopes: frozenset[str], partner_id: int | None) -> Client:
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(conn, scopes=sorted(scopes), partner_id=partner_id)
    assert created.client_secret is not None
    return Client(created.client_id, created.client_secret)


async def _gql(http: httpx.AsyncClient, token: str, query: str, **variables: Any) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    return body["data"]


@dataclass
class History:
    """A partner's rows: its members (ref, e-mail, phone, id) and the global ids made."""

    partner_id: int
    members: list[tuple[str, str, str, str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    member_ids: dict[str, list[str]] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


async def _history(http: httpx.AsyncClient, token: str, partner_id: int, tag: str) -> History:
    """Three linked members; an earn each; the first one's redemption, hold and purchase;
    a campaign. References and names carry ``tag``."""
    made = History(partner_id, ids=[ids.encode("Partner", partner_id)])
    for n in range(3):
        ref, address = f"{tag}-{secrets.token_hex(3)}-{n}", email()
        number = "+1415" + str(secrets.randbelow(10**7)).zfill(7)
        linked = await _gql(
            http, token,
            "mutation($r: String!, $e: String, $p: String) { linkMember(input: {memberRef: $r,"
            " email: $e, phone: $p}) { member { id } } }", r=ref, e=address, p=number,
        )  # fmt: skip
        member = linked["linkMember"]["member"]["id"]
        earned = await _gql(
            http, token,
            "mutation($r: String!, $ref: String) { earnPoints(input: {idempotencyKey: $r,"
            " memberRef: $r, points: 500, reference: $ref}) { transaction { id } } }",
            r=ref, ref=f"{tag}-earn-{n}",
        )  # fmt: skip
        made.members.append((ref, address, number, member))
        made.member_ids[ref] = [member, earned["earnPoints"]["transaction"]["id"]]
        made.references.append(f"{tag}-earn-{n}")
    first = made.members[0][0]
    moved = await _gql(
        http, token,
        "mutation($r: String!, $k: String!, $h: String!, $ref: String!) {"
        " redeemPoints(input: {idempotencyKey: $k, memberRef: $r, points: 10}) {"
        " transaction { id } }"
        " holdPoints(input: {idempotencyKey: $h, memberRef: $r, points: 20}) { hold { id } }"
        " recordPurchase(input: {idempotencyKey: $ref, memberRef: $r, amount: \"12.50\","
        " currency: \"USD\", reference: $ref}) { purchase { id } }"
        " createCampaign(input: {name: $ref, startsAt: \"2026-01-01T00:00:00+00:00\","
        " effect: {kind: FIXED, value: \"10\"}}) { campaign { id } } }",
        r=first, k=f"{tag}-r", h=f"{tag}-h", ref=f"{tag}-purchase",
    )  # fmt: skip
    made.member_ids[first] += [
        moved["redeemPoints"]["transaction"]["id"],
        moved["holdPoints"]["hold"]["id"],
    ]
    made.ids += [
        *(i for member_ids in made.member_ids.values() for i in member_ids),
        moved["recordPurchase"]["purchase"]["id"],
        moved["createCampaign"]["campaign"]["id"],
    ]
    made.references.append(f"{tag}-purchase")
    return made


def _cursor(prefix: str, value: object) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{value}".encode()).decode()


def _strings(mine: History, other: History, keys: list[str]) -> list[str]:
    """What a client of ``mine`` would send: its refs, members' contacts (its own and the
    other partner's: known recipients), keys that repeat, cursors, CEL, currencies."""
    return [
        *(ref for ref, _, _, _ in mine.members),
        *(address for _, address, _, _ in mine.members + other.members[:1]),
        *(number for _, _, number, _ in mine.members),
        "nobody-at-all@example.com",
        *keys,
        _cursor("ref", mine.members[0][0]),
        _cursor("account", 1),
        *mine.member_ids[mine.members[0][0]],
        "USD",
        "purchase.amount > 10",
    ]


async def _world(db: Database, http: httpx.AsyncClient) -> Fuzz:
    tag = secrets.token_hex(3)
    secret_price = Decimal("0.01736")
    async with db.transaction(SYSTEM) as conn:
        mine = await registry.add_partner(conn, name=f"Fuzz {tag}", terms=TERMS, now=LONG_AGO)
        keeper = await registry.add_partner(conn, name=f"Keeper {tag}", terms=TERMS, now=LONG_AGO)
        other = await registry.add_partner(
            conn,
            name=f"Other {tag}",
            terms=type(TERMS)(**{**TERMS.__dict__, "issue_price": secret_price}),
            now=LONG_AGO,
        )
    partner = await _client(db, PARTNER_SCOPES, mine.id)
    their = await _client(db, PARTNER_SCOPES, other.id)
    operator = await _client(db, OPERATOR_SCOPES, None)
    for caller in (partner, their, operator):
        caller.token, caller.issued = await _token(http, caller), time.monotonic()
    ours = await _history(http, partner.token, mine.id, f"fz{tag}")
    theirs = await _history(http, their.token, other.id, f"fzsecret{tag}")
    run = await _gql(
        http, operator.token,
        'mutation { runSettlement(input: {from: "1001-01-01T00:00:00+00:00",'
        ' to: "1001-02-01T00:00:00+00:00"}) { run { id } } }',
    )  # fmt: skip
    run_id = run["runSettlement"]["run"]["id"]
    member_ref = ours.members[0][0]
    member = await _kept_member(db, http, keeper.id, ours.members[0][1])
    keys = [f"fz-key-{n}" for n in range(3)]
    others_of_mine = [i for ref, got in ours.member_ids.items() if ref != member_ref for i in got]
    pools = {
        "partner": Pools(ours.ids, [*theirs.ids, run_id], _strings(ours, theirs, keys)),
        "operator": Pools([*ours.ids, *theirs.ids, run_id], [], _strings(ours, theirs, keys)),
        "member": Pools(
            ours.member_ids[member_ref],
            [*others_of_mine, *theirs.ids, run_id],
            _strings(ours, theirs, keys)[3:],  # no refs: a member does not know them
        ),
    }
    watched = [*(ref for ref, _, _, _ in theirs.members), *theirs.references, str(secret_price)]
    callers = {"partner": partner, "operator": operator, "member": member}
    world = Fuzz(http, callers, pools, watched)
    await world.learn_cursors()
    return world


async def _kept_member(
    db: Database, http: httpx.AsyncClient, keeper_id: int, address: str
) -> Client:
    """The member caller: the fuzzed partner's first member, whose tokens a partner that
    is not fuzzed exchanges (it linked the member too, by e-mail): the fuzzed partner's
    documents may unlink its own members, and the member's token is renewed during a
    long run."""
    keeper = await _client(db, PARTNER_SCOPES, keeper_id)
    ref = f"kept-{secrets.token_hex(3)}"
    await _gql(
        http, await _token(http, keeper),
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { member { id } } }", r=ref, e=address,
    )  # fmt: skip
    return Client(keeper.client_id, keeper.secret, member_ref=ref)


@pytest.fixture(scope="module")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A database of the fuzzer's own: what its documents create stays out of the other
    tests' sight (an operator's campaign, for one, applies to every partner)."""
    name = f"exchange_fuzz_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sqlalchemy.engine.make_url(server_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    await upgrade(rendered)
    yield rendered
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.dispose()


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[Database]:
    """The fuzzer's database (the ledger is verified after each test, as for every test
    using ``db``)."""
    database = Database(database_url, pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def fuzz(
    db: Database, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fuzz]:
    """An app of its own whose failures come back as responses (a 500 is counted, not
    raised), and the world the fuzzer plays in."""
    settings_ = Settings(
        home=tmp_path_factory.mktemp("fuzz"),
        database_url=database_url,
        secret_key_from_env=TEST_SECRET_KEY,
        public_url=BASE,
    )
    app = create_app(settings_, sweep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            world = await _world(db, http)
            started = time.monotonic()
            yield world
    summary = {
        "examples_per_field_and_kind": EXAMPLES,
        "seconds": round(time.monotonic() - started, 1),
        "finished": utc_now().isoformat(timespec="seconds"),
        **{kind: tally.summary() for kind, tally in world.tallies.items()},
    }
    _write(os.environ.get("FUZZ_SUMMARY"), summary)


def _write(target: str | None, summary: dict[str, Any]) -> None:
    """The summary as JSON at ``target`` (scripts/fuzz prints it), if given."""
    if target:
        Path(target).write_text(json.dumps(summary, indent=2) + "\n")


#: No shrinking: an example is an HTTP request against a database whose rows the earlier
#: examples changed, so a replay need not fail the same way; the failing request is in
#: the assertion's message as it was sent.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)


@pytest.mark.parametrize("root_field", ROOT_FIELDS)
@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=PHASES,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
async def test_hostile_documents_get_an_answer_never_an_internal_error(
    fuzz: Fuzz, kind: str, root_field: str, data: st.DataObject
) -> None:
    request = data.draw(fuzz.requests(kind, root_field), label="request")

    outcome = await fuzz.send(kind, root_field, request)

    assert outcome.status < 500, (outcome, request)
    assert outcome.internal == [], (outcome, request)
    assert outcome.leaked == [], (outcome, request)


def test_every_field_ran_its_resolver_for_every_kind_of_caller(fuzz: Fuzz) -> None:
    """Not vacuous: for each kind of caller, each field sent at all had documents that
    passed parsing, validation and the cost limit and ran (refusals included)."""
    sent = sum(tally.sent for tally in fuzz.tallies.values())
    if sent == 0:
        pytest.skip("the fuzz tests did not run in this session")
    never = {kind: tally.never_executed() for kind, tally in fuzz.tallies.items()}
    executed = sum(tally.executed for tally in fuzz.tallies.values())

    assert never == {kind: [] for kind in KINDS}
    assert executed >= sent // 2, (executed, sent)
