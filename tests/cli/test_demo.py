"""The demo coalition of `exchange serve --demo`: a history over last month and this one
that the finance team can settle as the README shows."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from exchange.app import create_app
from exchange.devtools import demo
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from exchange.loyalty import campaigns, purchases, repository, tiers
from exchange.loyalty.models import CampaignStatus
from partners import clients
from partners.identity import IdentityKeys
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.cli.test_cli import _free_port as free_port
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE


async def seed_demo(database_url: str, home: Path) -> demo.DemoSummary:
    database = Database(database_url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            return await demo.seed(
                conn,
                now=utc_now(),
                keys=IdentityKeys.from_secret(TEST_SECRET_KEY.encode()),
                home=home,
            )
    finally:
        await database.dispose()


async def test_last_month_of_the_demo_settles_with_both_funding_models(
    scratch_database_url: str, tmp_path: Path
) -> None:
    first = await seed_demo(scratch_database_url, tmp_path)
    again = await seed_demo(scratch_database_url, tmp_path)
    start, end = (day.isoformat() for day in first.last_month)

    settled = run(
        ["settle", "--from", start, "--to", end, "--json"], scratch_database_url, tmp_path
    )

    assert settled.returncode == 0, settled.stderr
    document = json.loads(settled.stdout)
    assert (first.seeded, again.seeded) == (True, False)  # seeding twice adds nothing
    assert first.last_month[1].day == 1
    assert first.last_month[0] == (first.last_month[1] - timedelta(days=1)).replace(day=1)
    key = {name: f"partner:{pid}" for name, pid in first.partners.items()}
    coffee, cinema, grocer = (
        key["Bean There Coffee"],
        key["Reel Cinemas"],
        key["Fresh Basket Grocers"],
    )
    assert {b["fundingModel"] for b in document["breakdown"]} == {"PREFUNDED", "ON_REDEMPTION"}
    # Last month only (this month's 300 coffee points at the cinema stay out):
    # coffee 1,500 x 0.010 and grocer 7,000 x 0.008 issued; 1,000 coffee points at the
    # cinema x 0.009, 300 at coffee x 0.008, 1,500 grocer points at grocer x 0.007 paid by
    # the coalition; the cinema owes coffee 300 of its points x 0.008 = 2.40 and the
    # coalition 2.40 x 0.015 = 0.036 -> 0.04 (the cent left by rounding 95.336 to 95.34).
    obligations = [
        (o["debtor"], o["creditor"], o["reason"], o["amount"]) for o in document["obligations"]
    ]
    assert sorted(obligations) == sorted(
        [
            (coffee, "coalition", "issuance", "15.00"),
            (grocer, "coalition", "issuance", "56.00"),
            ("coalition", cinema, "redemption", "9.00"),
            ("coalition", coffee, "redemption", "2.40"),
            ("coalition", grocer, "redemption", "10.50"),
            (cinema, coffee, "redemption", "2.40"),
            (cinema, "coalition", "fee", "0.04"),
        ]
    )  # fmt: skip
    assert {(c["issuer"], c["redeemer"], c["points"]) for c in document["points"]["matrix"]} == {
        (coffee, cinema, 1_000),
        (coffee, coffee, 300),
        (cinema, coffee, 300),
        (grocer, grocer, 1_500),
    }


async def test_the_demo_runs_a_campaign_and_a_co_funded_one_that_rewarded_purchases(
    scratch_database_url: str, tmp_path: Path
) -> None:
    summary = await seed_demo(scratch_database_url, tmp_path)
    database = Database(scratch_database_url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            running = await campaigns.everything(conn)
            ladder = await tiers.all_tiers(conn)
            bought = await purchases.load_many(
                conn,
                await repository.purchases_page(
                    conn,
                    partner_id=None,
                    member_id=None,
                    since=None,
                    until=None,
                    reference=None,
                    before_id=None,
                    limit=10,
                ),
            )
    finally:
        await database.dispose()

    cinema, coffee = summary.partners["Reel Cinemas"], summary.partners["Bean There Coffee"]
    assert {c.status for c in running} == {CampaignStatus.ACTIVE}
    [co_funded] = [c for c in running if len(c.funding) == 2]
    assert {(f.partner_id, f.accepted) for f in co_funded.funding} == {(cinema, True),
                                                                       (coffee, True)}  # fmt: skip
    assert [t.name for t in ladder] == ["Silver", "Gold", "Platinum"]
    [at_the_cinema] = [p for p in bought if p.partner_id == cinema]
    popcorn = [a for a in at_the_cinema.awards if a.campaign_id == co_funded.id]
    # 100 bonus points with popcorn, half each: 50 issued by the cinema, 50 by coffee.
    assert sorted((a.funder, a.points) for a in popcorn) == sorted([(cinema, 50), (coffee, 50)])
    assert at_the_cinema.awards[0].points == 24  # the base: 24.00 x 1


@asynccontextmanager
async def serving(database_url: str, home: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app over the demo's database."""
    settings = Settings(
        home=home, database_url=database_url, secret_key_from_env=TEST_SECRET_KEY, public_url=BASE
    )
    app = create_app(settings, sweep=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http,
    ):
        yield http


async def _gql(http: httpx.AsyncClient, token: str, query: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


BOB_BALANCE = '{ member(memberRef: "bob") { wallet { balance } } }'


async def test_with_the_demo_credentials_alice_gives_bob_points_by_his_email(
    scratch_database_url: str, tmp_path: Path
) -> None:
    summary = await seed_demo(scratch_database_url, tmp_path)
    [partner] = [c for c in summary.credentials if c["role"] == "partner"]
    client = (str(partner["client_id"]), str(partner["client_secret"]))
    async with serving(scratch_database_url, tmp_path) as http:
        partner_token = (
            await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=client)
        ).json()["access_token"]
        bob_before = await _gql(http, partner_token, BOB_BALANCE)
        exchanged = await http.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": "alice",
                "subject_token_type": MEMBER_REF_TOKEN_TYPE,
                "scope": "wallet:read wallet:transfer",
            },
            auth=client,
        )
        assert exchanged.status_code == 200, exchanged.text
        alice = exchanged.json()["access_token"]
        alice_before = await _gql(http, alice, "{ wallet { balance } }")
        transferred = await _gql(
            http,
            alice,
            'mutation { transferPoints(input: {idempotencyKey: "gift-1", points: 150,'
            ' toEmail: "bob@example.com"}) { transaction { kind points } wallet { balance }'
            " userErrors { field code message } } }",
        )
        bob_after = await _gql(http, partner_token, BOB_BALANCE)

    assert exchanged.json()["scope"] == "wallet:read wallet:transfer"
    payload = transferred["transferPoints"]
    assert payload["userErrors"] == []
    assert payload["transaction"] == {"kind": "TRANSFER", "points": "150"}
    alice_had = int(alice_before["wallet"]["balance"])
    assert int(payload["wallet"]["balance"]) == alice_had - 150
    bob_had = int(bob_before["member"]["wallet"]["balance"])
    assert int(bob_after["member"]["wallet"]["balance"]) == bob_had + 150


async def _token_statuses(
    database_url: str, home: Path, credentials: list[demo.Credential]
) -> dict[str, int]:
    """Each role's answer to a client-credentials token request with its secret."""
    async with serving(database_url, home) as http:
        return {
            str(c["role"]): (
                await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(str(c["client_id"]), str(c["client_secret"])),
                )
            ).status_code
            for c in credentials
        }


def _ids(summary: demo.DemoSummary) -> dict[str, str | None]:
    return {str(c["role"]): c["client_id"] for c in summary.credentials}


def _file(summary: demo.DemoSummary) -> tuple[int, list[dict[str, str]]]:
    """The credentials file: its permission bits and its credentials."""
    assert summary.credentials_file is not None
    mode = stat.S_IMODE(summary.credentials_file.stat().st_mode)
    return mode, json.loads(summary.credentials_file.read_text())["credentials"]


async def test_seeding_again_keeps_the_demo_clients_in_a_file_only_its_owner_reads(
    scratch_database_url: str, tmp_path: Path
) -> None:
    first = await seed_demo(scratch_database_url, tmp_path)
    written = _file(first)
    again = await seed_demo(scratch_database_url, tmp_path)

    assert written == (0o600, first.credentials)
    assert (first.credentials_state, again.credentials_state) == (
        demo.CredentialsState.NEW, demo.CredentialsState.KEPT
    )  # fmt: skip
    assert again.credentials_file == first.credentials_file == tmp_path / demo.CREDENTIALS_FILE
    assert _ids(again) == _ids(first)
    assert set(_ids(first)) == {"partner", "operator"}
    mode, kept = _file(again)
    assert mode == 0o600
    assert kept == again.credentials == first.credentials
    tokens = await _token_statuses(scratch_database_url, tmp_path, kept)
    assert tokens == {"partner": 200, "operator": 200}


async def test_a_missing_credentials_file_gets_new_demo_clients_and_a_new_file(
    scratch_database_url: str, tmp_path: Path
) -> None:
    first = await seed_demo(scratch_database_url, tmp_path)
    (tmp_path / demo.CREDENTIALS_FILE).unlink()

    again = await seed_demo(scratch_database_url, tmp_path)

    assert again.credentials_state == demo.CredentialsState.MISSING
    assert set(_ids(again).values()).isdisjoint(_ids(first).values())
    mode, written = _file(again)
    assert mode == 0o600
    assert written == again.credentials
    tokens = await _token_statuses(scratch_database_url, tmp_path, written)
    assert tokens == {"partner": 200, "operator": 200}


async def test_a_file_whose_clients_no_longer_work_is_replaced_and_its_clients_revoked(
    scratch_database_url: str, tmp_path: Path
) -> None:
    first = await seed_demo(scratch_database_url, tmp_path)
    partner_id = _ids(first)["partner"]
    database = Database(scratch_database_url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            await clients.revoke_client(conn, client_id=str(partner_id))
    finally:
        await database.dispose()

    again = await seed_demo(scratch_database_url, tmp_path)

    assert again.credentials_state == demo.CredentialsState.REPLACED
    assert set(_ids(again).values()).isdisjoint(_ids(first).values())
    assert _file(again) == (0o600, again.credentials)
    old = await _token_statuses(scratch_database_url, tmp_path, first.credentials)
    new = await _token_statuses(scratch_database_url, tmp_path, again.credentials)
    assert old == {"partner": 401, "operator": 401}  # the old secrets stop working
    assert new == {"partner": 200, "operator": 200}


async def _serve_demo(database_url: str, home: Path) -> list[str]:
    """What `exchange serve --demo` prints before it serves (then it is stopped)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(home),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
    }
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "exchange.cli", "serve", "--demo", "--port", str(free_port())),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert server.stdout is not None
    lines: list[str] = []
    try:
        while not lines or not lines[-1].startswith("serving "):
            line = await asyncio.wait_for(server.stdout.readline(), timeout=60)
            assert line, "".join(lines)
            lines.append(line.decode())
    finally:
        server.terminate()
        await server.wait()
    return lines


async def test_serve_demo_prints_where_the_credentials_are_kept_and_keeps_them(
    scratch_database_url: str, tmp_path: Path
) -> None:
    first = await _serve_demo(scratch_database_url, tmp_path)
    again = await _serve_demo(scratch_database_url, tmp_path)

    path = tmp_path / demo.CREDENTIALS_FILE
    [partner, operator] = json.loads(path.read_text())["credentials"]
    said = [[line for line in out if line.startswith("demo credentials")] for out in (first, again)]
    assert said == [
        [f"demo credentials (new, kept in {path} (only you may read it); later runs keep these"
         " clients):\n"],
        [f"demo credentials (kept from {path}):\n"],
    ]  # fmt: skip
    for out in (first, again):
        assert (
            f"  partner Bean There Coffee: client_id={partner['client_id']}"
            f" client_secret={partner['client_secret']}\n"
        ) in out
        assert f"  operator: client_id={operator['client_id']}" in "".join(out)


async def test_the_clients_an_earlier_demo_listed_by_id_are_revoked(
    scratch_database_url: str, tmp_path: Path
) -> None:
    first = await seed_demo(scratch_database_url, tmp_path)
    (tmp_path / demo.CREDENTIALS_FILE).unlink()
    old_ids = [str(client_id) for client_id in _ids(first).values()]
    (tmp_path / demo.OLD_CLIENTS_FILE).write_text(json.dumps(old_ids))

    again = await seed_demo(scratch_database_url, tmp_path)

    assert not (tmp_path / demo.OLD_CLIENTS_FILE).exists()
    assert again.credentials_state == demo.CredentialsState.MISSING
    old = await _token_statuses(scratch_database_url, tmp_path, first.credentials)
    assert old == {"partner": 401, "operator": 401}
