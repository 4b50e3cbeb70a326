"""transferPoints must not tell a member whether an e-mail or phone belongs to a
coalition member (docs/decisions/0013). The sender's balance is checked before the
recipient is looked up; at most MAX_FAILED_RECIPIENT_LOOKUPS look-ups that find no one
per sending member in any 24 hours, then LIMIT_EXCEEDED for every transfer it attempts,
to an unknown recipient and to a known one alike. The count lives in PostgreSQL (a
member's own limit bucket): it holds across the member's tokens of different partners
and across server processes. All over HTTP with real member tokens (token exchange)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from exchange.app import create_app
from exchange.kit import limits
from exchange.kit.db import Database, sql
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from exchange.usecases.points import FAILED_LOOKUPS
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import BASE, Caller, email, new_partner

LINK = """mutation($ref: String!, $email: String, $phone: String) {
  linkMember(input: {memberRef: $ref, email: $email, phone: $phone}) {
    member { id } userErrors { code } } }"""
EARN = """mutation($key: String!, $ref: String!, $points: Int!) {
  earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: $points}) {
    userErrors { code } } }"""
TO_EMAIL = """mutation($key: String!, $points: Int!, $to: String!) {
  transferPoints(input: {idempotencyKey: $key, points: $points, toEmail: $to}) {
    transaction { id points } wallet { balance } userErrors { field code message } } }"""
TO_PHONE = """mutation($key: String!, $points: Int!, $to: String!) {
  transferPoints(input: {idempotencyKey: $key, points: $points, toPhone: $to}) {
    transaction { id points } wallet { balance } userErrors { field code message } } }"""
FIVE = limits.MAX_FAILED_RECIPIENT_LOOKUPS


def key() -> str:
    return secrets.token_hex(8)


def phone() -> str:
    return "+1415" + str(secrets.randbelow(10**7)).zfill(7)


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


async def _member(partner: Caller, points: int = 0) -> tuple[str, str, str]:
    """A member linked by ``partner`` with ``points``: (its ref, e-mail, phone)."""
    ref, address, number = f"m-{secrets.token_hex(4)}", email(), phone()
    linked = await partner.gql(LINK, ref=ref, email=address, phone=number)
    assert linked["data"]["linkMember"]["userErrors"] == []
    if points:
        earned = await partner.gql(EARN, key=key(), ref=ref, points=points)
        assert earned["data"]["earnPoints"]["userErrors"] == []
    return ref, address, number


async def _sender(partner: Caller, points: int) -> Caller:
    ref, _, _ = await _member(partner, points)
    return await partner.member_token(ref, "wallet:read wallet:transfer")


async def _transfer(
    sender: Caller, to: str, points: int = 1, *, by: str = TO_EMAIL, idempotency_key: str = ""
) -> dict[str, Any]:
    result = await sender.gql(by, key=idempotency_key or key(), points=points, to=to)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["transferPoints"]
    return payload


def _refusal(payload: dict[str, Any]) -> tuple[str, list[str]] | None:
    errors = payload["userErrors"]
    return (errors[0]["code"], errors[0]["field"]) if errors else None


async def _balance(sender: Caller) -> str:
    return str((await sender.gql("{ wallet { balance } }"))["data"]["wallet"]["balance"])


async def _lookups_in_bucket(db: Database, sender_token: Caller) -> int | None:
    """The level of the sender's failed-look-up bucket (None: it has none)."""
    whoami = await sender_token.api.get(
        "/api/whoami", headers={"Authorization": f"Bearer {sender_token.token}"}
    )
    member_id = whoami.json()["memberId"]
    async with db.transaction(SYSTEM) as conn:
        level = (
            await conn.execute(
                sql("SELECT level FROM limit_bucket WHERE name = :name AND member_id = :m"),
                {"name": f"{FAILED_LOOKUPS.name}:member:{member_id}", "m": member_id},
            )
        ).scalar()
    return None if level is None else round(level)


async def _age_bucket(db: Database, sender_token: Caller, by: timedelta) -> None:
    """Move the sender's bucket's last change back in time: the bucket drains by the
    database's clock since then, as if ``by`` had passed."""
    whoami = await sender_token.api.get(
        "/api/whoami", headers={"Authorization": f"Bearer {sender_token.token}"}
    )
    async with db.transaction(SYSTEM) as conn:
        moved = await conn.affected(
            sql(
                "UPDATE limit_bucket SET updated_at = updated_at - CAST(:by AS interval)"
                " WHERE member_id = :m"
            ),
            {"by": by, "m": whoami.json()["memberId"]},
        )
    assert moved == 1


async def test_a_sender_without_the_points_learns_nothing_about_the_recipient(
    db: Database, partner: Caller
) -> None:
    broke = await _sender(partner, 0)
    short = await _sender(partner, 5)
    _, known, known_phone = await _member(partner)

    answers = [
        await _transfer(broke, email()),
        await _transfer(broke, known),
        await _transfer(broke, known_phone, by=TO_PHONE),
        await _transfer(short, email(), points=6),
        await _transfer(short, known, points=6),
    ]

    assert [_refusal(a) for a in answers] == [("INSUFFICIENT_POINTS", ["input", "points"])] * 5
    assert await _lookups_in_bucket(db, broke) is None  # nothing was looked up
    assert await _lookups_in_bucket(db, short) is None
    assert await _balance(short) == "5"


async def test_the_sixth_failed_lookup_in_a_day_is_limit_exceeded_for_every_recipient(
    db: Database, partner: Caller
) -> None:
    sender = await _sender(partner, 100)
    _, known, known_phone = await _member(partner)

    failed = [await _transfer(sender, email()) for _ in range(FIVE)]
    sixth = await _transfer(sender, email())
    to_known = await _transfer(sender, known)
    to_known_phone = await _transfer(sender, known_phone, by=TO_PHONE)
    malformed = await _transfer(sender, "not an e-mail")

    assert [_refusal(a) for a in failed] == [("NOT_FOUND", ["input", "toEmail"])] * FIVE
    assert _refusal(sixth) == ("LIMIT_EXCEEDED", ["input", "toEmail"])
    assert _refusal(to_known) == ("LIMIT_EXCEEDED", ["input", "toEmail"])
    assert _refusal(to_known_phone) == ("LIMIT_EXCEEDED", ["input", "toPhone"])
    assert _refusal(malformed) == ("INVALID_INPUT", ["input", "toEmail"])  # checked first
    assert await _balance(sender) == "100"
    assert await _lookups_in_bucket(db, sender) == FIVE


async def test_a_successful_transfer_does_not_count(db: Database, partner: Caller) -> None:
    sender = await _sender(partner, 100)
    _, known, _ = await _member(partner)

    failed = [await _transfer(sender, email()) for _ in range(FIVE - 1)]
    sent = [await _transfer(sender, known, points=10) for _ in range(3)]
    last_allowed = await _transfer(sender, email())
    over = await _transfer(sender, email())

    assert [_refusal(a) for a in failed] == [("NOT_FOUND", ["input", "toEmail"])] * len(failed)
    assert [(a["transaction"]["points"], _refusal(a)) for a in sent] == [("10", None)] * 3
    assert _refusal(last_allowed) == ("NOT_FOUND", ["input", "toEmail"])
    assert _refusal(over) == ("LIMIT_EXCEEDED", ["input", "toEmail"])
    assert await _balance(sender) == "70"


async def test_the_window_rolls_one_lookup_back_each_day(db: Database, partner: Caller) -> None:
    sender = await _sender(partner, 100)
    _, known, _ = await _member(partner)
    for _ in range(FIVE):
        await _transfer(sender, email())

    await _age_bucket(db, sender, timedelta(hours=23, minutes=59))
    within_the_day = await _transfer(sender, known)
    await _age_bucket(db, sender, timedelta(minutes=1, seconds=1))
    a_day_later = await _transfer(sender, email())
    then = await _transfer(sender, known)

    assert _refusal(within_the_day) == ("LIMIT_EXCEEDED", ["input", "toEmail"])
    assert _refusal(a_day_later) == ("NOT_FOUND", ["input", "toEmail"])  # one came back
    assert _refusal(then) == ("LIMIT_EXCEEDED", ["input", "toEmail"])  # and was used


async def test_a_retry_of_a_sent_gift_replays_even_with_the_points_gone(partner: Caller) -> None:
    sender = await _sender(partner, 30)
    _, known, _ = await _member(partner)
    gift = key()

    sent = await _transfer(sender, known, points=30, idempotency_key=gift)
    again = await _transfer(sender, known, points=30, idempotency_key=gift)
    elsewhere = await _transfer(sender, email(), points=30, idempotency_key=gift)

    assert _refusal(sent) is None
    assert again["transaction"] == sent["transaction"]
    assert _refusal(elsewhere) == ("IDEMPOTENCY_KEY_REUSED", ["input", "idempotencyKey"])
    assert await _balance(sender) == "0"


@pytest.fixture(scope="module")
async def another_process(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database, as another server process runs it."""
    settings = Settings(
        home=tmp_path_factory.mktemp("another"),
        database_url=database_url,
        secret_key_from_env=TEST_SECRET_KEY,
        public_url=BASE,
    )
    app = create_app(settings, sweep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def test_the_count_is_the_members_across_partners_and_server_processes(
    db: Database, api: httpx.AsyncClient, another_process: httpx.AsyncClient
) -> None:
    first, second = await new_partner(db, api), await new_partner(db, api)
    ref, address, _ = await _member(first, 50)
    second_ref = f"s-{secrets.token_hex(4)}"
    again = await second.gql(LINK, ref=second_ref, email=address)
    _, known, _ = await _member(first)
    through_first = await first.member_token(ref, "wallet:read wallet:transfer")
    through_second = await second.member_token(second_ref, "wallet:read wallet:transfer")
    elsewhere = Caller(another_process, through_second.token, second.client_id, "")

    failed = [await _transfer(through_first, email()) for _ in range(FIVE)]
    other_partner = await _transfer(through_second, known)
    other_process = await _transfer(elsewhere, email())

    assert again["data"]["linkMember"]["userErrors"] == []  # one member, two partners
    assert [_refusal(a) for a in failed] == [("NOT_FOUND", ["input", "toEmail"])] * len(failed)
    assert _refusal(other_partner) == ("LIMIT_EXCEEDED", ["input", "toEmail"])
    assert _refusal(other_process) == ("LIMIT_EXCEEDED", ["input", "toEmail"])
