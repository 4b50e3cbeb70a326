"""The audit log: append-only in the database itself, readable by operators only, and
never a place for a secret or a member's personal data."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from exchange import audit
from exchange.audit import Action, Actor
from exchange.kit.db import Database, RowScope, sql
from exchange.kit.invariant import InvariantViolation
from exchange.kit.system import SYSTEM

OPERATOR = Actor(id="op_test", origin="203.0.113.7")


async def _recorded(db: Database, subject: str, **kw: object) -> int:
    async with db.transaction(SYSTEM) as conn:
        return await audit.record(
            conn, actor=OPERATOR, action=Action.CLIENT_REVOKED, subject=subject, **kw
        )


def _sqlstate(error: BaseException) -> str | None:
    return getattr(error, "sqlstate", None)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET subject = 'client:someone-else' WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
        "TRUNCATE audit_log",
    ],
)
async def test_the_database_refuses_to_change_or_remove_an_entry_even_to_its_owner(
    db: Database, statement: str
) -> None:
    entry_id = await _recorded(db, f"client:{secrets.token_hex(4)}")

    with pytest.raises(asyncpg.PostgresError) as refused:
        async with db.transaction(SYSTEM) as conn:
            await conn.execute(sql(statement), {"id": entry_id})
    async with db.transaction(SYSTEM) as conn:
        still = await conn.execute(
            sql("SELECT subject FROM audit_log WHERE id = :id"), {"id": entry_id}
        )
        subject = still.scalar_one()

    assert "append-only" in str(refused.value)
    assert subject.startswith("client:")
    assert subject != "client:someone-else"


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET subject = 'x' WHERE id = :id", "DELETE FROM audit_log WHERE id = :id"],
)
async def test_the_api_role_may_not_even_try_to_change_an_entry(
    db: Database, statement: str
) -> None:
    entry_id = await _recorded(db, f"client:{secrets.token_hex(4)}")

    with pytest.raises(asyncpg.PostgresError) as refused:
        async with db.transaction(RowScope(kind="OPERATOR")) as conn:
            await conn.execute(sql(statement), {"id": entry_id})

    assert _sqlstate(refused.value) == "42501"  # insufficient_privilege
    assert "permission denied" in str(refused.value)


async def test_only_operators_read_the_log_and_nobody_else_writes_it(db: Database) -> None:
    entry_id = await _recorded(db, f"client:{secrets.token_hex(4)}")

    async def ids(scope: RowScope) -> set[int]:
        async with db.transaction(scope) as conn:
            return set((await conn.execute(sql("SELECT id FROM audit_log"))).scalars())

    seen_by_partner = await ids(RowScope(kind="PARTNER", partner_id=1))
    seen_by_member = await ids(RowScope(kind="MEMBER", partner_id=1, member_id=1))
    seen_by_operator = await ids(RowScope(kind="OPERATOR"))
    with pytest.raises(asyncpg.PostgresError) as forged:
        async with db.transaction(RowScope(kind="PARTNER", partner_id=1)) as conn:
            await audit.record(conn, actor=OPERATOR, action=Action.KEYS_ROTATED, subject="x")

    assert seen_by_partner == set()
    assert seen_by_member == set()
    assert entry_id in seen_by_operator
    assert "row-level security" in str(forged.value)


@pytest.mark.parametrize("name", ["client_secret", "email", "newPassword", "accessToken"])
async def test_a_detail_that_may_hold_a_secret_or_personal_data_is_refused(
    db: Database, name: str
) -> None:
    subject = f"client:{secrets.token_hex(4)}"

    with pytest.raises(InvariantViolation):
        await _recorded(db, subject, details={name: "s3cr3t"})
    async with db.transaction(SYSTEM) as conn:
        written = await conn.execute(
            sql("SELECT count(*) FROM audit_log WHERE subject = :s"), {"s": subject}
        )

    assert written.scalar_one() == 0


async def test_entries_come_newest_first_filtered_by_action_and_time(db: Database) -> None:
    start = datetime(2970 + secrets.randbelow(9), 1, 1, tzinfo=UTC)  # nobody else's years
    tag = secrets.token_hex(4)
    async with db.transaction(SYSTEM) as conn:
        for day, action in enumerate([Action.PARTNER_SUSPENDED, Action.KEYS_ROTATED] * 2):
            await audit.record(
                conn,
                actor=OPERATOR,
                action=action,
                subject=f"partner:{tag}-{day}",
                details={"day": day},
                at=start + timedelta(days=day),
            )
        suspended = await audit.entries(conn, since=start, action=Action.PARTNER_SUSPENDED)
        suspended_late = await audit.entries(
            conn, since=start + timedelta(days=2), action=Action.PARTNER_SUSPENDED
        )
        latest = await audit.entries(conn, since=start, action=Action.KEYS_ROTATED, limit=1)

    def tagged(found: list[audit.AuditEntry]) -> list[tuple[str, dict[str, object]]]:
        return [(e.subject, e.details) for e in found if tag in e.subject]

    assert tagged(suspended) == [
        (f"partner:{tag}-2", {"day": 2}),
        (f"partner:{tag}-0", {"day": 0}),
    ]
    assert tagged(suspended_late) == [(f"partner:{tag}-2", {"day": 2})]
    assert [e.subject for e in latest] == [f"partner:{tag}-3"]
    assert latest[0].actor == "op_test"
    assert latest[0].origin == "203.0.113.7"
