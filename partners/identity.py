"""Member identity: a partner links its own customer reference to a coalition member by
e-mail and/or phone. The same person linked by two partners is one member.

Identity is stored only as an HMAC blind index (for matching) and AES-GCM ciphertext
(for the operator's GDPR export), under keys derived from EXCHANGE_SECRET_KEY. A partner
addresses members only through its own refs and never sees another partner's refs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from exchange import ledger
from exchange.kit import limits
from exchange.kit.db import Connection
from exchange.kit.errors import InvalidInput, Kind, NotFound, Ref
from exchange.kit.invariant import present
from exchange.kit.limits import MAX_EMAIL_LENGTH, MAX_MEMBER_REF_LENGTH, MAX_PHONE_LENGTH
from partners import crypto, repository
from partners.errors import ContactInUse, ContactMismatch, MemberNotLinked

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def normalize_email(value: str) -> str:
    email = limits.text(value, "email", max_length=MAX_EMAIL_LENGTH).strip().casefold()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise InvalidInput("email is not a valid e-mail address", field=["email"])
    return email


def normalize_phone(value: str) -> str:
    """E.164: '+' and 8 to 15 digits; '00' for '+' and punctuation are accepted."""
    typed = limits.text(value, "phone", max_length=MAX_PHONE_LENGTH)
    phone = _PHONE_PUNCTUATION.sub("", typed.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not _E164.match(phone):
        raise InvalidInput(
            "phone must be in international form, e.g. +14155550123", field=["phone"]
        )
    return phone


@dataclass(frozen=True)
class IdentityKeys:
    """Keys derived from EXCHANGE_SECRET_KEY for what the exchange keeps sealed: members'
    contacts (a blind index and their encryption) and webhook endpoints' signing
    secrets (which must be read back to sign)."""

    index_key: bytes
    encryption_key: bytes
    webhook_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> IdentityKeys:
        return cls(
            index_key=crypto.derive_key(secret, "member-identity-blind-index"),
            encryption_key=crypto.derive_key(secret, "member-identity-encryption"),
            webhook_key=crypto.derive_key(secret, "webhook-endpoint-secrets"),
        )


@dataclass(frozen=True)
class LinkResult:
    member_id: int
    new_member: bool
    new_link: bool


def check_ref(member_ref: object) -> str:
    return limits.text(member_ref, "memberRef", max_length=MAX_MEMBER_REF_LENGTH)


def valid_ref(member_ref: object) -> bool:
    """Whether a ref could be linked at all (:func:`check_ref` would accept it)."""
    try:
        check_ref(member_ref)
    except InvalidInput:
        return False
    return True


async def link_member(
    conn: Connection,
    *,
    keys: IdentityKeys,
    partner_id: int,
    member_ref: str,
    now: datetime,
    email: str | None = None,
    phone: str | None = None,
) -> LinkResult:
    """Link ``member_ref`` of ``partner_id`` to the member with this e-mail or phone,
    creating the member when nobody has either. Linking the same ref again with facts
    of the same member is a no-op.

    The facts must be the member's: one it has with a different value is
    CONTACT_MISMATCH (a customer who changed address: :func:`update_contact`), one
    another member has is CONTACT_IN_USE; one it does not have yet is added
    (docs/decisions/0015)."""
    check_ref(member_ref)
    if not email and not phone:
        raise InvalidInput("give an email or a phone to link a member", field=["email"])
    contact = _contact(keys, email, phone)
    await repository.lock_identities(conn, indexes=list(contact.indexes.values()))
    holders = await _holders(conn, contact)
    if len(set(holders.values())) > 1:
        raise InvalidInput(
            "the email and the phone belong to two different members", field=["phone"]
        )
    already = await repository.link(conn, partner_id=partner_id, member_ref=member_ref)
    member_id = already or next(iter(holders.values()), None)
    new_member = member_id is None
    if member_id is None:
        member_id = await ledger.open_member(conn)
        await repository.insert_identity(
            conn, member_id=member_id, created_at=now, **contact.columns()
        )
    # The link before reading the member's facts: row-level security lets a partner see
    # and change only the identity of a member it has linked (docs/decisions/0009).
    new_link = await repository.insert_link(
        conn, partner_id=partner_id, member_ref=member_ref, member_id=member_id, now=now
    )
    if not new_member:
        await _same_person(conn, member_id, contact, holders)
        await repository.add_identity_facts(conn, member_id=member_id, **contact.columns())
    return LinkResult(member_id=int(member_id), new_member=new_member, new_link=new_link)


@dataclass(frozen=True)
class _Contact:
    """E-mail and phone as given (normalized), as blind indexes and as ciphertext; only
    the kinds given."""

    indexes: dict[str, bytes]
    ciphertexts: dict[str, bytes]

    def columns(self) -> dict[str, bytes | None]:
        return {
            f"{kind}_{part}": values.get(kind)
            for kind in KINDS
            for part, values in (("index", self.indexes), ("ciphertext", self.ciphertexts))
        }


KINDS = ("email", "phone")


def _contact(keys: IdentityKeys, email: str | None, phone: str | None) -> _Contact:
    facts = {
        kind: value
        for kind, value in (
            ("email", normalize_email(email) if email else None),
            ("phone", normalize_phone(phone) if phone else None),
        )
        if value
    }
    return _Contact(
        indexes={kind: crypto.blind_index(keys.index_key, kind, v) for kind, v in facts.items()},
        ciphertexts={
            kind: crypto.encrypt(keys.encryption_key, v, associated=kind.encode())
            for kind, v in facts.items()
        },
    )


async def _holders(conn: Connection, contact: _Contact) -> dict[str, int]:
    """The member who has each contact given, by kind (a contact nobody has is absent)."""
    holders = {}
    for kind, index in contact.indexes.items():
        found = await repository.members_by_index(
            conn,
            email_index=index if kind == "email" else None,
            phone_index=index if kind == "phone" else None,
        )
        if found:
            holders[kind] = found[0]
    return holders


async def _same_person(
    conn: Connection, member_id: int, contact: _Contact, holders: dict[str, int]
) -> None:
    """Refuse facts that are not this member's: a different e-mail or phone than the one
    it has (CONTACT_MISMATCH), or one another member has (CONTACT_IN_USE)."""
    row = await repository.identity(conn, member_id=member_id)
    for kind, index in contact.indexes.items():
        held = getattr(row, f"{kind}_index", None) if row is not None else None
        if held is not None and bytes(held) != index:
            raise ContactMismatch(
                f"the member linked to this memberRef has a different {kind}; if the"
                " customer changed it, call updateMemberContact",
                field=[kind],
            )
        if holders.get(kind, member_id) != member_id:
            raise ContactInUse(f"another member has this {kind}", field=[kind])


async def update_contact(
    conn: Connection,
    *,
    keys: IdentityKeys,
    partner_id: int,
    member_ref: str,
    email: str | None = None,
    phone: str | None = None,
) -> int:
    """A linked member's new e-mail and/or phone (a kind not given stays as it is): its
    blind index and its ciphertext together. A contact another member has is
    CONTACT_IN_USE (two members are never merged)."""
    check_ref(member_ref)
    if not email and not phone:
        raise InvalidInput("give the new email or phone", field=["email"])
    contact = _contact(keys, email, phone)
    await repository.lock_identities(conn, indexes=list(contact.indexes.values()))
    member_id = await resolve(conn, partner_id=partner_id, member_ref=member_ref)
    for kind, holder in (await _holders(conn, contact)).items():
        if holder != member_id:
            raise ContactInUse(f"another member has this {kind}", field=[kind])
    if not await repository.set_identity_facts(conn, member_id=member_id, **contact.columns()):
        raise MemberNotLinked(
            f"no member is linked to memberRef {member_ref!r}", field=["memberRef"]
        )
    return member_id


async def resolve(conn: Connection, *, partner_id: int, member_ref: str) -> int:
    """The member a partner's ref points at, or MEMBER_NOT_LINKED."""
    check_ref(member_ref)
    member_id = await repository.link(conn, partner_id=partner_id, member_ref=member_ref)
    return linked({member_ref: member_id} if member_id is not None else {}, member_ref)


async def resolve_many(
    conn: Connection, *, partner_id: int, member_refs: list[str]
) -> dict[str, int]:
    """The members behind many of a partner's refs, in one query; unknown (or malformed)
    refs are simply absent."""
    wanted = sorted({ref for ref in member_refs if valid_ref(ref)})
    return await repository.links(conn, partner_id=partner_id, member_refs=wanted)


def linked(members: Mapping[str, int], member_ref: str) -> int:
    """The member behind a ref among those :func:`resolve_many` found, or
    MEMBER_NOT_LINKED (INVALID_INPUT for a malformed ref)."""
    member_id = members.get(check_ref(member_ref))
    if member_id is None:
        raise MemberNotLinked(
            f"no member is linked to memberRef {member_ref!r}", field=["memberRef"]
        )
    return member_id


@dataclass(frozen=True)
class Contact:
    """A member's e-mail or phone as a caller gave it, checked and normalized;
    ``field`` is the argument it came in (``toEmail``, ``toPhone``) for errors."""

    kind: str
    value: str
    field: str


def contact(email: str | None, phone: str | None, *, field_prefix: str = "") -> Contact:
    """An e-mail or a phone (exactly one of them), normalized; INVALID_INPUT otherwise.
    ``field_prefix`` names the fields in errors (``to``: ``toEmail``, ``toPhone``)."""

    def name(kind: str) -> str:
        return f"{field_prefix}{kind.capitalize()}" if field_prefix else kind

    if bool(email) == bool(phone):
        raise InvalidInput("give an email or a phone (one of them)", field=[name("email")])
    try:
        kind, value = (
            ("email", normalize_email(email)) if email else ("phone", normalize_phone(phone or ""))
        )
    except InvalidInput as error:
        error.field = [name(error.field[0] if error.field else "email")]
        raise
    return Contact(kind, value, name(kind))


async def member_with(conn: Connection, *, keys: IdentityKeys, contact: Contact) -> int | None:
    """The member with this e-mail or phone, by its blind index; None when no member has
    it."""
    index = crypto.blind_index(keys.index_key, contact.kind, contact.value)
    matches = await repository.members_by_index(
        conn,
        email_index=index if contact.kind == "email" else None,
        phone_index=index if contact.kind == "phone" else None,
    )
    return matches[0] if matches else None


@dataclass(frozen=True)
class MemberLink:
    partner_id: int
    partner_name: str
    linked_at: datetime


@dataclass(frozen=True)
class LocatedMember:
    """Who a contact belongs to, for an operator: no contact, no partner's ref."""

    member_id: int
    since: datetime
    links: list[MemberLink]


async def locate_member(
    conn: Connection, *, keys: IdentityKeys, email: str | None, phone: str | None
) -> LocatedMember:
    """The operator's GDPR lookup: the member with this e-mail or phone (exactly one of
    them, matched by its blind index; nothing is decrypted), since when it is known and
    which partners linked it when. NOT_FOUND when nobody (still) has it."""
    given = contact(email, phone)
    member_id = await member_with(conn, keys=keys, contact=given)
    if member_id is None:
        raise NotFound("no coalition member has that contact", field=[given.field])
    row = present(
        await repository.identity(conn, member_id=member_id), "a blind index without identity"
    )
    links = await repository.links_of_member(conn, member_id=member_id)
    return LocatedMember(
        member_id=member_id,
        since=row.created_at,
        links=[MemberLink(link.partner_id, link.partner_name, link.created_at) for link in links],
    )


async def unlink_member(conn: Connection, *, partner_id: int, member_ref: str) -> None:
    """Remove one of the partner's refs: the member and its wallet stay (other partners'
    links too); the partner can no longer reach them by that ref."""
    check_ref(member_ref)
    if not await repository.delete_link(conn, partner_id=partner_id, member_ref=member_ref):
        raise MemberNotLinked(
            f"no member is linked to memberRef {member_ref!r}", field=["memberRef"]
        )


@dataclass(frozen=True)
class IdentityExport:
    member_id: int
    email: str | None
    phone: str | None
    links: list[tuple[str, str]]
    erased: bool


async def export_member(conn: Connection, *, keys: IdentityKeys, member_id: int) -> IdentityExport:
    """The operator's GDPR export: what we hold about one member, decrypted."""
    row = await repository.identity(conn, member_id=member_id)
    if row is None:
        raise NotFound(
            "member {member} has no identity record",
            field=["memberId"],
            refs={"member": Ref(Kind.MEMBER, member_id)},
        )
    links = await repository.links_of_member(conn, member_id=member_id)

    def opened(kind: str) -> str | None:
        sealed = getattr(row, f"{kind}_ciphertext")
        if sealed is None:
            return None
        return crypto.decrypt(keys.encryption_key, bytes(sealed), associated=kind.encode())

    return IdentityExport(
        member_id=member_id,
        email=opened("email"),
        phone=opened("phone"),
        links=[(link.partner_name, link.member_ref) for link in links],
        erased=row.erased_at is not None,
    )


async def erase_member(conn: Connection, *, member_id: int, now: datetime) -> None:
    """GDPR erasure: identity and links are destroyed; ledger entries stay, pseudonymous,
    so every balance and settlement still ties out."""
    if not await repository.erase_identity(conn, member_id=member_id, now=now):
        raise NotFound(
            "member {member} has no identity record",
            field=["memberId"],
            refs={"member": Ref(Kind.MEMBER, member_id)},
        )
