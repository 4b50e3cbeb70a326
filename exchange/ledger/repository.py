"""All SQL of the ledger. Functions take the unit of work's connection and plain values.

Reads come in two kinds: those an operation makes under its locks to plan its writes
(wallets locked in member order, then lots, holds, entries), and the read models of the
API. Writes go through one function, :func:`write`: every operation's plans, as one
statement (docs/decisions/0007).

Locking discipline (docs/decisions/0002-ledger-concurrency.md): every change to a
member's lots happens while that member's wallet row is locked; hot partner and
coalition accounts are sharded and never locked as a whole. Lock order everywhere:
hold or target entry, then wallets in member order, then idempotency keys, then shards.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exchange.kit.db import Connection, Row, sql
from exchange.ledger.models import (
    BALANCE_SHARDS,
    DEFAULT_POINTS_LIFETIME_DAYS,
    AccountKind,
    PartnerPolicy,
)
from exchange.ledger.plans import EntryPlan, Key, Lot

_ENTRY_COLUMNS = (
    "id, kind, partner_id, member_id, counterparty_member_id, points, client_id,"
    " idempotency_key, request_hash, reference, target_entry_id, hold_id, created_at,"
    " effective_at, metadata"
)
_HOLD_COLUMNS = (
    "id, member_id, partner_id, points, captured_points, status, created_at, expires_at,"
    " hold_entry_id"
)


# --- accounts -------------------------------------------------------------------------


async def open_partner_accounts(
    conn: Connection, *, partner_id: int, policy: PartnerPolicy
) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO ledger_account (kind, partner_id, sharded, credit_limit_points,
                points_lifetime_days, allow_negative_reversal, max_points_per_operation)
            VALUES ('PARTNER_ISSUED', :partner_id, true, :limit, :lifetime, :negative, :max),
                   ('PARTNER_REDEEMED', :partner_id, true, NULL, NULL, false, :max)
            ON CONFLICT DO NOTHING
            """
        ),
        {
            "partner_id": partner_id,
            "limit": policy.credit_limit_points,
            "lifetime": policy.points_lifetime_days,
            "negative": policy.allow_negative_reversal,
            "max": policy.max_points_per_operation,
        },
    )
    await conn.execute(
        sql(
            """
            INSERT INTO ledger_account_shard (account_id, shard)
            SELECT a.id, s FROM ledger_account a, generate_series(0, :last_shard) AS s
            WHERE a.partner_id = :partner_id
            ON CONFLICT DO NOTHING
            """
        ),
        {"partner_id": partner_id, "last_shard": BALANCE_SHARDS - 1},
    )


async def set_partner_policy(conn: Connection, *, partner_id: int, policy: PartnerPolicy) -> bool:
    result = await conn.execute(
        sql(
            """
            UPDATE ledger_account SET max_points_per_operation = :max,
                   credit_limit_points = CASE WHEN kind = 'PARTNER_ISSUED'
                                              THEN CAST(:limit AS bigint) END,
                   points_lifetime_days = CASE WHEN kind = 'PARTNER_ISSUED'
                                               THEN CAST(:lifetime AS integer) END,
                   allow_negative_reversal = kind = 'PARTNER_ISSUED'
                                             AND CAST(:negative AS boolean)
            WHERE partner_id = :partner_id AND kind IN ('PARTNER_ISSUED', 'PARTNER_REDEEMED')
            RETURNING id
            """
        ),
        {
            "partner_id": partner_id,
            "limit": policy.credit_limit_points,
            "lifetime": policy.points_lifetime_days,
            "negative": policy.allow_negative_reversal,
            "max": policy.max_points_per_operation,
        },
    )
    return result.first() is not None


async def partner_account(conn: Connection, *, partner_id: int, kind: AccountKind) -> Row | None:
    result = await conn.execute(
        sql(
            """
            SELECT id, credit_limit_points, points_lifetime_days, allow_negative_reversal,
                   max_points_per_operation
            FROM ledger_account WHERE partner_id = :partner_id AND kind = :kind
            """
        ),
        {"partner_id": partner_id, "kind": str(kind)},
    )
    return result.first()


async def open_members(conn: Connection, *, count: int) -> list[int]:
    """Open ``count`` members' wallet and held accounts; their new ids, ascending."""
    result = await conn.execute(
        sql(
            """
            WITH member AS MATERIALIZED (
                SELECT nextval('ledger_member_id_seq') AS id FROM generate_series(1, :count)
            ), opened AS (
                INSERT INTO ledger_account (kind, member_id, sharded)
                SELECT kind, member.id, false
                FROM member, (VALUES ('MEMBER_WALLET'), ('MEMBER_HELD')) AS kinds(kind)
                ORDER BY member.id, kind DESC
            )
            SELECT id FROM member ORDER BY id
            """
        ),
        {"count": count},
    )
    return [int(member_id) for member_id in result.scalars()]


async def lock_partner_issuance(conn: Connection, *, partner_id: int) -> None:
    """Serialize issuance of one partner; only taken for partners with a credit limit."""
    await conn.execute(
        sql("SELECT pg_advisory_xact_lock(727100, :partner_id)"),
        {"partner_id": partner_id % 2_147_483_647},
    )


async def outstanding_points(conn: Connection, *, issuer_partner_id: int) -> int:
    """Points issued by a partner still in wallets or reserved by active holds, wherever
    they are: counted by the database function of migration 0014, which reads every
    lot and hold whatever the caller may see (the issuer itself, an operator or a caller
    granted the issuer may ask)."""
    result = await conn.execute(
        sql("SELECT ledger_outstanding_points(:issuer)"), {"issuer": issuer_partner_id}
    )
    return int(result.scalar_one())


# --- the one-statement earn (the fast path) -------------------------------------------


_EARN_AT_ONCE = sql(
    """
    WITH issued AS (
        SELECT id, coalesce(
            CAST(:expires_at AS timestamptz),
            CAST(:effective_at AS timestamptz)
            + make_interval(days => coalesce(points_lifetime_days, :default_lifetime))
        ) AS expires_at
        FROM ledger_account
        WHERE partner_id = :partner_id AND kind = 'PARTNER_ISSUED'
          AND credit_limit_points IS NULL
          AND :points <= coalesce(max_points_per_operation, :points)
    ), locked AS MATERIALIZED (
        SELECT id FROM ledger_account
        WHERE member_id = :member_id AND kind = 'MEMBER_WALLET' FOR UPDATE
    ), new_entry AS (
        INSERT INTO ledger_entry (kind, partner_id, member_id, points, client_id,
            idempotency_key, request_hash, reference, created_at, effective_at,
            metadata)
        SELECT 'EARN', :partner_id, :member_id, :points, :client_id, :key, :digest,
            :reference, :now, :effective_at, CAST(:metadata AS jsonb)
        FROM issued, locked
        WHERE issued.expires_at > greatest(CAST(:now AS timestamptz),
            CAST(:effective_at AS timestamptz))
        ON CONFLICT (client_id, idempotency_key) DO NOTHING
        RETURNING id
    ), wallet AS (
        UPDATE ledger_account SET balance = balance + :points
        WHERE member_id = :member_id AND kind = 'MEMBER_WALLET'
          AND EXISTS (SELECT 1 FROM new_entry)
        RETURNING id, balance
    ), shard AS (
        UPDATE ledger_account_shard SET balance = balance - :points
        WHERE account_id = (SELECT id FROM issued) AND shard = :shard
          AND EXISTS (SELECT 1 FROM new_entry)
    ), legs AS (
        INSERT INTO ledger_posting (entry_id, account_id, amount)
        SELECT new_entry.id, wallet.id, :points FROM new_entry, wallet
        UNION ALL
        SELECT new_entry.id, issued.id, -:points FROM new_entry, issued
    ), lot AS (
        INSERT INTO ledger_lot (member_id, issuer_partner_id, origin, entry_id,
            amount, remaining, earned_at, expires_at)
        SELECT :member_id, :partner_id, 'EARN', new_entry.id, :points, :points,
            :effective_at, issued.expires_at
        FROM new_entry, issued
    )
    SELECT (SELECT id FROM new_entry) AS entry_id, (SELECT balance FROM wallet)
        AS balance
    """
)


async def earn_at_once(
    conn: Connection,
    *,
    key: Key,
    partner_id: int,
    member_id: int,
    points: int,
    reference: str | None,
    metadata: str,
    now: datetime,
    effective_at: datetime,
    expires_at: datetime | None,
) -> tuple[int, int] | None:
    """A plain earn as one statement: entry, wallet, shard, both postings and the lot,
    exactly what :func:`write` writes for the same earn (a test holds the two against
    each other), with the expiry rule of ``requests.lot_expiry`` in SQL.

    Writes only when nothing needs deciding: the key is new, the partner has no credit
    limit, the points are within its maximum per operation, the member exists and the
    expiry is in the future. Returns the entry id and
    the wallet balance, or None having written nothing (the caller then takes the
    general path, which decides the case). Locks in the order of every operation: the
    wallet, then the key, then a shard.
    """
    result = await conn.execute(
        _EARN_AT_ONCE,
        {
            "client_id": key.client_id,
            "key": key.idempotency_key,
            "digest": key.digest,
            "partner_id": partner_id,
            "member_id": member_id,
            "points": points,
            "reference": reference,
            "metadata": metadata,
            "now": now,
            "effective_at": effective_at,
            "expires_at": expires_at,
            "default_lifetime": DEFAULT_POINTS_LIFETIME_DAYS,
            "shard": random.randrange(BALANCE_SHARDS),  # noqa: S311 (load spreading)
        },
    )
    row = result.one()
    if row.entry_id is None:
        return None
    return int(row.entry_id), int(row.balance)


# --- reads under lock, to plan writes -------------------------------------------------


@dataclass(frozen=True)
class WalletRow:
    """A locked wallet. ``held_id`` is None when the caller may credit the wallet but not
    see the member's held account (a transfer's recipient, docs/decisions/0009)."""

    member_id: int
    wallet_id: int
    balance: int
    held_id: int | None


@dataclass(frozen=True)
class AccountRow:
    """A partner or coalition account with the policy flags `partners` sets on it."""

    id: int
    partner_id: int | None
    kind: str
    credit_limit_points: int | None
    points_lifetime_days: int | None
    allow_negative_reversal: bool
    max_points_per_operation: int | None


@dataclass(frozen=True)
class Locked:
    """What :func:`lock_wallets` read: the wallets locked, the accounts asked for by
    (partner id or None for the coalition, kind), and fresh hold ids."""

    wallets: dict[int, WalletRow]
    accounts: dict[tuple[int | None, str], AccountRow]
    hold_ids: list[int]


async def lock_wallets(
    conn: Connection,
    *,
    member_ids: Sequence[int],
    accounts: Sequence[tuple[int | None, AccountKind]] = (),
    new_holds: int = 0,
) -> Locked:
    """Lock wallets in member order (so two operations on the same wallets cannot
    deadlock), with each its held account (changed only under the wallet's lock); in the
    same round trip, the partner and coalition accounts the operation posts to and
    ``new_holds`` hold ids."""
    result = await conn.execute(sql(_LOCK_WALLETS), {
        "member_ids": sorted(set(member_ids)),
        "partners": [partner_id for partner_id, _ in accounts],
        "kinds": [str(kind) for _, kind in accounts],
        "holds": new_holds,
    })  # fmt: skip
    locked = Locked(wallets={}, accounts={}, hold_ids=[])
    for r in result:
        if r.part == "wallet":
            held = int(r.held_id) if r.held_id is not None else None
            locked.wallets[int(r.owner)] = WalletRow(int(r.owner), int(r.id), int(r.balance), held)
        elif r.part == "account":
            locked.accounts[(r.owner, r.kind)] = AccountRow(
                int(r.id), r.owner, r.kind, r.credit_limit_points, r.points_lifetime_days,
                bool(r.allow_negative_reversal), r.max_points_per_operation,
            )  # fmt: skip
        else:
            locked.hold_ids.append(int(r.id))
    return locked


_LOCK_WALLETS = """
WITH locked AS MATERIALIZED (
    SELECT member_id, id, balance FROM ledger_account
    WHERE member_id = ANY(CAST(:member_ids AS bigint[])) AND kind = 'MEMBER_WALLET'
    ORDER BY member_id FOR UPDATE
)
SELECT 'wallet' AS part, w.member_id AS owner, w.id, w.balance, h.id AS held_id,
       NULL::text AS kind, NULL::bigint AS credit_limit_points,
       NULL::integer AS points_lifetime_days, NULL::boolean AS allow_negative_reversal,
       NULL::bigint AS max_points_per_operation
FROM locked w
LEFT JOIN ledger_account h ON h.member_id = w.member_id AND h.kind = 'MEMBER_HELD'
UNION ALL
SELECT 'account', a.partner_id, a.id, NULL, NULL, a.kind, a.credit_limit_points,
       a.points_lifetime_days, a.allow_negative_reversal, a.max_points_per_operation
FROM ledger_account a
JOIN unnest(CAST(:partners AS bigint[]), CAST(:kinds AS text[])) AS want(partner_id, kind)
  ON a.kind = want.kind AND a.partner_id IS NOT DISTINCT FROM want.partner_id
 AND a.member_id IS NULL
UNION ALL
SELECT 'hold', NULL, nextval('ledger_hold_id_seq'), NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM generate_series(1, :holds)
"""


async def lots_of_wallets(conn: Connection, *, member_ids: Sequence[int]) -> dict[int, list[Lot]]:
    """Every lot still holding points (or a debt), per member, oldest expiry first. The
    caller holds the wallets' locks and reads after taking them, so it sees every change
    committed before."""
    result = await conn.execute(
        sql(
            """
            SELECT member_id, id, issuer_partner_id, remaining, earned_at, expires_at
            FROM ledger_lot
            WHERE member_id = ANY(CAST(:member_ids AS bigint[])) AND remaining <> 0
            ORDER BY member_id, expires_at, id
            """
        ),
        {"member_ids": sorted(set(member_ids))},
    )
    lots: dict[int, list[Lot]] = {}
    for r in result:
        lots.setdefault(int(r.member_id), []).append(
            Lot(int(r.id), r.issuer_partner_id, int(r.remaining), r.earned_at, r.expires_at)
        )
    return lots


async def spendable_points(conn: Connection, *, member_id: int, now: datetime) -> int:
    """What a spend could take from the member's wallet at ``now``, by the rule of
    ``spending.spend``: the balance less its expired lots, and no more than its live
    lots. A plain read, no lock (0 for a wallet the caller can't see)."""
    result = await conn.execute(
        sql(
            """
            SELECT least(
                coalesce((SELECT balance FROM ledger_account
                          WHERE member_id = :member_id AND kind = 'MEMBER_WALLET'), 0)
                    - coalesce(sum(remaining) FILTER (WHERE expires_at <= :now), 0),
                coalesce(sum(remaining) FILTER (WHERE expires_at > :now), 0))
            FROM ledger_lot WHERE member_id = :member_id AND remaining > 0
            """
        ),
        {"member_id": member_id, "now": now},
    )
    return int(result.scalar_one())


async def lock_holds(conn: Connection, *, hold_ids: Sequence[int]) -> dict[int, Row]:
    """Lock holds in id order; the lock serializes everything that closes a hold."""
    result = await conn.execute(
        sql(
            f"""
            SELECT {_HOLD_COLUMNS} FROM ledger_hold
            WHERE id = ANY(CAST(:hold_ids AS bigint[])) ORDER BY id FOR UPDATE
            """
        ),
        {"hold_ids": sorted(set(hold_ids))},
    )
    return {int(r.id): r for r in result}


async def hold_reservations(conn: Connection, *, hold_ids: Sequence[int]) -> dict[int, list[Lot]]:
    """Per hold, the points it reserves on each lot, oldest expiry first."""
    result = await conn.execute(
        sql(
            """
            SELECT c.hold_id, l.id, l.issuer_partner_id, sum(c.points) AS remaining,
                   l.earned_at, l.expires_at
            FROM ledger_lot_consumption c JOIN ledger_lot l ON l.id = c.lot_id
            WHERE c.hold_id = ANY(CAST(:hold_ids AS bigint[])) AND c.kind = 'HOLD'
            GROUP BY c.hold_id, l.id HAVING sum(c.points) > 0
            ORDER BY c.hold_id, l.expires_at, l.id
            """
        ),
        {"hold_ids": sorted(set(hold_ids))},
    )
    reservations: dict[int, list[Lot]] = {}
    for r in result:
        reservations.setdefault(int(r.hold_id), []).append(
            Lot(int(r.id), r.issuer_partner_id, int(r.remaining), r.earned_at, r.expires_at)
        )
    return reservations


async def expired_active_holds(conn: Connection, *, as_of: datetime, limit: int) -> list[int]:
    result = await conn.execute(
        sql(
            """
            SELECT id FROM ledger_hold WHERE status = 'ACTIVE' AND expires_at <= :as_of
            ORDER BY expires_at, id LIMIT :limit FOR UPDATE SKIP LOCKED
            """
        ),
        {"as_of": as_of, "limit": limit},
    )
    return [int(hold_id) for hold_id in result.scalars()]


async def entry_by_id(conn: Connection, *, entry_id: int, for_update: bool = False) -> Row | None:
    """An entry; ``for_update`` locks it (reversals of one target are serialized on it)."""
    lock = " FOR UPDATE" if for_update else ""
    result = await conn.execute(
        sql(f"SELECT {_ENTRY_COLUMNS} FROM ledger_entry WHERE id = :entry_id{lock}"),
        {"entry_id": entry_id},
    )
    return result.first()


async def earn_lot(conn: Connection, *, entry_id: int) -> Lot | None:
    result = await conn.execute(
        sql(
            "SELECT id, issuer_partner_id, remaining, earned_at, expires_at"
            " FROM ledger_lot WHERE entry_id = :entry_id AND origin <> 'TRANSFER'"
        ),
        {"entry_id": entry_id},
    )
    r = result.first()
    if r is None:
        return None
    return Lot(int(r.id), r.issuer_partner_id, int(r.remaining), r.earned_at, r.expires_at)


async def redeemed_lots(conn: Connection, *, redemption_entry_id: int) -> list[Lot]:
    """Per lot, the points a redemption still holds (net of earlier reversals), in the
    order they should be given back: the last consumed first."""
    result = await conn.execute(
        sql(
            """
            SELECT l.id, l.issuer_partner_id, sum(c.points) AS remaining, l.earned_at,
                   l.expires_at
            FROM ledger_lot_consumption c JOIN ledger_lot l ON l.id = c.lot_id
            WHERE c.kind = 'REDEEM' AND (c.entry_id = :entry_id OR c.entry_id IN (
                SELECT id FROM ledger_entry WHERE target_entry_id = :entry_id
                AND kind = 'REVERSAL'))
            GROUP BY l.id HAVING sum(c.points) > 0
            ORDER BY l.expires_at DESC, l.id DESC
            """
        ),
        {"entry_id": redemption_entry_id},
    )
    return [
        Lot(int(r.id), r.issuer_partner_id, int(r.remaining), r.earned_at, r.expires_at)
        for r in result
    ]


async def members_with_expired_lots(conn: Connection, *, as_of: datetime, limit: int) -> list[int]:
    result = await conn.execute(
        sql(
            """
            SELECT DISTINCT member_id FROM ledger_lot
            WHERE remaining > 0 AND expires_at <= :as_of
            ORDER BY member_id LIMIT :limit
            """
        ),
        {"as_of": as_of, "limit": limit},
    )
    return [int(member_id) for member_id in result.scalars()]


# --- idempotency ----------------------------------------------------------------------


async def entries_by_keys(
    conn: Connection, *, client_id: str, idempotency_keys: Sequence[str]
) -> dict[str, Row]:
    """The entries some of a client's idempotency keys already name."""
    result = await conn.execute(
        sql(
            f"SELECT {_ENTRY_COLUMNS} FROM ledger_entry WHERE client_id = :client_id"
            " AND idempotency_key = ANY(CAST(:keys AS text[]))"
        ),
        {"client_id": client_id, "keys": sorted(set(idempotency_keys))},
    )
    return {row.idempotency_key: row for row in result}


async def wallet_balances(conn: Connection, *, member_ids: Sequence[int]) -> dict[int, int]:
    result = await conn.execute(
        sql(
            "SELECT member_id, balance FROM ledger_account"
            " WHERE member_id = ANY(CAST(:ids AS bigint[])) AND kind = 'MEMBER_WALLET'"
        ),
        {"ids": list(member_ids)},
    )
    return {int(row.member_id): int(row.balance) for row in result}


async def holds_of_entries(conn: Connection, *, entry_ids: Sequence[int]) -> dict[int, int]:
    """The hold each HOLD entry opened."""
    result = await conn.execute(
        sql(
            "SELECT hold_entry_id, id FROM ledger_hold"
            " WHERE hold_entry_id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": list(entry_ids)},
    )
    return {int(row.hold_entry_id): int(row.id) for row in result}


async def hold_by_id(conn: Connection, *, hold_id: int) -> Row | None:
    result = await conn.execute(
        sql(f"SELECT {_HOLD_COLUMNS} FROM ledger_hold WHERE id = :hold_id"),
        {"hold_id": hold_id},
    )
    return result.first()


# --- the one writer -------------------------------------------------------------------

_WRITE = """
WITH entry AS MATERIALIZED (
    SELECT e.ord, nextval('ledger_entry_id_seq') AS id, e.kind, e.partner_id, e.member_id,
           e.counterparty_member_id, e.points, e.client_id, e.idempotency_key,
           e.request_hash, e.reference, e.target_entry_id, e.hold_id, e.created_at,
           e.effective_at, CAST(e.metadata AS jsonb) AS metadata
    FROM unnest(CAST(:e_kind AS text[]), CAST(:e_partner AS bigint[]),
                CAST(:e_member AS bigint[]), CAST(:e_counterparty AS bigint[]),
                CAST(:e_points AS bigint[]), CAST(:e_client AS text[]),
                CAST(:e_key AS text[]), CAST(:e_digest AS bytea[]),
                CAST(:e_reference AS text[]), CAST(:e_target AS bigint[]),
                CAST(:e_hold AS bigint[]), CAST(:e_created AS timestamptz[]),
                CAST(:e_effective AS timestamptz[]), CAST(:e_metadata AS text[]))
         WITH ORDINALITY AS e(kind, partner_id, member_id, counterparty_member_id, points,
              client_id, idempotency_key, request_hash, reference, target_entry_id,
              hold_id, created_at, effective_at, metadata, ord)
    ORDER BY e.ord
), claimed AS (
    INSERT INTO ledger_entry (id, kind, partner_id, member_id, counterparty_member_id,
        points, client_id, idempotency_key, request_hash, reference, target_entry_id,
        hold_id, created_at, effective_at, metadata)
    SELECT id, kind, partner_id, member_id, counterparty_member_id, points, client_id,
           idempotency_key, request_hash, reference, target_entry_id, hold_id, created_at,
           effective_at, metadata
    FROM entry ORDER BY ord
    ON CONFLICT (client_id, idempotency_key) DO NOTHING
    RETURNING id
), written AS MATERIALIZED (
    SELECT entry.ord, entry.id FROM entry JOIN claimed USING (id)
), leg AS MATERIALIZED (
    SELECT w.id AS entry_id, l.account_id, l.amount, l.sharded, l.position
    FROM unnest(CAST(:l_entry AS bigint[]), CAST(:l_account AS bigint[]),
                CAST(:l_amount AS bigint[]), CAST(:l_sharded AS boolean[]))
         WITH ORDINALITY AS l(ord, account_id, amount, sharded, position)
    JOIN written w ON w.ord = l.ord
), posting AS (
    INSERT INTO ledger_posting (entry_id, account_id, amount)
    SELECT entry_id, account_id, amount FROM leg ORDER BY position
), account AS (
    UPDATE ledger_account a SET balance = a.balance + d.amount
    FROM (SELECT account_id, sum(amount) AS amount FROM leg WHERE NOT sharded
          GROUP BY account_id) AS d
    WHERE a.id = d.account_id
    RETURNING a.id, a.balance
), shard AS (
    UPDATE ledger_account_shard s SET balance = s.balance + d.amount
    FROM (SELECT account_id, sum(amount) AS amount FROM leg WHERE sharded
          GROUP BY account_id) AS d
    WHERE s.account_id = d.account_id AND s.shard = :shard
), lot AS (
    INSERT INTO ledger_lot (member_id, issuer_partner_id, origin, entry_id, source_lot_id,
        amount, remaining, earned_at, expires_at)
    SELECT n.member_id, n.issuer, n.origin, w.id, n.source_lot_id, n.amount, n.amount,
           n.earned_at, n.expires_at
    FROM unnest(CAST(:n_entry AS bigint[]), CAST(:n_member AS bigint[]),
                CAST(:n_issuer AS bigint[]), CAST(:n_origin AS text[]),
                CAST(:n_source AS bigint[]), CAST(:n_amount AS bigint[]),
                CAST(:n_earned AS timestamptz[]), CAST(:n_expires AS timestamptz[]))
         WITH ORDINALITY
         AS n(ord, member_id, issuer, origin, source_lot_id, amount, earned_at, expires_at,
              position)
    JOIN written w ON w.ord = n.ord
    ORDER BY n.position
), take AS MATERIALIZED (
    SELECT w.id AS entry_id, t.lot_id, t.kind, t.points, t.issuer, t.redeemer, t.hold_id,
           t.position
    FROM unnest(CAST(:t_entry AS bigint[]), CAST(:t_lot AS bigint[]),
                CAST(:t_kind AS text[]), CAST(:t_points AS bigint[]),
                CAST(:t_issuer AS bigint[]), CAST(:t_redeemer AS bigint[]),
                CAST(:t_hold AS bigint[]))
         WITH ORDINALITY AS t(ord, lot_id, kind, points, issuer, redeemer, hold_id, position)
    JOIN written w ON w.ord = t.ord
), consumption AS (
    INSERT INTO ledger_lot_consumption (entry_id, lot_id, kind, points, issuer_partner_id,
        redeemer_partner_id, hold_id)
    SELECT entry_id, lot_id, kind, points, issuer, redeemer, hold_id FROM take
    ORDER BY position
), lot_change AS (
    UPDATE ledger_lot l SET remaining = l.remaining - d.points
    FROM (SELECT lot_id, sum(points) AS points FROM take GROUP BY lot_id) AS d
    WHERE l.id = d.lot_id AND d.points <> 0
), hold_opened AS (
    INSERT INTO ledger_hold (id, member_id, partner_id, points, status, created_at,
        expires_at, hold_entry_id)
    SELECT h.id, h.member_id, h.partner_id, h.points, 'ACTIVE', h.created_at, h.expires_at,
           w.id
    FROM unnest(CAST(:h_entry AS bigint[]), CAST(:h_id AS bigint[]),
                CAST(:h_member AS bigint[]), CAST(:h_partner AS bigint[]),
                CAST(:h_points AS bigint[]), CAST(:h_created AS timestamptz[]),
                CAST(:h_expires AS timestamptz[]))
         AS h(ord, id, member_id, partner_id, points, created_at, expires_at)
    JOIN written w ON w.ord = h.ord
), hold_closed AS (
    UPDATE ledger_hold h SET status = c.status, captured_points = c.captured,
        closing_entry_id = w.id
    FROM unnest(CAST(:c_entry AS bigint[]), CAST(:c_hold AS bigint[]),
                CAST(:c_status AS text[]), CAST(:c_captured AS bigint[]))
         AS c(ord, hold_id, status, captured)
    JOIN written w ON w.ord = c.ord
    WHERE h.id = c.hold_id AND h.status = 'ACTIVE'
)
SELECT 'entry' AS part, ord AS key, id AS value FROM written
UNION ALL
SELECT 'balance', id, balance FROM account
"""


@dataclass(frozen=True)
class Written:
    """What :func:`write` wrote: each plan's entry id (None: its idempotency key was
    taken, so nothing of it was written), and the balance after of every plain
    (unsharded) account it changed."""

    entry_ids: list[int | None]
    balances: dict[int, int]


def _write_parameters(plans: Sequence[EntryPlan]) -> dict[str, Any]:
    """The plans as the arrays the statement unnests; ``*_entry`` numbers a plan from 1."""
    arrays: dict[str, list[Any]] = {name: [] for name in _WRITE_ARRAYS}

    def add(**values: Any) -> None:
        for name, value in values.items():
            arrays[name].append(value)

    for number, plan in enumerate(plans, start=1):
        key = plan.key
        add(
            e_kind=str(plan.kind),
            e_partner=plan.partner_id,
            e_member=plan.member_id,
            e_counterparty=plan.counterparty_member_id,
            e_points=plan.points,
            e_client=key.client_id if key else None,
            e_key=key.idempotency_key if key else None,
            e_digest=key.digest if key else None,
            e_reference=plan.reference,
            e_target=plan.target_entry_id,
            e_hold=plan.hold_id,
            e_created=plan.created_at,
            e_effective=plan.effective_at,
            e_metadata=json.dumps(dict(plan.metadata or {}), sort_keys=True, default=str),
        )
        for leg in plan.legs:
            add(
                l_entry=number, l_account=leg.account_id, l_amount=leg.amount, l_sharded=leg.sharded
            )
        for lot in plan.lots:
            add(
                n_entry=number,
                n_member=lot.member_id,
                n_issuer=lot.issuer_partner_id,
                n_origin=str(lot.origin),
                n_source=lot.source_lot_id,
                n_amount=lot.amount,
                n_earned=lot.earned_at,
                n_expires=lot.expires_at,
            )
        for take in plan.takes:
            add(
                t_entry=number,
                t_lot=take.lot_id,
                t_kind=str(take.kind),
                t_points=take.points,
                t_issuer=take.issuer_partner_id,
                t_redeemer=take.redeemer_partner_id,
                t_hold=take.hold_id,
            )
        if (hold := plan.new_hold) is not None:
            add(
                h_entry=number,
                h_id=hold.id,
                h_member=hold.member_id,
                h_partner=hold.partner_id,
                h_points=hold.points,
                h_created=hold.created_at,
                h_expires=hold.expires_at,
            )
        if (close := plan.close_hold) is not None:
            add(
                c_entry=number,
                c_hold=close.hold_id,
                c_status=str(close.status),
                c_captured=close.captured_points,
            )
    return {**arrays, "shard": random.randrange(BALANCE_SHARDS)}  # noqa: S311 (load spreading)


_WRITE_ARRAYS = sorted({name for name in re.findall(r":([a-z]_[a-z]+)", _WRITE)})


async def write(conn: Connection, plans: Sequence[EntryPlan]) -> Written:
    """Write every plan in one statement: entries (claiming their idempotency keys),
    postings, balance changes (wallet rows; one random shard of each hot account), new
    lots, consumptions and the lots' remaining, holds opened and closed. A plan whose
    key is already taken writes nothing at all."""
    if not plans:
        return Written(entry_ids=[], balances={})
    result = await conn.execute(sql(_WRITE), _write_parameters(plans))
    entry_ids: list[int | None] = [None] * len(plans)
    balances: dict[int, int] = {}
    for part, key, value in result:
        if part == "entry":
            entry_ids[int(key) - 1] = int(value)
        else:
            balances[int(key)] = int(value)
    return Written(entry_ids=entry_ids, balances=balances)


# --- read models ----------------------------------------------------------------------


async def wallet_rows(conn: Connection, *, member_id: int) -> list[Row]:
    """A member's wallet in one statement: its account balances (``part = 'account'``),
    then the points it owns per issuing partner, lots' remaining plus active holds
    (``part = 'issuer'``, in issuer order, unowned issuers left out)."""
    result = await conn.execute(
        sql(
            """
            SELECT 'account' AS part, kind, balance AS points, NULL::bigint AS issuer_partner_id
            FROM ledger_account WHERE member_id = :member_id
            UNION ALL
            SELECT 'issuer', NULL, sum(points), issuer_partner_id FROM (
                SELECT issuer_partner_id, remaining AS points FROM ledger_lot
                WHERE member_id = :member_id AND remaining <> 0
                UNION ALL
                SELECT c.issuer_partner_id, c.points FROM ledger_hold h
                JOIN ledger_lot_consumption c ON c.hold_id = h.id AND c.kind = 'HOLD'
                WHERE h.member_id = :member_id AND h.status = 'ACTIVE'
            ) AS owned
            GROUP BY issuer_partner_id HAVING sum(points) <> 0
            ORDER BY part, issuer_partner_id NULLS FIRST
            """
        ),
        {"member_id": member_id},
    )
    return list(result.all())


async def expiring_lots(
    conn: Connection, *, member_id: int, now: datetime, until: datetime, limit: int
) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT issuer_partner_id, expires_at, sum(remaining) AS points FROM ledger_lot
            WHERE member_id = :member_id AND remaining > 0
              AND expires_at > :now AND expires_at <= :until
            GROUP BY expires_at, issuer_partner_id
            ORDER BY expires_at, issuer_partner_id NULLS FIRST
            LIMIT :limit
            """
        ),
        {"member_id": member_id, "now": now, "until": until, "limit": limit},
    )
    return list(result.all())


async def lots_of_member(conn: Connection, *, member_id: int) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT id, issuer_partner_id, origin, entry_id, source_lot_id, amount, remaining,
                   earned_at, expires_at
            FROM ledger_lot WHERE member_id = :member_id ORDER BY expires_at, id
            """
        ),
        {"member_id": member_id},
    )
    return list(result.all())


async def postings_of_entry(conn: Connection, *, entry_id: int) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT p.account_id, a.kind, a.partner_id, a.member_id, p.amount
            FROM ledger_posting p JOIN ledger_account a ON a.id = p.account_id
            WHERE p.entry_id = :entry_id ORDER BY p.id
            """
        ),
        {"entry_id": entry_id},
    )
    return list(result.all())


async def consumptions_of_entry(conn: Connection, *, entry_id: int) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT lot_id, kind, points, issuer_partner_id, redeemer_partner_id, hold_id
            FROM ledger_lot_consumption WHERE entry_id = :entry_id ORDER BY id
            """
        ),
        {"entry_id": entry_id},
    )
    return list(result.all())


async def account_balance(conn: Connection, *, account_id: int) -> int:
    result = await conn.execute(
        sql(
            """
            SELECT a.balance + coalesce((SELECT sum(s.balance) FROM ledger_account_shard s
                                        WHERE s.account_id = a.id), 0)
            FROM ledger_account a WHERE a.id = :account_id
            """
        ),
        {"account_id": account_id},
    )
    return int(result.scalar_one())


async def entries_page(
    conn: Connection,
    *,
    limit: int,
    before_id: int | None = None,
    partner_id: int | None = None,
    member_id: int | None = None,
    kinds: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reference: str | None = None,
) -> list[Row]:
    """Newest first, keyset-paginated on id (no OFFSET). ``member_id`` also matches the
    recipient of a transfer."""
    result = await conn.execute(
        sql(
            f"""
            SELECT {_ENTRY_COLUMNS} FROM ledger_entry
            WHERE (CAST(:before_id AS bigint) IS NULL OR id < :before_id)
              AND (CAST(:partner_id AS bigint) IS NULL OR partner_id = :partner_id)
              AND (CAST(:member_id AS bigint) IS NULL OR member_id = :member_id
                   OR counterparty_member_id = :member_id)
              AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[])))
              AND (CAST(:since AS timestamptz) IS NULL OR effective_at >= :since)
              AND (CAST(:until AS timestamptz) IS NULL OR effective_at < :until)
              AND (CAST(:reference AS text) IS NULL OR reference = :reference)
            ORDER BY id DESC LIMIT :limit
            """
        ),
        {
            "before_id": before_id,
            "partner_id": partner_id,
            "member_id": member_id,
            "kinds": list(kinds) if kinds else None,
            "since": since,
            "until": until,
            "reference": reference,
            "limit": limit,
        },
    )
    return list(result.all())


async def entries_by_ids(conn: Connection, *, entry_ids: Sequence[int]) -> list[Row]:
    result = await conn.execute(
        sql(f"SELECT {_ENTRY_COLUMNS} FROM ledger_entry WHERE id = ANY(:ids)"),
        {"ids": list(entry_ids)},
    )
    return list(result.all())


async def watch_wallet(
    conn: Connection, *, member_id: int, watcher: str, expires_at: datetime
) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO wallet_watch (member_id, watcher, expires_at)
            VALUES (:member_id, :watcher, :expires_at)
            ON CONFLICT (member_id, watcher) DO UPDATE SET expires_at = EXCLUDED.expires_at
            """
        ),
        {"member_id": member_id, "watcher": watcher, "expires_at": expires_at},
    )


async def unwatch_wallet(conn: Connection, *, member_id: int, watcher: str) -> None:
    await conn.execute(
        sql("DELETE FROM wallet_watch WHERE member_id = :member_id AND watcher = :watcher"),
        {"member_id": member_id, "watcher": watcher},
    )


async def accounts_page(
    conn: Connection, *, after_id: int, limit: int, kind: str | None
) -> list[Row]:
    """Accounts with their balance (sharded ones summed), in id order."""
    result = await conn.execute(
        sql(
            """
            SELECT a.id, a.kind, a.partner_id, a.member_id,
                   a.balance + coalesce((SELECT sum(s.balance) FROM ledger_account_shard s
                                         WHERE s.account_id = a.id), 0) AS balance
            FROM ledger_account a
            WHERE a.id > :after_id AND (CAST(:kind AS text) IS NULL OR a.kind = :kind)
            ORDER BY a.id LIMIT :limit
            """
        ),
        {"after_id": after_id, "limit": limit, "kind": kind},
    )
    return list(result.all())


async def reversed_points(conn: Connection, *, target_entry_id: int) -> int:
    result = await conn.execute(
        sql(
            "SELECT coalesce(sum(points), 0) FROM ledger_entry"
            " WHERE target_entry_id = :target AND kind = 'REVERSAL'"
        ),
        {"target": target_entry_id},
    )
    return int(result.scalar_one())
