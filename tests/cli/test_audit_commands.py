"""Every operator change made with the `exchange` command is recorded in the audit log,
in the same transaction, with who, when, what and from where, and never a secret;
`exchange audit list` reads it back."""

from __future__ import annotations

import getpass
import json
import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exchange import audit
from exchange.audit import Action, Actor
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.system import SYSTEM
from partners import identity
from partners.identity import IdentityKeys
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET_KEY
from tests.settlement.test_runs import Period

ACTOR = f"cli:{getpass.getuser()}@{socket.gethostname()}"


async def _entries_after(db: Database, last_id: int) -> list[Any]:
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql(
                "SELECT actor, origin, action, subject, details::text AS details"
                " FROM audit_log WHERE id > :last ORDER BY id"
            ),
            {"last": last_id},
        )
        return list(result.all())


async def _last_id(db: Database) -> int:
    async with db.transaction(SYSTEM) as conn:
        return int(
            (await conn.execute(sql("SELECT coalesce(max(id), 0) FROM audit_log"))).scalar_one()
        )


async def _member_with_email(db: Database, partner_id: int, email: str) -> int:
    async with db.transaction(SYSTEM) as conn:
        linked = await identity.link_member(
            conn,
            keys=IdentityKeys.from_secret(TEST_SECRET_KEY.encode()),
            partner_id=partner_id,
            member_ref=f"audited-{secrets.token_hex(3)}",
            email=email,
            now=utc_now(),
        )
    return linked.member_id


async def test_every_audited_command_writes_one_entry_and_no_secret(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    def exchange(*args: str) -> str:
        result = run(list(args), database_url, tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    # A closed period of its own: years 1001-1150 are no other test's (test_exports counts
    # up from 1501-1550, and a shared year made the two settle each other's entries).
    period = Period(db, year=1001 + secrets.randbelow(150))
    issuer = await period.partner(issue="0.010", redeem="0.008")
    await period.earn(issuer, await period.member(), 500, day=1)
    email = f"audited-{secrets.token_hex(4)}@example.com"
    member = await _member_with_email(db, issuer, email)
    name = f"Audited {secrets.token_hex(4)}"
    before = await _last_id(db)

    added = json.loads(
        exchange("partner", "add", name, "--currency", "USD", "--issue-price", "0.010",
                 "--redemption-price", "0.008", "--json")
    )  # fmt: skip
    exchange("partner", "suspend", name)
    exchange("partner", "activate", name)
    client = json.loads(
        exchange("client", "add", "--partner", name, "--scopes", "points:earn", "--json")
    )
    exchange("client", "revoke", client["client_id"])
    kid = exchange("keys", "rotate").split()[3].rstrip(";")
    exported = exchange("member", "export", str(member))
    exchange("member", "erase", str(member))
    settled = json.loads(
        exchange("settle", "--from", period.start.date().isoformat(),
                 "--to", period.end.date().isoformat(), "--finalize", "--json")
    )  # fmt: skip
    exchange("payment", str(settled["run"]), "1", "--reference", "wire-2041")
    refused = run(["partner", "suspend", f"Nobody {secrets.token_hex(4)}"], database_url, tmp_path)
    entries = await _entries_after(db, before)

    assert email in exported  # the export itself shows the e-mail; the log must not
    assert refused.returncode == 1  # a refused command changed nothing and records nothing
    assert [(e.action, e.subject) for e in entries] == [
        ("partner.added", f"partner:{added['id']}"),
        ("partner.suspended", f"partner:{added['id']}"),
        ("partner.activated", f"partner:{added['id']}"),
        ("client.created", f"client:{client['client_id']}"),
        ("client.revoked", f"client:{client['client_id']}"),
        ("keys.rotated", f"signing_key:{kid}"),
        ("member.exported", f"member:{member}"),
        ("member.erased", f"member:{member}"),
        ("settlement.finalized", f"settlement_run:{settled['run']}"),
        ("settlement.payment_recorded", f"settlement_run:{settled['run']}"),
    ]
    assert {(e.actor, e.origin) for e in entries} == {(ACTOR, "cli")}
    assert json.loads(entries[0].details)["name"] == name
    assert json.loads(entries[3].details)["scopes"] == ["points:earn"]
    assert json.loads(entries[8].details)["digest"] == settled["digest"]
    assert json.loads(entries[9].details) == {"instruction": 1, "reference": "wire-2041"}
    everything = " ".join(e.details for e in entries)
    assert client["client_secret"] not in everything
    assert email not in everything


async def test_audit_list_prints_the_log_newest_first_filtered_as_asked(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    since = datetime(2990 + secrets.randbelow(9), 6, 1, tzinfo=UTC)
    tag = secrets.token_hex(4)
    async with db.transaction(SYSTEM) as conn:
        for hours, action in enumerate([Action.CLIENT_CREATED, Action.CLIENT_REVOKED] * 2):
            await audit.record(
                conn,
                actor=Actor("op_list", "198.51.100.4"),
                action=action,
                subject=f"client:{tag}-{hours}",
                at=since + timedelta(hours=hours),
            )

    listed = run(
        ["audit", "list", "--since", since.date().isoformat(), "--action", "client.revoked",
         "--json"],
        database_url,
        tmp_path,
    )  # fmt: skip
    as_text = run(
        ["audit", "list", "--since", since.isoformat(), "--action", "client.created",
         "--limit", "1"],
        database_url,
        tmp_path,
    )  # fmt: skip
    unknown = run(["audit", "list", "--action", "client.deleted"], database_url, tmp_path)

    assert listed.returncode == 0, listed.stderr
    rows = [row for row in json.loads(listed.stdout) if tag in row["subject"]]
    assert [(row["subject"], row["action"]) for row in rows] == [
        (f"client:{tag}-3", "client.revoked"),
        (f"client:{tag}-1", "client.revoked"),
    ]
    assert rows[0]["actor"] == "op_list"
    assert rows[0]["origin"] == "198.51.100.4"
    assert rows[0]["at"] == (since + timedelta(hours=3)).isoformat()
    assert as_text.returncode == 0, as_text.stderr
    assert f"client:{tag}-2" in as_text.stdout
    assert len(as_text.stdout.strip().splitlines()) == 1
    assert unknown.returncode == 2
    assert len(unknown.stderr.strip().splitlines()) == 1
