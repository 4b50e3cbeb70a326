"""`exchange bench seed`: fill the database with a coalition at benchmark scale (DESIGN.md
section 9: a settlement run over 1,000,000 entries, the wallet query at 1,000,000
members).

Calling ledger.earn once per entry would take hours, so this is set-based. The history
is planned first in session temp tables: hashes of an entry's number choose its member,
points and partner; 3 entries in 10 are redemptions, each by the member of the earn just
before it and for at most that earn's points, so no wallet ever runs short; lots are
consumed oldest expiry first, computed as overlaps of running totals. Then it is written
member range by member range, each range in one transaction holding everything its
members ever did, so every commit leaves a complete, valid ledger with the database's
balance triggers left on. What lands is what ledger.earn and ledger.redeem would have
written for the same requests made live (entries with idempotency keys and request
hashes, postings, lots, consumptions, wallet balances, partner balance shards), and
`exchange verify` checks it. This is the one module outside the ledger's and partners'
repositories that writes their tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.db import Database
from exchange.kit.errors import InvalidInput
from exchange.kit.system import SYSTEM
from exchange.ledger.models import BALANCE_SHARDS
from partners import crypto, registry
from partners.identity import IdentityKeys
from partners.models import ContractTerms, FundingModel

SEED_CLIENT = "seed"
PARTNER_NAME = "seed-{}"
MEMBER_REF = "seed-{}"
WINDOW_DAYS = 60
POINTS_LIFETIME_DAYS = 365
ROWS_PER_TRANSACTION = 100_000  # members + entries; one progress line each
MAX_MEMBERS = 50_000_000
MAX_ENTRIES = 50_000_000
MAX_PARTNERS = 500


@dataclass(frozen=True)
class SeedSummary:
    partners: list[str]
    members: int
    entries: int
    redemptions: int
    period_start: datetime
    period_end: datetime
    seconds: float


def check_counts(*, members: int, entries: int, partners: int) -> None:
    if not 1 <= members <= MAX_MEMBERS:
        raise InvalidInput(f"--members must be 1 to {MAX_MEMBERS:,}", field=["members"])
    if not 1 <= entries <= MAX_ENTRIES:
        raise InvalidInput(f"--entries must be 1 to {MAX_ENTRIES:,}", field=["entries"])
    if not 1 <= partners <= MAX_PARTNERS:
        raise InvalidInput(f"--partners must be 1 to {MAX_PARTNERS}", field=["partners"])


def _terms(number: int) -> ContractTerms:
    """Half the partners prefund their points, half pay on redemption: settlement sees both."""
    return ContractTerms(
        currency="USD",
        issue_price=Decimal("0.010"),
        redemption_price=Decimal("0.008"),
        fee_rate=Decimal("0.02"),
        funding_model=FundingModel.PREFUNDED if number % 2 == 0 else FundingModel.ON_REDEMPTION,
        points_lifetime_days=POINTS_LIFETIME_DAYS,
    )


async def seed(
    database: Database,
    *,
    members: int,
    entries: int,
    partners: int,
    secret: bytes,
    now: datetime,
    progress: Callable[[str], None],
) -> SeedSummary:
    """Seed partners ``seed-0``..., members with refs ``seed-<n>``, and ``entries`` entries
    spread over the last WINDOW_DAYS whole days (so settlement can take them as a period)."""
    check_counts(members=members, entries=entries, partners=partners)
    started = time.monotonic()
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=WINDOW_DAYS)
    names = [PARTNER_NAME.format(number) for number in range(partners)]
    async with database.transaction(SYSTEM) as conn:
        if await seed_partners(conn):
            raise InvalidInput(
                "this database is already seeded (it has seed partners); seed a fresh one"
                " (another EXCHANGE_HOME or DATABASE_URL)"
            )
        partner_ids = [
            (await registry.add_partner(conn, name=name, terms=_terms(number), now=start)).id
            for number, name in enumerate(names)
        ]
    keys = IdentityKeys.from_secret(secret)
    async with database.engine.connect() as conn:
        try:
            async with conn.begin():
                await _plan(conn, members, entries, partner_ids)
            progress(f"planned {entries:,} entries in {time.monotonic() - started:.1f} s")
            step = (end - start) // timedelta(microseconds=1) // entries
            per_range = max(1, ROWS_PER_TRANSACTION * members // (members + entries))
            written = 0
            for first in range(0, members, per_range):
                last = min(members, first + per_range)
                async with conn.begin():
                    written += await _write_range(conn, keys, first, last, start, step)
                seconds = time.monotonic() - started
                progress(
                    f"… {last:,}/{members:,} members, {written:,}/{entries:,} entries"
                    f" ({(last + written) / seconds:,.0f} rows/s)"
                )
            redemptions = await _count(conn, "SELECT count(*) FROM seed_entry WHERE redeem")
        finally:
            await conn.invalidate()  # ends the session, and its temp tables with it
    return SeedSummary(
        partners=names,
        members=members,
        entries=entries,
        redemptions=redemptions,
        period_start=start,
        period_end=end,
        seconds=round(time.monotonic() - started, 1),
    )


async def seed_partners(conn: AsyncConnection) -> list[int]:
    """The ids of the seed partners, in seed order."""
    result = await conn.execute(
        text("SELECT id FROM partner WHERE name ~ '^seed-[0-9]+$' ORDER BY substr(name, 6)::int")
    )
    return [int(partner_id) for partner_id in result.scalars()]


async def share_members(conn: AsyncConnection, *, partner_ids: list[int], count: int) -> list[str]:
    """Refs of up to ``count`` random seeded members, each now linked under the same ref to
    every seed partner, as a partner linking a known customer would, so that a load
    generator may ask any seed partner about any of them."""
    result = await conn.execute(
        text(
            """
            WITH sample AS (
                SELECT DISTINCT member_ref, member_id FROM (
                    SELECT member_ref, member_id FROM member_link
                    WHERE partner_id = ANY(:partner_ids) ORDER BY random() LIMIT :count
                ) AS drawn
            ), linked AS (
                INSERT INTO member_link (partner_id, member_ref, member_id)
                SELECT p.id, s.member_ref, s.member_id
                FROM sample s, unnest(CAST(:partner_ids AS bigint[])) AS p(id)
                ON CONFLICT DO NOTHING
            )
            SELECT member_ref FROM sample ORDER BY member_ref
            """
        ),
        {"partner_ids": partner_ids, "count": count},
    )
    return list(result.scalars())


async def _count(conn: AsyncConnection, query: str) -> int:
    return int((await conn.execute(text(query))).scalar_one())


def _hash(expression: str) -> str:
    """A deterministic pseudo-random non-negative int4 of a bigint expression."""
    return f"(hashint8({expression})::bigint & 2147483647)"


# Entry i: a redemption when i % 10 is 2, 5 or 8, by the member of earn i - 1 and for at
# most its points; an earn is booked at the member's home partner 4 times in 5, else at
# its second partner, where every redemption happens.
_EARN_POINTS = "(50 + {} % 951)"
_ENTRIES = f"""
    SELECT i, nextval('ledger_entry_id_seq') AS id, redeem,
           {_hash("4 * (i - redeem::int)")} % :members AS n,
           CASE WHEN redeem
                THEN 1 + {_hash("4 * i + 2")} % {_EARN_POINTS.format(_hash("4 * (i - 1) + 1"))}
                ELSE {_EARN_POINTS.format(_hash("4 * i + 1"))} END AS points,
           redeem OR {_hash("4 * i + 3")} % 5 = 0 AS at_second
    FROM (SELECT i, i % 10 IN (2, 5, 8) AS redeem
          FROM generate_series(0, :entries - 1) AS i) AS numbered
"""

_PLAN = [
    "SET temp_buffers = '512MB'",
    "SET work_mem = '256MB'",
    """
    CREATE TEMP TABLE seed_partner AS
    SELECT p.slot - 1 AS slot, p.id AS partner_id, i.id AS issued_id, r.id AS redeemed_id
    FROM unnest(CAST(:partner_ids AS bigint[])) WITH ORDINALITY AS p(id, slot)
    JOIN ledger_account i ON i.partner_id = p.id AND i.kind = 'PARTNER_ISSUED'
    JOIN ledger_account r ON r.partner_id = p.id AND r.kind = 'PARTNER_REDEEMED'
    """,
    # Member n: home partner n % P; a second partner that differs from it when P > 1.
    """
    CREATE TEMP TABLE seed_member AS
    SELECT n, nextval('ledger_member_id_seq') AS member_id,
           nextval('ledger_account_id_seq') AS wallet_id,
           nextval('ledger_account_id_seq') AS held_id,
           n % :partners AS home,
           (n % :partners + 1 + (n / :partners) % greatest(:partners - 1, 1)) % :partners
               AS second
    FROM generate_series(0, :members - 1) AS n
    """,
    "ALTER TABLE seed_member ADD PRIMARY KEY (n)",
    f"CREATE TEMP TABLE seed_entry AS {_ENTRIES}",
    "CREATE INDEX ON seed_entry (n)",
    # Lot ids in time order; each lot spans [from_point, to_point) of its member's
    # running total of points earned.
    """
    CREATE TEMP TABLE seed_lot AS
    SELECT i, entry_id, id, n, amount,
           sum(amount) OVER running - amount AS from_point, sum(amount) OVER running AS to_point
    FROM (SELECT i, entry_id, nextval('ledger_lot_id_seq') AS id, n, amount FROM (
              SELECT i, id AS entry_id, n, points AS amount FROM seed_entry
              WHERE NOT redeem ORDER BY i) AS earns) AS lots
    WINDOW running AS (PARTITION BY n ORDER BY i)
    """,
    "CREATE INDEX ON seed_lot (n)",
    # Oldest expiry first is oldest earned first (one lifetime for all): a redemption
    # takes its span of the member's running total spent from the lots it overlaps.
    """
    CREATE TEMP TABLE seed_consumption AS
    SELECT r.entry_id, r.n, l.id AS lot_id, l.i AS lot_i, l.entry_id AS lot_entry_id,
           least(l.to_point, r.to_point) - greatest(l.from_point, r.from_point) AS points
    FROM (SELECT id AS entry_id, n, sum(points) OVER running - points AS from_point,
                 sum(points) OVER running AS to_point
          FROM seed_entry WHERE redeem WINDOW running AS (PARTITION BY n ORDER BY i)) AS r
    JOIN seed_lot l ON l.n = r.n AND l.from_point < r.to_point AND r.from_point < l.to_point
    """,
    "CREATE INDEX ON seed_consumption (n)",
    """
    CREATE TEMP TABLE seed_balance AS
    SELECT n, sum(CASE WHEN redeem THEN -points ELSE points END) AS balance
    FROM seed_entry GROUP BY n
    """,
    "ALTER TABLE seed_balance ADD PRIMARY KEY (n)",
    """
    CREATE TEMP TABLE seed_chunk (id bigint PRIMARY KEY, i bigint, redeem boolean,
        member_id bigint, wallet_id bigint, partner_id bigint, account_id bigint,
        wallet_points bigint, at timestamptz)
    """,
    "ANALYZE seed_partner, seed_member, seed_entry, seed_lot, seed_consumption, seed_balance",
]


async def _plan(conn: AsyncConnection, members: int, entries: int, partner_ids: list[int]) -> None:
    params = {
        "members": members,
        "entries": entries,
        "partners": len(partner_ids),
        "partner_ids": partner_ids,
    }
    for statement in _PLAN:
        used = {name: value for name, value in params.items() if f":{name}" in statement}
        await conn.execute(text(statement), used)


# Everything members [first, last) ever did; the chunk table holds their entries.
_WRITE = [
    """
    INSERT INTO ledger_account (id, kind, member_id, sharded, balance, created_at)
    SELECT a.id, a.kind, m.member_id, false, a.balance, :start
    FROM seed_member m LEFT JOIN seed_balance b ON b.n = m.n
    CROSS JOIN LATERAL (VALUES (m.wallet_id, 'MEMBER_WALLET', coalesce(b.balance, 0)),
                               (m.held_id, 'MEMBER_HELD', 0)) AS a(id, kind, balance)
    WHERE m.n >= :first AND m.n < :last ORDER BY a.id
    """,
    f"""
    INSERT INTO member_link (partner_id, member_ref, member_id, created_at)
    SELECT p.partner_id, '{MEMBER_REF.format("")}' || m.n, m.member_id, :start
    FROM seed_member m JOIN seed_partner p ON p.slot IN (m.home, m.second)
    WHERE m.n >= :first AND m.n < :last
    """,
    "TRUNCATE seed_chunk",
    """
    INSERT INTO seed_chunk (id, i, redeem, member_id, wallet_id, partner_id, account_id,
        wallet_points, at)
    SELECT e.id, e.i, e.redeem, m.member_id, m.wallet_id, p.partner_id,
           CASE WHEN e.redeem THEN p.redeemed_id ELSE p.issued_id END,
           CASE WHEN e.redeem THEN -e.points ELSE e.points END,
           CAST(:start AS timestamptz) + e.i * CAST(:step AS bigint) * interval '1 microsecond'
    FROM seed_entry e JOIN seed_member m ON m.n = e.n
    JOIN seed_partner p ON p.slot = CASE WHEN e.at_second THEN m.second ELSE m.home END
    WHERE e.n >= :first AND e.n < :last
    """,
    "ANALYZE seed_chunk",
    # The request hash ledger.earn and ledger.redeem store for the same request made live
    # (exchange.ledger.idempotency.request_hash), so a replay would be recognised.
    """
    INSERT INTO ledger_entry (id, kind, partner_id, member_id, points, client_id,
        idempotency_key, request_hash, created_at, effective_at)
    SELECT c.id, CASE WHEN c.redeem THEN 'REDEEM' ELSE 'EARN' END, c.partner_id,
           c.member_id, abs(c.wallet_points), :client, CAST(:client AS text) || '-' || c.i,
           sha256(convert_to(
               '{"effective_at"\\:null,'
               || CASE WHEN c.redeem THEN '"kind":"REDEEM"'
                       ELSE '"expires_at"\\:null,"kind":"EARN"' END
               || ',"member":' || c.member_id || ',"metadata"\\:null,"partner":'
               || c.partner_id || ',"points":' || abs(c.wallet_points)
               || ',"reference"\\:null}', 'UTF8')),
           c.at, c.at
    FROM seed_chunk c ORDER BY c.id
    """,
    """
    INSERT INTO ledger_posting (entry_id, account_id, amount)
    SELECT c.id, leg.account_id, leg.amount
    FROM seed_chunk c
    CROSS JOIN LATERAL (VALUES (1, c.wallet_id, c.wallet_points),
                               (2, c.account_id, -c.wallet_points)) AS leg(k, account_id, amount)
    ORDER BY c.id, leg.k
    """,
    """
    INSERT INTO ledger_lot (id, member_id, issuer_partner_id, origin, entry_id, amount,
        remaining, earned_at, expires_at)
    SELECT l.id, c.member_id, c.partner_id, 'EARN', c.id, l.amount,
           l.amount - coalesce(spent.points, 0), c.at, c.at + make_interval(days => :lifetime)
    FROM seed_lot l JOIN seed_chunk c ON c.id = l.entry_id
    LEFT JOIN (SELECT lot_id, sum(points) AS points FROM seed_consumption
               WHERE n >= :first AND n < :last GROUP BY lot_id) AS spent ON spent.lot_id = l.id
    WHERE l.n >= :first AND l.n < :last ORDER BY l.id
    """,
    """
    INSERT INTO ledger_lot_consumption (entry_id, lot_id, kind, points, issuer_partner_id,
        redeemer_partner_id)
    SELECT s.entry_id, s.lot_id, 'REDEEM', s.points, earned.partner_id, redeemed.partner_id
    FROM seed_consumption s
    JOIN seed_chunk redeemed ON redeemed.id = s.entry_id
    JOIN seed_chunk earned ON earned.id = s.lot_entry_id
    WHERE s.n >= :first AND s.n < :last ORDER BY s.entry_id, s.lot_i
    """,
    """
    UPDATE ledger_account_shard s SET balance = s.balance + d.points
    FROM (SELECT account_id, i % :shards AS shard, -sum(wallet_points) AS points
          FROM seed_chunk GROUP BY 1, 2) AS d
    WHERE s.account_id = d.account_id AND s.shard = d.shard
    """,
]


async def _write_range(
    conn: AsyncConnection, keys: IdentityKeys, first: int, last: int, start: datetime, step: int
) -> int:
    """Write members [first, last) with their whole history; returns their entry count."""
    params: dict[str, Any] = {
        "first": first,
        "last": last,
        "start": start,
        "step": step,
        "lifetime": POINTS_LIFETIME_DAYS,
        "client": SEED_CLIENT,
        "shards": BALANCE_SHARDS,
    }
    for number, statement in enumerate(_WRITE):
        if number == 1:
            await _write_identities(conn, keys, first, last, start)
        used = {name: value for name, value in params.items() if f":{name}" in statement}
        await conn.execute(text(statement), used)
    return await _count(conn, "SELECT count(*) FROM seed_chunk")


async def _write_identities(
    conn: AsyncConnection, keys: IdentityKeys, first: int, last: int, start: datetime
) -> None:
    """Each member's e-mail, sealed as partners.identity seals it (blind index and
    ciphertext), so identity matching and the GDPR export work on seeded members."""
    rows = await conn.execute(
        text("SELECT n, member_id FROM seed_member WHERE n >= :first AND n < :last ORDER BY n"),
        {"first": first, "last": last},
    )
    records = []
    for n, member_id in rows:
        email = f"{MEMBER_REF.format(n)}@seed.invalid"
        records.append(
            (
                member_id,
                crypto.blind_index(keys.index_key, "email", email),
                crypto.encrypt(keys.encryption_key, email, associated=b"email"),
                start,
            )
        )
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "member_identity",
        records=records,
        columns=["member_id", "email_index", "email_ciphertext", "created_at"],
    )
