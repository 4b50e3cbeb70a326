"""A partner's members over HTTP with real tokens: linking refuses another person's
contact for a member, unlinking removes a ref and nothing else, and a customer who
changed address gets a new e-mail or phone (its blind index and its ciphertext)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from exchange.kit.db import Database, sql
from exchange.kit.invariant import present
from exchange.kit.system import SYSTEM
from graphql_schema import ids
from partners import identity
from partners.identity import IdentityKeys
from tests.conftest import TEST_SECRET_KEY
from tests.graphql.conftest import Caller, email, new_partner

KEYS = IdentityKeys.from_secret(TEST_SECRET_KEY.encode())
LINK = """mutation($ref: String!, $email: String, $phone: String) {
  linkMember(input: {memberRef: $ref, email: $email, phone: $phone}) {
    member { id } userErrors { field code message } } }"""
UNLINK = """mutation($ref: String!) { unlinkMember(input: {memberRef: $ref}) {
  memberRef userErrors { field code message } } }"""
UPDATE = """mutation($ref: String!, $email: String, $phone: String) {
  updateMemberContact(input: {memberRef: $ref, email: $email, phone: $phone}) {
    member { id wallet { balance } } userErrors { field code message } } }"""
EARN = """mutation($key: String!, $ref: String!) {
  earnPoints(input: {idempotencyKey: $key, memberRef: $ref, points: 70}) {
    transaction { id } userErrors { code } } }"""
MEMBER = """query($ref: String!) { member(memberRef: $ref) { id wallet { balance } } }"""


def phone() -> str:
    return f"+4420{secrets.randbelow(10**8):08d}"


def ref() -> str:
    return f"cust-{secrets.token_hex(4)}"


@pytest.fixture
async def partner(db: Database, api: httpx.AsyncClient) -> Caller:
    return await new_partner(db, api)


async def _link(partner: Caller, member_ref: str, **contact: str) -> dict[str, Any]:
    result = await partner.gql(LINK, ref=member_ref, **contact)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["linkMember"]
    return payload


async def _linked(partner: Caller, member_ref: str, **contact: str) -> str:
    """Link and return the member's global id."""
    payload = await _link(partner, member_ref, **contact)
    assert payload["userErrors"] == [], payload
    member_id: str = payload["member"]["id"]
    return member_id


async def _contact(db: Database, member_gid: str) -> tuple[str | None, str | None]:
    """What the operator's GDPR export decrypts for the member: (email, phone)."""
    member_id = present(ids.decode_as(member_gid, "Member"), "a member id")
    async with db.transaction(SYSTEM) as conn:
        exported = await identity.export_member(conn, keys=KEYS, member_id=member_id)
    return exported.email, exported.phone


@pytest.mark.parametrize("kind", ["email", "phone"])
async def test_an_existing_ref_with_a_different_contact_is_refused_and_nothing_changes(
    db: Database, partner: Caller, kind: str
) -> None:
    new = email if kind == "email" else phone
    first, second, mine = new(), new(), ref()
    member = await _linked(partner, mine, **{kind: first})

    refused = await _link(partner, mine, **{kind: second})

    assert refused["member"] is None
    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [
        ("CONTACT_MISMATCH", ["input", kind])
    ]
    assert "updateMemberContact" in refused["userErrors"][0]["message"]
    stored = await _contact(db, member)
    assert stored[0 if kind == "email" else 1] == first
    # The refused contact was attached to nobody: it still makes a member of its own.
    assert await _linked(partner, ref(), **{kind: second}) != member


async def test_another_members_email_is_refused_for_an_existing_ref(
    db: Database, partner: Caller
) -> None:
    theirs, my_phone, mine = email(), phone(), ref()
    other = await _linked(partner, ref(), email=theirs)
    member = await _linked(partner, mine, phone=my_phone)

    refused = await _link(partner, mine, email=theirs)

    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [
        ("CONTACT_IN_USE", ["input", "email"])
    ]
    assert await _contact(db, member) == (None, my_phone)
    assert await _contact(db, other) == (theirs, None)


async def test_the_same_person_relinked_with_a_contact_it_lacks_gains_it(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    my_email, my_phone, mine = email(), phone(), ref()
    member = await _linked(partner, mine, email=my_email)

    again = await _linked(partner, mine, email=my_email)
    added = await _linked(partner, mine, email=my_email, phone=my_phone)
    cinema = await new_partner(db, api)
    by_phone = await _linked(cinema, ref(), phone=my_phone)

    assert again == added == by_phone == member
    assert await _contact(db, member) == (my_email, my_phone)


async def test_a_second_partner_linking_by_email_with_another_phone_is_refused(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    my_email, my_phone = email(), phone()
    member = await _linked(partner, ref(), email=my_email, phone=my_phone)
    cinema = await new_partner(db, api)
    theirs = ref()

    refused = await _link(cinema, theirs, email=my_email, phone=phone())

    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [
        ("CONTACT_MISMATCH", ["input", "phone"])
    ]
    assert (await cinema.gql(MEMBER, ref=theirs))["data"]["member"] is None  # not linked
    assert await _contact(db, member) == (my_email, my_phone)


async def test_unlinking_removes_the_ref_and_keeps_the_member_and_its_wallet(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    my_email, mine = email(), ref()
    member = await _linked(partner, mine, email=my_email)
    await partner.gql(EARN, key=secrets.token_hex(6), ref=mine)
    cinema = await new_partner(db, api)
    theirs = ref()
    await _linked(cinema, theirs, email=my_email)

    unlinked = (await partner.gql(UNLINK, ref=mine))["data"]["unlinkMember"]
    gone = await partner.gql(MEMBER, ref=mine)
    earn = (await partner.gql(EARN, key=secrets.token_hex(6), ref=mine))["data"]["earnPoints"]
    seen_by_cinema = await cinema.gql(MEMBER, ref=theirs)
    again = (await partner.gql(UNLINK, ref=mine))["data"]["unlinkMember"]
    relinked = await _linked(partner, mine, email=my_email)

    assert unlinked == {"memberRef": mine, "userErrors": []}
    assert gone["data"]["member"] is None
    assert earn["userErrors"] == [{"code": "MEMBER_NOT_LINKED"}]
    assert seen_by_cinema["data"]["member"] == {"id": member, "wallet": {"balance": "70"}}
    assert again["memberRef"] is None
    assert [(e["code"], e["field"]) for e in again["userErrors"]] == [
        ("MEMBER_NOT_LINKED", ["input", "memberRef"])
    ]
    assert relinked == member


async def test_the_member_mutations_need_members_link(
    db: Database, api: httpx.AsyncClient, partner: Caller
) -> None:
    mine = ref()
    await _linked(partner, mine, email=email())
    reader = await new_partner(db, api, scopes="members:read")
    reader_ref = ref()

    for document, name in ((UNLINK, "unlinkMember"), (UPDATE, "updateMemberContact")):
        result = await reader.gql(document, ref=reader_ref, email=email())
        assert [e["code"] for e in result["data"][name]["userErrors"]] == ["FORBIDDEN"]


@pytest.mark.parametrize("kind", ["email", "phone"])
async def test_a_new_contact_replaces_the_old_one_everywhere(
    db: Database, api: httpx.AsyncClient, partner: Caller, kind: str
) -> None:
    new = email if kind == "email" else phone
    old, changed, mine = new(), new(), ref()
    member = await _linked(partner, mine, **{kind: old})

    result = await partner.gql(UPDATE, ref=mine, **{kind: changed})
    payload = result["data"]["updateMemberContact"]
    cinema = await new_partner(db, api)
    by_new = await _linked(cinema, ref(), **{kind: changed})
    by_old = await _linked(cinema, ref(), **{kind: old})

    assert payload["userErrors"] == []
    assert payload["member"]["id"] == member
    assert by_new == member  # the blind index followed
    assert by_old != member  # the old one matches nobody any more
    stored = await _contact(db, member)
    assert stored[0 if kind == "email" else 1] == changed  # and the ciphertext


async def test_a_contact_of_another_member_is_refused_and_nothing_changes(
    db: Database, partner: Caller
) -> None:
    theirs_email, theirs_phone = email(), phone()
    await _linked(partner, ref(), email=theirs_email, phone=theirs_phone)
    my_email, my_phone, mine = email(), phone(), ref()
    member = await _linked(partner, mine, email=my_email, phone=my_phone)

    taken = await partner.gql(UPDATE, ref=mine, email=theirs_email)
    # A free e-mail with a taken phone: one transaction, so the e-mail does not change.
    half = await partner.gql(UPDATE, ref=mine, email=email(), phone=theirs_phone)

    assert [
        (e["code"], e["field"]) for e in taken["data"]["updateMemberContact"]["userErrors"]
    ] == [("CONTACT_IN_USE", ["input", "email"])]
    assert [(e["code"], e["field"]) for e in half["data"]["updateMemberContact"]["userErrors"]] == [
        ("CONTACT_IN_USE", ["input", "phone"])
    ]
    assert await _contact(db, member) == (my_email, my_phone)


@pytest.mark.parametrize(
    ("contact", "code", "field"),
    [
        ({}, "INVALID_INPUT", "email"),
        ({"email": "not-an-address"}, "INVALID_INPUT", "email"),
        ({"phone": "4155550123"}, "INVALID_INPUT", "phone"),
    ],
)
async def test_bad_contact_updates_are_user_errors(
    partner: Caller, contact: dict[str, str], code: str, field: str
) -> None:
    mine = ref()
    await _linked(partner, mine, email=email())

    payload = (await partner.gql(UPDATE, ref=mine, **contact))["data"]["updateMemberContact"]

    assert payload["member"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, ["input", field])]


async def test_an_unknown_ref_has_no_contact_to_update(partner: Caller) -> None:
    payload = (await partner.gql(UPDATE, ref=ref(), email=email()))["data"]["updateMemberContact"]

    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("MEMBER_NOT_LINKED", ["input", "memberRef"])
    ]


async def test_two_members_given_one_new_email_at_once_one_gets_it_the_other_is_refused(
    db: Database, partner: Caller
) -> None:
    """Both calls find the e-mail free, then wait on their member's row (held here) before
    writing it; without a lock on the contact between the check and the write, the second
    write would break the unique blind index (an internal error)."""
    first, second = ref(), ref()
    members = [await _linked(partner, r, phone=phone()) for r in (first, second)]
    contested = email()
    member_ids = [present(ids.decode_as(m, "Member"), "a member id") for m in members]

    async with db.transaction(SYSTEM) as conn:
        await conn.execute(
            sql("SELECT 1 FROM member_identity WHERE member_id = ANY(:ids) FOR UPDATE"),
            {"ids": member_ids},
        )
        calls = [
            asyncio.create_task(partner.gql(UPDATE, ref=r, email=contested))
            for r in (first, second)
        ]
        await asyncio.sleep(1.0)  # both calls are waiting now
    results = await asyncio.gather(*calls)

    payloads = [r["data"]["updateMemberContact"] for r in results]
    codes = sorted(e["code"] for p in payloads for e in p["userErrors"])
    assert codes == ["CONTACT_IN_USE"], results
    winner = next(p["member"]["id"] for p in payloads if p["member"] is not None)
    assert [(await _contact(db, m))[0] == contested for m in members] == [
        m == winner for m in members
    ]
