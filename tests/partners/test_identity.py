"""Worked examples: linking partner customers to coalition members."""

from __future__ import annotations

import secrets

import pytest

from exchange.kit.db import Database, sql
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from partners import identity, registry
from partners.identity import IdentityKeys
from tests.conftest import NOW
from tests.partners.test_registry import TERMS, unique_name

KEYS = IdentityKeys.from_secret(b"test-pepper-" + secrets.token_bytes(8))


async def _partner(db: Database) -> int:
    async with db.transaction(SYSTEM) as conn:
        return (await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=NOW)).id


def _email() -> str:
    return f"Ada.{secrets.token_hex(3)}@Example.COM"


async def _link(db: Database, partner: int, ref: str, **facts: str) -> identity.LinkResult:
    async with db.transaction(SYSTEM) as conn:
        return await identity.link_member(
            conn, keys=KEYS, partner_id=partner, member_ref=ref, now=NOW, **facts
        )


async def test_the_same_person_linked_by_two_partners_is_one_member(db: Database) -> None:
    coffee, cinema = await _partner(db), await _partner(db)
    email = _email()

    first = await _link(db, coffee, "c-1", email=email)
    second = await _link(db, cinema, "m-77", email=f"  {email.upper()} ")

    assert first.new_member
    assert not second.new_member
    assert first.member_id == second.member_id


async def test_a_phone_in_any_common_format_matches_the_same_member(db: Database) -> None:
    coffee, cinema = await _partner(db), await _partner(db)
    digits = f"4155{secrets.randbelow(10**6):06d}"

    first = await _link(db, coffee, "c-1", phone=f"+1 ({digits[:3]}) {digits[3:6]}-{digits[6:]}")
    second = await _link(db, cinema, "m-1", phone=f"001{digits}")

    assert first.member_id == second.member_id


async def test_a_partner_resolves_only_its_own_refs(db: Database) -> None:
    coffee, cinema = await _partner(db), await _partner(db)
    linked = await _link(db, coffee, "shared-looking-ref", email=_email())

    async with db.transaction(SYSTEM) as conn:
        mine = await identity.resolve(conn, partner_id=coffee, member_ref="shared-looking-ref")
    with pytest.raises(DomainError) as error:
        async with db.transaction(SYSTEM) as conn:
            await identity.resolve(conn, partner_id=cinema, member_ref="shared-looking-ref")

    assert mine == linked.member_id
    assert error.value.code == ErrorCode.MEMBER_NOT_LINKED


async def test_identity_is_stored_only_as_blind_index_and_ciphertext(db: Database) -> None:
    coffee = await _partner(db)
    email = _email()
    linked = await _link(db, coffee, "c-9", email=email, phone="+442071838750")

    async with db.transaction(SYSTEM) as conn:
        row = (
            await conn.execute(
                sql("SELECT * FROM member_identity WHERE member_id = :m"),
                {"m": linked.member_id},
            )
        ).first()
    stored = b"".join(bytes(v) for v in row if isinstance(v, (bytes, memoryview)))

    assert email.casefold().encode() not in stored
    assert b"2071838750" not in stored


async def test_the_operator_exports_and_erases_a_member(db: Database) -> None:
    coffee = await _partner(db)
    email = _email()
    linked = await _link(db, coffee, "c-5", email=email)

    async with db.transaction(SYSTEM) as conn:
        exported = await identity.export_member(conn, keys=KEYS, member_id=linked.member_id)
        await identity.erase_member(conn, member_id=linked.member_id, now=NOW)
        erased = await identity.export_member(conn, keys=KEYS, member_id=linked.member_id)

    assert exported.email == email.casefold()
    assert [ref for _, ref in exported.links] == ["c-5"]
    assert (erased.email, erased.links, erased.erased) == (None, [], True)
    relinked = await _link(db, coffee, "c-5", email=email)
    assert relinked.member_id != linked.member_id


@pytest.mark.parametrize(
    ("facts", "field"),
    [
        ({}, "email"),
        ({"email": "not-an-address"}, "email"),
        ({"phone": "4155550123"}, "phone"),
        ({"phone": "+12"}, "phone"),
    ],
)
async def test_bad_identity_facts_are_refused(
    db: Database, facts: dict[str, str], field: str
) -> None:
    coffee = await _partner(db)

    with pytest.raises(DomainError) as error:
        await _link(db, coffee, "c-1", **facts)

    assert (error.value.code, error.value.field) == (ErrorCode.INVALID_INPUT, [field])


async def test_an_email_and_a_phone_of_two_different_members_are_refused(db: Database) -> None:
    coffee = await _partner(db)
    phone = f"+4420{secrets.randbelow(10**8):08d}"
    email = _email()
    await _link(db, coffee, "a", email=email)
    await _link(db, coffee, "b", phone=phone)

    with pytest.raises(DomainError) as error:
        await _link(db, coffee, "c", email=email, phone=phone)

    assert error.value.code == ErrorCode.INVALID_INPUT
