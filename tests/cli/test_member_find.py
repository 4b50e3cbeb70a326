"""`exchange member find`: an operator handling a GDPR request finds the member id behind
an e-mail or a phone (by its blind index), sees which partners linked it and when, and
then exports or erases it; the lookup is audited without the contact."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from partners import identity, registry
from partners.identity import IdentityKeys
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET_KEY
from tests.partners.test_registry import TERMS

KEYS = IdentityKeys.from_secret(TEST_SECRET_KEY.encode())


async def seed(url: str) -> dict[str, object]:
    """Two partners that linked one person (by e-mail, then by phone), and a stranger."""
    database = Database(url, pool_size=1)
    address = f"ana-{secrets.token_hex(3)}@example.org"
    try:
        async with database.transaction(SYSTEM) as conn:
            now = utc_now()
            coffee = await registry.add_partner(conn, name="Bean There", terms=TERMS, now=now)
            cinema = await registry.add_partner(conn, name="Reel Cinemas", terms=TERMS, now=now)
            ana = await identity.link_member(
                conn, keys=KEYS, partner_id=coffee.id, member_ref="c-17", email=address, now=now
            )
            for ref, contact in [("r-9", address), ("r-10", "someone.else@example.org")]:
                phone = "+44 20 7946 0958" if contact == address else None
                await identity.link_member(conn, keys=KEYS, partner_id=cinema.id, member_ref=ref,
                                           email=contact, phone=phone, now=now)  # fmt: skip
    finally:
        await database.dispose()
    return {"email": address, "member": ana.member_id, "partners": [coffee.id, cinema.id]}


async def audit_of(url: str) -> list[tuple[str, str, str]]:
    database = Database(url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            rows = await conn.execute(
                sql("SELECT action, subject, details::text FROM audit_log ORDER BY id")
            )
            return [(row[0], row[1], row[2]) for row in rows]
    finally:
        await database.dispose()


async def test_member_find_prints_the_member_id_with_its_links_for_export_and_erase(
    scratch_database_url: str, tmp_path: Path
) -> None:
    seeded = await seed(scratch_database_url)
    member, address = seeded["member"], str(seeded["email"])

    by_email = run(["member", "find", "--email", address.upper()], scratch_database_url, tmp_path)
    by_phone = run(["member", "find", "--phone", "0044 20 7946 0958", "--json"],
                   scratch_database_url, tmp_path)  # fmt: skip
    exported = run(["member", "export", str(member)], scratch_database_url, tmp_path)
    erased = run(["member", "erase", str(member)], scratch_database_url, tmp_path)
    gone = run(["member", "find", "--email", address], scratch_database_url, tmp_path)

    assert by_email.returncode == 0, by_email.stderr
    assert by_email.stdout.splitlines()[0].startswith(f"member {member} (known since ")
    assert "linked by Bean There" in by_email.stdout
    assert "linked by Reel Cinemas" in by_email.stdout
    assert by_phone.returncode == 0, by_phone.stderr
    found = json.loads(by_phone.stdout)
    assert found["memberId"] == member
    assert [link["partner"] for link in found["links"]] == ["Bean There", "Reel Cinemas"]
    assert [link["partnerId"] for link in found["links"]] == seeded["partners"]
    assert all(link["linkedAt"] and found["since"] for link in found["links"])
    assert "c-17" not in by_email.stdout + by_phone.stdout  # no partner's ref, no contact
    assert address not in by_email.stdout + by_phone.stdout
    assert json.loads(exported.stdout)["email"] == address
    assert erased.returncode == 0, erased.stderr
    assert gone.returncode == 1
    assert gone.stderr == "exchange: error: no coalition member has that contact\n"
    audited = await audit_of(scratch_database_url)
    assert audited[:2] == [
        ("member.looked_up", f"member:{member}", '{"by": "email"}'),
        ("member.looked_up", f"member:{member}", '{"by": "phone"}'),
    ]
    assert "0958" not in " ".join(details for _, _, details in audited)
    assert address not in " ".join(details for _, _, details in audited)


async def test_member_find_refuses_bad_contacts_in_one_line(
    scratch_database_url: str, tmp_path: Path
) -> None:
    both = run(["member", "find", "--email", "a@b.org", "--phone", "+14155550123"],
               scratch_database_url, tmp_path)  # fmt: skip
    neither = run(["member", "find"], scratch_database_url, tmp_path)
    malformed = run(["member", "find", "--phone", "12"], scratch_database_url, tmp_path)
    nobody = run(
        ["member", "find", "--email", "nobody@example.org"], scratch_database_url, tmp_path
    )

    assert [both.returncode, neither.returncode, malformed.returncode, nobody.returncode] == [
        2, 2, 1, 1,
    ]  # fmt: skip
    for refused in (both, neither, malformed, nobody):
        assert len(refused.stderr.splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith("exchange: error: ")
    assert "international form" in malformed.stderr
    assert await audit_of(scratch_database_url) == []  # nothing found, nothing recorded
