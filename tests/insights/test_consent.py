"""Consent to cross-partner use: recorded by an operator (audited) or by the member's
own token with consent:write, which no partner can obtain by token exchange; with it,
a partner's segments of the member are judged on the coalition's profile."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.cli.test_cli import run
from tests.graphql.conftest import Caller, email, new_operator
from tests.insights.conftest import SINCE, bought, profile_of
from tests.loyalty.conftest import link, partner_with

SET = """mutation($input: SetMemberConsentInput!) { setMemberConsent(input: $input) {
  consentCrossPartner userErrors { code field message } } }"""


async def _member_id(db: Database, partner: Caller, ref: str) -> int:
    async with db.transaction(SYSTEM) as conn:
        found = await conn.execute(
            sql("SELECT member_id FROM member_link WHERE partner_id = :p AND member_ref = :r"),
            {"p": partner.partner_id, "r": ref},
        )
        return int(found.scalar_one())


async def _admin(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_operator(db, api)  # partners:admin among its scopes


def _gid(member_id: int) -> str:
    import base64

    return base64.urlsafe_b64encode(f"Member:{member_id}".encode()).decode().rstrip("=")


async def _set(caller: Caller, given: bool, member_id: int | None = None) -> dict[str, Any]:
    given_input: dict[str, Any] = {"consentCrossPartner": given}
    if member_id is not None:
        given_input["memberId"] = _gid(member_id)
    result = await caller.gql(SET, input=given_input)
    payload: dict[str, Any] = result["data"]["setMemberConsent"]
    return payload


async def test_with_consent_a_partners_segments_use_the_coalitions_profile(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    cinema = await partner_with(db, api, since=SINCE)
    ref, mail = f"m-{secrets.token_hex(4)}", email()
    for partner in (cafe, cinema):  # one e-mail: one member, linked by both
        await partner.gql(
            "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
            " { userErrors { code } } }",
            r=ref,
            e=mail,
        )
    await bought(cafe, ref, "10.00", "2025-12-01T10:00:00+00:00")  # 211 days before NOW
    await bought(cinema, ref, "30.00", "2026-06-20T10:00:00+00:00")
    operator = await _admin(db, api)
    member_id = await _member_id(db, cafe, ref)
    before = await profile_of(cafe, ref)

    on = await _set(operator, True, member_id)
    with_consent = await profile_of(cafe, ref)
    off = await _set(operator, False, member_id)
    without = await profile_of(cafe, ref)

    assert before["segments"] == ["LAPSED"]  # the cafe's own purchase only
    assert on == {"consentCrossPartner": True, "userErrors": []}
    # the coalition's: first 211 days ago, last 10 days ago, two purchases
    assert with_consent["segments"] == ["ACTIVE", "REPEAT"]
    assert with_consent["profile"]["consentCrossPartner"] is True
    assert with_consent["profile"]["purchasesHere"] == 1  # still only the cafe's figures
    assert with_consent["profile"]["spendHere"] == "10"
    assert off["consentCrossPartner"] is False
    assert without["segments"] == ["LAPSED"]
    async with db.transaction(SYSTEM) as conn:
        logged = await conn.execute(
            sql("SELECT details ->> 'crossPartner' FROM audit_log"
                 " WHERE action = 'member.consent_changed' AND subject = :s ORDER BY id"),
            {"s": f"member:{member_id}"},
        )  # fmt: skip
        assert list(logged.scalars()) == ["true", "false"]


async def test_no_partner_can_delegate_consent_write(db: Database, api: httpx.AsyncClient) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)

    response = await api.post(
        "/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": ref,
            "subject_token_type": MEMBER_REF_TOKEN_TYPE,
            "scope": "wallet:read consent:write",
        },
        auth=(cafe.client_id, cafe.client_secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert "consent:write" in response.json()["error_description"]


async def test_only_the_member_with_consent_write_or_an_operator_records_consent(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    member = await cafe.member_token(ref, scope="wallet:read offers:write")
    operator = await _admin(db, api)

    as_partner = await _set(cafe, True)
    as_member = await _set(member, True)
    no_member = await _set(operator, True)

    assert as_partner["userErrors"][0]["code"] == "FORBIDDEN"
    assert as_member["userErrors"][0]["code"] == "FORBIDDEN"
    assert (no_member["userErrors"][0]["code"], no_member["userErrors"][0]["field"]) == (
        "INVALID_INPUT", ["input", "memberId"],
    )  # fmt: skip
    assert (await profile_of(cafe, ref))["profile"]["consentCrossPartner"] is False


async def test_an_operator_records_consent_with_the_command_and_it_is_audited(
    db: Database, api: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    ref = await link(cafe)
    member_id = await _member_id(db, cafe, ref)

    on = run(["member", "consent", str(member_id), "--cross-partner", "on"], database_url,
             tmp_path)  # fmt: skip
    again = run(["member", "consent", str(member_id), "--cross-partner", "on"], database_url,
                tmp_path)  # fmt: skip
    nobody = run(["member", "consent", "999999999999", "--cross-partner", "on"], database_url,
                 tmp_path)  # fmt: skip

    assert on.returncode == 0, on.stderr
    assert on.stdout.strip() == f"member {member_id}: cross-partner consent on"
    assert again.stdout.strip().endswith("(already)")
    assert nobody.returncode != 0
    assert len(nobody.stderr.strip().splitlines()) == 1
    assert (await profile_of(cafe, ref))["profile"]["consentCrossPartner"] is True
    async with db.transaction(SYSTEM) as conn:
        logged = await conn.execute(
            sql("SELECT actor, origin FROM audit_log WHERE action = 'member.consent_changed'"
                 " AND subject = :s"),
            {"s": f"member:{member_id}"},
        )  # fmt: skip
        [(actor, origin)] = logged.all()  # once: the second changed nothing
    assert actor.startswith("cli:")
    assert origin == "cli"
