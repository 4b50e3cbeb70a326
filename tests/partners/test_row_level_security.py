"""Row-level security: with partner B's principal bound, no query returns partner A's
rows, even one that forgets its WHERE clause; a member sees its own rows only; with no
principal bound, nothing. The tables come from the catalog, so a new table the API role
can reach fails here until it has policies. Writes across scopes (a gift to another
member, issuing from a funder's account) need an explicit grant, which reaches only the
rows the write needs."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import sqlalchemy

from exchange import audit, ledger
from exchange.events import repository as events_repository
from exchange.kit.clock import utc_now
from exchange.kit.db import Connection, Database, Row, RowScope, grant, sql
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.loyalty import campaigns
from exchange.loyalty import repository as loyalty_repository
from exchange.loyalty.models import Effect, EffectKind
from partners import clients, identity, registry
from partners.identity import IdentityKeys
from settlement import service as settlement_service
from tests.partners.test_registry import TERMS, unique_name
from tests.settlement.test_runs import Period

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
            await conn.execute(sql("SET LOCAL ROLE exchange_api"))
        rows = await conn.execute(sql(f"SELECT DISTINCT partner_id FROM {table}"))
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
        linked = set((await conn.execute(sql("SELECT member_id FROM member_link"))).scalars())
        entries = set((await conn.execute(sql("SELECT member_id FROM ledger_entry"))).scalars())

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


# --- every table, from the catalog ----------------------------------------------------


@dataclass(frozen=True)
class Owned:
    """How to name a table's rows (``key``) and which rows belong to partner
    ``:partner`` or member ``:member`` (``where``, read as the owner)."""

    key: str
    where: str


#: Whose rows are in each table with row-level security. A new table the API role can
#: reach fails the catalog tests until it has policies and a line here.
_LINKED = (
    "member_id = :member"
    " OR member_id IN (SELECT member_id FROM member_link WHERE partner_id = :partner)"
)
_LINKED_OR_OWN = f"{_LINKED} OR partner_id = :partner"
_PURCHASE = (
    "purchase_id IN (SELECT id FROM purchase WHERE partner_id = :partner OR member_id = :member)"
)
_CAMPAIGN = "campaign_id IN (SELECT id FROM campaign WHERE owner_partner_id = :partner)"

OWNED: dict[str, Owned] = {
    "ledger_account": Owned("id::text", "partner_id = :partner OR member_id = :member"),
    "ledger_account_shard": Owned(
        "account_id || '/' || shard",
        "account_id IN (SELECT id FROM ledger_account"
        " WHERE partner_id = :partner OR member_id = :member)",
    ),
    "ledger_entry": Owned(
        "id::text", "partner_id = :partner OR :member IN (member_id, counterparty_member_id)"
    ),
    "ledger_posting": Owned(
        "id::text",
        "entry_id IN (SELECT id FROM ledger_entry WHERE partner_id = :partner"
        " OR :member IN (member_id, counterparty_member_id))",
    ),
    # Lots of the member, and lots the partner issued wherever they went (a gift).
    "ledger_lot": Owned("id::text", "member_id = :member OR issuer_partner_id = :partner"),
    "ledger_lot_consumption": Owned(
        "id::text",
        "redeemer_partner_id = :partner OR lot_id IN (SELECT id FROM ledger_lot"
        " WHERE member_id = :member OR issuer_partner_id = :partner)",
    ),
    "ledger_hold": Owned("id::text", "partner_id = :partner OR member_id = :member"),
    "member_identity": Owned(
        "member_id::text",
        "member_id = :member OR member_id IN"
        " (SELECT member_id FROM member_link WHERE partner_id = :partner)",
    ),
    "member_link": Owned(
        "partner_id || '/' || member_ref", "partner_id = :partner OR member_id = :member"
    ),
    "oauth_client": Owned("client_id", "partner_id = :partner"),
    "partner_contract": Owned("id::text", "partner_id = :partner"),
    "wallet_watch": Owned("member_id || '/' || watcher", "member_id = :member"),
    # A finalized run is the coalition's, shown to every partner (the use case cuts its
    # document down to the caller's statement); drafts are the operators' alone.
    "settlement_run": Owned(
        "id::text",
        "status NOT IN ('FINALIZED', 'PAID') AND document -> 'netPositions'"
        " ? ('partner:' || CAST(:partner AS bigint)::text)",
    ),
    "settlement_posting": Owned(
        "id::text", "account = 'Partner:' || CAST(:partner AS bigint)::text"
    ),
    "settlement_payment": Owned(
        "run_id || '/' || instruction",
        "EXISTS (SELECT 1 FROM settlement_run r WHERE r.id = run_id"
        " AND 'partner:' || CAST(:partner AS bigint)::text"
        " IN (r.document -> 'instructions' -> (instruction - 1) ->> 'payer',"
        " r.document -> 'instructions' -> (instruction - 1) ->> 'payee'))",
    ),
    "audit_log": Owned("id::text", "subject = 'partner:' || CAST(:partner AS bigint)::text"),
    "webhook_endpoint": Owned("id::text", "partner_id = :partner"),
    "webhook_delivery": Owned(
        "id::text", "endpoint_id IN (SELECT id FROM webhook_endpoint WHERE partner_id = :partner)"
    ),
    "limit_bucket": Owned(
        "name",
        "client_id IN (SELECT client_id FROM oauth_client WHERE partner_id = :partner)"
        " OR member_id = :member",
    ),
    # The loyalty engine: a partner's purchases and campaigns; its members' aggregates.
    "purchase": Owned("id::text", "partner_id = :partner OR member_id = :member"),
    "purchase_award": Owned("purchase_id || '/' || position", _PURCHASE),
    "purchase_refund": Owned("id::text", _PURCHASE),
    "campaign": Owned("id::text", "owner_partner_id = :partner"),
    "campaign_funding": Owned("id::text", _CAMPAIGN + " OR partner_id = :partner"),
    "campaign_budget_shard": Owned("campaign_id || '/' || shard", _CAMPAIGN),
    "campaign_member_use": Owned("campaign_id || '/' || member_id", _LINKED),
    "member_tier": Owned("member_id::text", _LINKED),
    "member_tier_change": Owned("id::text", _LINKED),
    "member_qualifying": Owned("member_id || '/' || month", _LINKED),
    "member_profile": Owned("member_id::text", _LINKED),
    # A partner's own rows of its members' profile, and of members it has since unlinked.
    "member_partner_stats": Owned("member_id || '/' || partner_id", _LINKED_OR_OWN),
    "member_category_stats": Owned(
        "member_id || '/' || partner_id || '/' || category", _LINKED_OR_OWN
    ),
    # Insights: a partner's custom segments, its campaigns' targets, its members' offers.
    "segment": Owned("id::text", "owner_partner_id = :partner"),
    "campaign_target": Owned("campaign_id::text", _CAMPAIGN),
    "offer": Owned("id::text", _LINKED),
}
#: Every caller reads all of it: the coalition's registry of partner names.
PUBLIC = {"partner", "tier"}
#: The API role holds no privilege on these: no partner's or member's rows, used only
#: by the token endpoint (system scope) and Alembic.
NOT_THE_APIS = {
    "signing_key",
    "revoked_token",
    "used_client_assertion",
    "alembic_version",
    # When the RFM quintiles were last recomputed: the sweeper's and the CLI's only.
    "insights_refresh",
    # The events' outbox and notices: the delivery worker's (system scope) only.
    "event_outbox",
    "expiring_notice",
    # Who a targeted campaign treated and held out: read only through the functions
    # that return counts (migration 0020).
    "campaign_selection",
}
NOBODY = -1


@dataclass(frozen=True)
class Party:
    partner: int
    member: int  # linked to this partner only
    friend: int  # another member of the partner, who got a gift


async def _link(conn: Connection, partner_id: int) -> int:
    linked = await identity.link_member(
        conn,
        keys=KEYS,
        partner_id=partner_id,
        member_ref=f"ref-{secrets.token_hex(4)}",
        email=f"{secrets.token_hex(5)}@example.com",
        now=NOW,
    )
    return linked.member_id


async def _party(db: Database) -> Party:
    """A partner with a row in every table a partner or its member can own: a linked
    member with an identity, an earn, a redemption, a hold, a gift to a friend, a live
    wallet watch, a client, a contract, a finalized settlement run (after a superseded
    draft) with its instruction paid, and an entry in the audit log."""
    period = Period(db)
    partner = await period.partner(issue="0.010", redeem="0.008")
    async with db.transaction(SYSTEM) as conn:
        member, friend = await _link(conn, partner), await _link(conn, partner)
        await clients.create_client(conn, scopes=["points:earn"], partner_id=partner)
        until = utc_now() + timedelta(hours=1)
        await ledger.watch_wallet(conn, member_id=member, watcher=f"w{member}", until=until)
    await period.earn(partner, member, 100, day=1)
    await period.redeem(partner, member, 10, day=2)
    async with db.transaction(SYSTEM) as conn:
        key = f"{period.year}-{partner}"
        await ledger.hold(
            conn,
            client_id="rls",
            partner_id=partner,
            request=ledger.HoldRequest(f"{key}-hold", member, 5),
            now=period.at(3),
        )
        await ledger.transfer(
            conn,
            client_id="rls",
            request=ledger.TransferRequest(f"{key}-gift", member, friend, 5),
            now=period.at(4),
        )
    # A draft, superseded by the next run. The cut-off is the day after the period (not
    # Period.settle's year 9999): a finalized run settles every late entry created by its
    # cut-off, and later tests book late entries into later closed periods.
    cutoff = period.end + timedelta(days=1)
    async with db.transaction(SYSTEM) as conn:
        for _ in range(2):
            run = await settlement_service.run_settlement(
                conn, start=period.start, end=period.end, now=cutoff
            )
        await settlement_service.finalize(conn, run_id=run.id, now=cutoff)
        await settlement_service.record_payment(
            conn, run_id=run.id, instruction=1, reference="wire-1", now=cutoff
        )
        await audit.record(
            conn,
            actor=audit.Actor("cli:test@host", "cli"),
            action=audit.Action.PARTNER_ADDED,
            subject=f"partner:{partner}",
        )
        await _loyalty_rows(conn, partner, member, period.at(5))
    return Party(partner, member, friend)


async def _loyalty_rows(conn: Connection, partner: int, member: int, at: datetime) -> None:
    """A row in every table of the loyalty engine: a campaign with a budget and a
    per-member limit, a purchase awarded by it and refunded in part, the member's
    aggregates, tier and consent; a limit bucket of the partner's client and one of the
    member's own (its failed recipient look-ups)."""
    campaign = await campaigns.create(
        conn, owner=partner, created_by="rls", now=at,
        draft=campaigns.CampaignDraft(
            name="rls", starts_at=at, effect=Effect(EffectKind.FIXED, Decimal(5)),
            budget_points=100, per_member_limit=2,
        ),
    )  # fmt: skip
    await loyalty_repository.take_member_uses(conn, limits={(campaign.id, member): 2})
    entry = (await conn.execute(
        sql("SELECT id FROM ledger_entry WHERE partner_id = :p ORDER BY id LIMIT 1"),
        {"p": partner},
    )).scalar_one()  # fmt: skip
    [purchase] = await loyalty_repository.claim_purchases(conn, rows=[{
        "partner_id": partner, "member_id": member, "client_id": "rls",
        "idempotency_key": f"rls-{partner}", "request_hash": b"x", "amount": Decimal(10),
        "currency": "USD", "occurred_at": at, "channel": None, "store_ref": None,
        "reference": None, "items": [], "points": 0, "created_at": at,
    }])  # fmt: skip
    assert purchase is not None
    await loyalty_repository.record_outcomes(conn, partner_id=partner, outcomes=[
        loyalty_repository.Outcome(
            purchase_id=purchase, awards=[("CAMPAIGN", campaign.id, partner, 5, entry)],
            points=5, member_id=member, amount=Decimal(10), occurred_at=at,
            categories=[("popcorn", Decimal(10))], month=at.date().replace(day=1),
        )
    ])  # fmt: skip
    await loyalty_repository.claim_refund(
        conn, purchase_id=purchase, amount=Decimal(1), points=0, client_id="rls",
        idempotency_key=f"rls-refund-{partner}", request_hash=b"x", created_at=at,
    )  # fmt: skip
    await loyalty_repository.change_tier(
        conn, member_id=member, from_tier=None, to_tier="Gold", qualifying=5, reason="rls", now=at
    )
    await conn.execute(
        sql("INSERT INTO member_profile (member_id, consent_cross_partner) VALUES (:m, true)"),
        {"m": member},
    )
    await _insights_rows(conn, partner, member, campaign.id, at)
    client = (await conn.execute(
        sql("SELECT client_id FROM oauth_client WHERE partner_id = :p LIMIT 1"), {"p": partner}
    )).scalar_one()  # fmt: skip
    endpoint = await events_repository.insert_endpoint(
        conn, partner_id=partner, url="https://93.184.216.34/rls", event_types=["*"],
        secret=b"sealed", created_by="rls", now=at,
    )  # fmt: skip
    await events_repository.ping(conn, endpoint_id=endpoint, at=at)
    await conn.execute(
        sql("INSERT INTO limit_bucket (name, client_id, level, granted, updated_at)"
             " VALUES (:name, :client, 0, 0, :at)"),
        {"name": f"rls:{client}", "client": client, "at": at},
    )  # fmt: skip
    await conn.execute(
        sql("INSERT INTO limit_bucket (name, member_id, level, granted, updated_at)"
             " VALUES (:name, :member, 1, 1, :at)"),
        {"name": f"rls:member:{member}", "member": member, "at": at},
    )  # fmt: skip


async def _insights_rows(
    conn: Connection, partner: int, member: int, campaign: int, at: datetime
) -> None:
    """A custom segment of the partner, a target of its campaign, an offer to its member."""
    await conn.execute(
        sql(
            "INSERT INTO segment (owner_partner_id, name, condition, created_by, created_at)"
            " VALUES (:p, 'RLS', 'true', 'rls', :at)"
        ),
        {"p": partner, "at": at},
    )
    await conn.execute(
        sql(
            "INSERT INTO campaign_target (campaign_id, segment, audience, control_share,"
            " offer_title) VALUES (:c, 'AT_RISK', 'OWN_MEMBERS', 0.1, 'rls')"
        ),
        {"c": campaign},
    )
    await conn.execute(
        sql(
            "INSERT INTO offer (campaign_id, member_id, title, status, created_at)"
            " VALUES (:c, :m, 'rls', 'AVAILABLE', :at)"
        ),
        {"c": campaign, "m": member, "at": at},
    )


@pytest.fixture(scope="module")
async def parties(db: Database) -> tuple[Party, Party]:
    return await _party(db), await _party(db)


async def _catalog(db: Database) -> list[Row[Any]]:
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql(
                """
                SELECT c.relname AS name, c.relrowsecurity AS secured,
                       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
                       has_table_privilege('exchange_api', c.oid,
                                           'SELECT, INSERT, UPDATE, DELETE') AS reachable
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                ORDER BY c.relname
                """
            )
        )
        return list(result.all())


async def _secured_tables(db: Database) -> list[str]:
    """Tables with row-level security and at least one policy, from the catalog."""
    return [row.name for row in await _catalog(db) if row.secured and row.policies]


async def _owned(db: Database, table: str, partner: int, member: int) -> set[str]:
    rule = OWNED[table]
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql(f"SELECT {rule.key} FROM {table} WHERE {rule.where}"),
            {"partner": partner, "member": member},
        )
        return set(result.scalars())


async def _visible(db: Database, scope: RowScope | None, table: str) -> set[str]:
    """Every row of the table the scope sees, with no filter at all (None: the API role
    with no principal bound)."""
    key = OWNED[table].key if table in OWNED else "ctid::text"
    async with db.transaction(scope or SYSTEM) as conn:
        if scope is None:
            await conn.execute(sql("SET LOCAL ROLE exchange_api"))
        return set((await conn.execute(sql(f"SELECT {key} FROM {table}"))).scalars())


async def test_every_table_the_api_role_can_reach_has_row_level_security(db: Database) -> None:
    catalog = await _catalog(db)

    reachable = {row.name for row in catalog if row.reachable}
    unsecured = sorted(row.name for row in catalog if row.reachable and not row.policies)
    unsecured += sorted(row.name for row in catalog if row.reachable and not row.secured)
    assert unsecured == [], "tables the API role reaches without row-level security"
    assert reachable == set(OWNED) | PUBLIC, "say whose rows a new table holds (OWNED)"
    assert {row.name for row in catalog} - reachable == NOT_THE_APIS


async def test_partner_b_sees_none_of_partner_as_rows_in_any_table(
    db: Database, parties: tuple[Party, Party]
) -> None:
    a, b = parties
    as_b = RowScope(kind="PARTNER", partner_id=b.partner)
    failures: dict[str, str] = {}

    for table in sorted(set(await _secured_tables(db)) - PUBLIC):
        if table not in OWNED:
            failures[table] = "not in OWNED"
            continue
        of_a = await _owned(db, table, a.partner, a.member)
        seen_by_b = await _visible(db, as_b, table)
        seen_by_operator = await _visible(db, RowScope(kind="OPERATOR"), table)
        if not of_a:
            failures[table] = "partner A has no rows here: the history misses this table"
        elif seen_by_b & of_a:
            failures[table] = f"partner B sees {sorted(seen_by_b & of_a)}"
        elif not of_a <= seen_by_operator:
            failures[table] = f"an operator misses {sorted(of_a - seen_by_operator)}"

    assert failures == {}


async def test_a_member_sees_its_own_rows_and_nobody_elses_in_any_table(
    db: Database, parties: tuple[Party, Party]
) -> None:
    a, b = parties
    as_member = RowScope(kind="MEMBER", partner_id=a.partner, member_id=a.member)
    failures: dict[str, str] = {}

    for table in sorted(set(await _secured_tables(db)) - PUBLIC):
        own = await _owned(db, table, NOBODY, a.member)
        others = await _owned(db, table, b.partner, b.member)
        # The member's own partner's rows that are not the member's (its friend's lots,
        # the partner's clients, contract and accounts).
        others |= await _owned(db, table, a.partner, NOBODY) - own
        seen = await _visible(db, as_member, table)
        if seen & others:
            failures[table] = f"member sees {sorted(seen & others)}"
        elif not own <= seen:
            failures[table] = f"member misses its own {sorted(own - seen)}"

    assert failures == {}


async def test_with_no_principal_bound_the_api_role_sees_nothing_in_any_table(
    db: Database, parties: tuple[Party, Party]
) -> None:
    seen = {table: await _visible(db, None, table) for table in await _secured_tables(db)}

    assert {table: rows for table, rows in seen.items() if rows} == {}
    assert set(seen) >= set(OWNED) | PUBLIC


async def test_partner_names_are_public_to_callers_and_only_operators_change_them(
    db: Database, parties: tuple[Party, Party]
) -> None:
    a, b = parties
    as_b = RowScope(kind="PARTNER", partner_id=b.partner)
    as_member = RowScope(kind="MEMBER", partner_id=b.partner, member_id=b.member)

    async with db.transaction(as_b) as conn:
        renamed = await conn.execute(
            sql("UPDATE partner SET name = name || '!' WHERE id IN (:a, :b) RETURNING id"),
            {"a": a.partner, "b": b.partner},
        )
        renamed_ids = list(renamed.scalars())

    assert await _partner_ids_seen(db, as_b) >= {a.partner, b.partner}
    assert await _partner_ids_seen(db, as_member) >= {a.partner, b.partner}
    assert renamed_ids == []


async def _partner_ids_seen(db: Database, scope: RowScope) -> set[int]:
    async with db.transaction(scope) as conn:
        return set((await conn.execute(sql("SELECT id FROM partner"))).scalars())


# --- writes across scopes: the grant -----------------------------------------------------


async def _member_with_points(db: Database, partner_id: int, points: int) -> int:
    async with db.transaction(SYSTEM) as conn:
        member = await _link(conn, partner_id)
        await ledger.earn(
            conn,
            client_id="rls",
            partner_id=partner_id,
            request=ledger.EarnRequest(f"rls-{member}", member, points),
            now=NOW,
        )
    return member


async def _balance_and_lots(db: Database, member_id: int) -> tuple[int, list[int]]:
    async with db.transaction(SYSTEM) as conn:
        wallet = await ledger.wallet(conn, member_id=member_id)
        lots = await conn.execute(
            sql("SELECT amount FROM ledger_lot WHERE member_id = :m ORDER BY id"),
            {"m": member_id},
        )
        return wallet.balance, list(lots.scalars())


async def test_a_member_gifts_points_to_another_partners_member_only_with_the_grant(
    db: Database, parties: tuple[Party, Party]
) -> None:
    a, b = parties
    sender = await _member_with_points(db, a.partner, 50)
    as_sender = RowScope(kind="MEMBER", partner_id=a.partner, member_id=sender)
    recipient_before = await _balance_and_lots(db, b.member)

    def gift(key: str) -> ledger.TransferRequest:
        return ledger.TransferRequest(f"{key}-{sender}", sender, b.member, 20)

    with pytest.raises(DomainError) as refused:
        async with db.transaction(as_sender) as conn:
            await ledger.transfer(conn, client_id="rls", request=gift("ungranted"), now=NOW)
    unchanged = await _balance_and_lots(db, b.member)
    async with db.transaction(as_sender) as conn:
        await grant(conn, members=[b.member])
        sent = await ledger.transfer(conn, client_id="rls", request=gift("granted"), now=NOW)
    balance, lots = await _balance_and_lots(db, b.member)

    assert refused.value.code == ErrorCode.NOT_FOUND
    assert unchanged == recipient_before
    assert sent.wallet_balance == 30
    assert balance == recipient_before[0] + 20
    assert lots == [*recipient_before[1], 20]


async def test_the_grant_shows_a_member_the_recipients_wallet_and_nothing_else_of_theirs(
    db: Database, parties: tuple[Party, Party]
) -> None:
    a, b = parties
    as_member = RowScope(kind="MEMBER", partner_id=a.partner, member_id=a.member)
    of_recipient = {
        "wallet": "SELECT id FROM ledger_account WHERE member_id = :m AND kind = 'MEMBER_WALLET'",
        "held account": "SELECT id FROM ledger_account WHERE member_id = :m"
        " AND kind = 'MEMBER_HELD'",
        "lots": "SELECT id FROM ledger_lot WHERE member_id = :m",
        "entries": "SELECT id FROM ledger_entry WHERE :m IN (member_id, counterparty_member_id)",
        "holds": "SELECT id FROM ledger_hold WHERE member_id = :m",
        "identity": "SELECT member_id FROM member_identity WHERE member_id = :m",
        "links": "SELECT member_id FROM member_link WHERE member_id = :m",
        "watches": "SELECT member_id FROM wallet_watch WHERE member_id = :m",
    }

    async def seen(conn: Connection) -> set[str]:
        found = set()
        for name, query in of_recipient.items():
            if (await conn.execute(sql(query), {"m": b.member})).first() is not None:
                found.add(name)
        return found

    async with db.transaction(as_member) as conn:
        await grant(conn, members=[b.member])
        granted = await seen(conn)
    async with db.transaction(as_member) as conn:
        later = await seen(conn)

    assert granted == {"wallet"}
    assert later == set()


async def test_a_partner_issues_from_a_funders_account_only_with_the_grant(
    db: Database, parties: tuple[Party, Party]
) -> None:
    """The shape of a co-funded campaign: partner A's purchase issues points funded by
    partner B, to A's own member."""
    a, b = parties
    as_a = RowScope(kind="PARTNER", partner_id=a.partner)

    def funded(key: str) -> ledger.EarnRequest:
        return ledger.EarnRequest(f"funded-{key}-{a.member}", a.member, 7)

    with pytest.raises(DomainError) as refused:
        async with db.transaction(as_a) as conn:
            await ledger.earn(
                conn, client_id="rls", partner_id=b.partner, request=funded("no"), now=NOW
            )
    async with db.transaction(as_a) as conn:
        await grant(conn, partners=[b.partner])
        issued = await ledger.earn(
            conn, client_id="rls", partner_id=b.partner, request=funded("yes"), now=NOW
        )
        funders_other_entries = await conn.execute(
            sql("SELECT id FROM ledger_entry WHERE partner_id = :b AND id <> :issued"),
            {"b": b.partner, "issued": issued.entry_id},
        )
        funders_redeemed = await conn.execute(
            sql("SELECT id FROM ledger_account WHERE partner_id = :b AND kind <> 'PARTNER_ISSUED'"),
            {"b": b.partner},
        )
        others_seen = list(funders_other_entries.scalars()) + list(funders_redeemed.scalars())

    assert refused.value.code == ErrorCode.NOT_FOUND
    assert issued.entry.partner_id == b.partner
    assert others_seen == []


async def test_a_credit_limit_counts_the_partners_points_in_wallets_it_cannot_see(
    db: Database, parties: tuple[Party, Party]
) -> None:
    """100 points issued by a partner with a limit of 100: 40 stay with its member, 60
    go as a gift to another partner's member, who holds 20 of them at that partner."""
    _, other = parties
    async with db.transaction(SYSTEM) as conn:
        limited = await registry.add_partner(
            conn,
            name=unique_name("Limited"),
            terms=dataclasses.replace(TERMS, credit_limit_points=100),
            now=utc_now(),
        )
    member = await _member_with_points(db, limited.id, 100)
    async with db.transaction(SYSTEM) as conn:
        stranger = await _link(conn, other.partner)
        gift = ledger.TransferRequest(f"limit-{member}", member, stranger, 60)
        await ledger.transfer(conn, client_id="rls", request=gift, now=NOW)
        held = ledger.HoldRequest(f"limit-hold-{stranger}", stranger, 20)
        await ledger.hold(conn, client_id="rls", partner_id=other.partner, request=held, now=NOW)

    with pytest.raises(DomainError) as refused:
        async with db.transaction(RowScope(kind="PARTNER", partner_id=limited.id)) as conn:
            await ledger.earn(
                conn,
                client_id="rls",
                partner_id=limited.id,
                request=ledger.EarnRequest(f"limit-over-{member}", member, 1),
                now=NOW,
            )

    assert refused.value.code == ErrorCode.LIMIT_EXCEEDED


async def test_the_owners_lookups_answer_only_callers_entitled_to_them(
    db: Database, parties: tuple[Party, Party]
) -> None:
    a, b = parties
    async with db.transaction(SYSTEM) as conn:
        index = (
            await conn.execute(
                sql("SELECT email_index FROM member_identity WHERE member_id = :m"),
                {"m": a.member},
            )
        ).scalar_one()
    by_contact = "SELECT exchange_members_by_contact(:index, NULL)"

    async with db.transaction(RowScope(kind="PARTNER", partner_id=b.partner)) as conn:
        found_by_a_partner = list((await conn.execute(sql(by_contact), {"index": index})).scalars())
    async with db.transaction(SYSTEM) as conn:
        await conn.execute(sql("SET LOCAL ROLE exchange_api"))
        found_unbound = list((await conn.execute(sql(by_contact), {"index": index})).scalars())
    with pytest.raises(asyncpg.PostgresError) as not_its_own:
        async with db.transaction(RowScope(kind="PARTNER", partner_id=b.partner)) as conn:
            await conn.execute(sql("SELECT ledger_outstanding_points(:a)"), {"a": a.partner})
    async with db.transaction(RowScope(kind="OPERATOR")) as conn:
        counted = await conn.execute(sql("SELECT ledger_outstanding_points(:a)"), {"a": a.partner})
        outstanding_for_operator = counted.scalar_one()

    assert found_by_a_partner == [a.member]
    assert found_unbound == []
    assert getattr(not_its_own.value, "sqlstate", None) == "42501"
    assert outstanding_for_operator > 0


async def test_a_gift_notifies_the_recipients_live_wallet_the_sender_cannot_see(
    db: Database, database_url: str, parties: tuple[Party, Party]
) -> None:
    a, b = parties  # b's member has a live watch (the history leased one)
    sender = await _member_with_points(db, a.partner, 10)
    url = sqlalchemy.engine.make_url(database_url).set(drivername="postgresql")
    listener = await asyncpg.connect(url.render_as_string(hide_password=False))
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("wallet_updated", lambda *args: heard.put_nowait(args[3]))
    try:
        async with db.transaction(RowScope("MEMBER", a.partner, sender)) as conn:
            await grant(conn, members=[b.member])
            gift = ledger.TransferRequest(f"notify-{sender}", sender, b.member, 4)
            await ledger.transfer(conn, client_id="rls", request=gift, now=NOW)
        payloads = []
        while str(b.member) not in payloads:
            payloads.append(await asyncio.wait_for(heard.get(), timeout=5))
    finally:
        await listener.close()

    assert str(b.member) in payloads
