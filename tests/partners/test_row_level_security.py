"""Row-level security: with partner B's principal bound, no query returns partner A's
rows, even one that forgets its WHERE clause; with no principal bound, nothing."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, RowScope
from exchange.kit.system import SYSTEM
from partners import clients, identity, registry
from partners.identity import IdentityKeys
from tests.partners.test_registry import TERMS, unique_name

KEYS = IdentityKeys.from_secret(b"rls-test")
NOW = datetime(2026, 11, 20, tzinfo=UTC)
PARTNER_SCOPED = ["member_link", "ledger_entry", "ledger_hold", "oauth_client", "partner_contract"]


async def _partner_with_history(db: Database) -> tuple[int, int]:
    """A partner with a linked member, an earn, a hold and a client."""
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=unique_name(), terms=TERMS, now=utc_now())
        linked = await identity.link_member(
            conn,
            keys=KEYS,
            partner_id=partner.id,
            member_ref=f"ref-{partner.id}",
            email=f"{secrets.token_hex(5)}@example.com",
            now=NOW,
        )
        await ledger.earn(
            conn,
            client_id=f"c{partner.id}",
            partner_id=partner.id,
            request=ledger.EarnRequest(
                idempotency_key="k1", member_id=linked.member_id, points=100
            ),
            now=NOW,
        )
        await ledger.hold(
            conn,
            client_id=f"c{partner.id}",
            partner_id=partner.id,
            request=ledger.HoldRequest(idempotency_key="k2", member_id=linked.member_id, points=10),
            now=NOW,
        )
        await clients.create_client(conn, scopes=["points:earn"], partner_id=partner.id)
    return partner.id, linked.member_id


async def _partner_ids(db: Database, scope: RowScope | None, table: str, role: bool = True):  # type: ignore[no-untyped-def]
    async with db.transaction(scope or SYSTEM) as conn:
        if scope is None and role:
            await conn.execute(text("SET LOCAL ROLE exchange_api"))
        rows = await conn.execute(text(f"SELECT DISTINCT partner_id FROM {table}"))
        return {row.partner_id for row in rows}


@pytest.mark.parametrize("table", PARTNER_SCOPED)
async def test_partner_b_reads_none_of_partner_as_rows_without_any_filter(
    db: Database, table: str
) -> None:
    partner_a, _ = await _partner_with_history(db)
    partner_b, _ = await _partner_with_history(db)

    seen_by_b = await _partner_ids(db, RowScope(kind="PARTNER", partner_id=partner_b), table)
    seen_by_operator = await _partner_ids(db, RowScope(kind="OPERATOR"), table)

    assert partner_a not in seen_by_b
    assert seen_by_b <= {partner_b, None}
    assert {partner_a, partner_b} <= seen_by_operator


@pytest.mark.parametrize("table", PARTNER_SCOPED)
async def test_with_no_principal_bound_the_api_role_sees_nothing(db: Database, table: str) -> None:
    await _partner_with_history(db)

    assert await _partner_ids(db, None, table) == set()


async def test_a_member_sees_only_its_own_links_and_entries(db: Database) -> None:
    _, member_a = await _partner_with_history(db)
    _, member_b = await _partner_with_history(db)

    async with db.transaction(RowScope(kind="MEMBER", member_id=member_a)) as conn:
        linked = set((await conn.execute(text("SELECT member_id FROM member_link"))).scalars())
        entries = set((await conn.execute(text("SELECT member_id FROM ledger_entry"))).scalars())

    assert linked == {member_a}
    assert entries == {member_a}
    assert member_b not in entries


async def test_ledger_operations_work_under_a_partners_scope(db: Database) -> None:
    partner, member = await _partner_with_history(db)

    async with db.transaction(RowScope(kind="PARTNER", partner_id=partner)) as conn:
        result = await ledger.redeem(
            conn,
            client_id=f"c{partner}",
            partner_id=partner,
            request=ledger.RedeemRequest(idempotency_key="k3", member_id=member, points=30),
            now=NOW,
        )
        replay = await ledger.earn(
            conn,
            client_id=f"c{partner}",
            partner_id=partner,
            request=ledger.EarnRequest(idempotency_key="k1", member_id=member, points=100),
            now=NOW,
        )

    assert result.wallet_balance == 60  # 100 earned - 10 held - 30 redeemed
    assert replay.replayed is True
