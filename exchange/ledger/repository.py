"""All SQL of the ledger. Functions take the unit of work's connection and plain values.

Locking discipline (docs/decisions/0002-ledger-concurrency.md): every change to a
member's lots happens while that member's wallet row is locked, taken by the wallet
update itself or by :func:`lock_wallets`; hot partner and coalition accounts are
sharded and never locked as a whole.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.db import sql
from exchange.ledger.models import (
    BALANCE_SHARDS,
    DEFAULT_POINTS_LIFETIME_DAYS,
    AccountKind,
    ConsumptionKind,
    HoldStatus,
    LotAllocation,
    LotOrigin,
    PartnerPolicy,
)

# --- accounts -------------------------------------------------------------------------


async def open_partner_accounts(
    conn: AsyncConnection, *, partner_id: int, policy: PartnerPolicy
) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO ledger_account (kind, partner_id, sharded, credit_limit_points,
                                        points_lifetime_days, allow_negative_reversal)
            VALUES ('PARTNER_ISSUED', :partner_id, true, :limit, :lifetime, :negative),
                   ('PARTNER_REDEEMED', :partner_id, true, NULL, NULL, false)
            ON CONFLICT DO NOTHING
            """
        ),
        {
            "partner_id": partner_id,
            "limit": policy.credit_limit_points,
            "lifetime": policy.points_lifetime_days,
            "negative": policy.allow_negative_reversal,
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


async def set_partner_policy(
    conn: AsyncConnection, *, partner_id: int, policy: PartnerPolicy
) -> bool:
    result = await conn.execute(
        sql(
            """
            UPDATE ledger_account SET credit_limit_points = :limit,
                   points_lifetime_days = :lifetime, allow_negative_reversal = :negative
            WHERE partner_id = :partner_id AND kind = 'PARTNER_ISSUED'
            RETURNING id
            """
        ),
        {
            "partner_id": partner_id,
            "limit": policy.credit_limit_points,
            "lifetime": policy.points_lifetime_days,
            "negative": policy.allow_negative_reversal,
        },
    )
    return result.first() is not None


async def partner_account(
    conn: AsyncConnection, *, partner_id: int, kind: AccountKind
) -> Row[Any] | None:
    result = await conn.execute(
        sql(
            """
            SELECT id, credit_limit_points, points_lifetime_days, allow_negative_reversal
            FROM ledger_account WHERE partner_id = :partner_id AND kind = :kind
            """
        ),
        {"partner_id": partner_id, "kind": str(kind)},
    )
    return result.first()


async def coalition_account_id(conn: AsyncConnection, *, kind: AccountKind) -> int:
    result = await conn.execute(
        sql(
            "SELECT id FROM ledger_account"
            " WHERE kind = :kind AND partner_id IS NULL AND member_id IS NULL"
        ),
        {"kind": str(kind)},
    )
    return int(result.scalar_one())


async def open_member(conn: AsyncConnection) -> int:
    result = await conn.execute(
        sql(
            """
            WITH member AS (SELECT nextval('ledger_member_id_seq') AS id)
            INSERT INTO ledger_account (kind, member_id, sharded)
            SELECT kind, member.id, false
            FROM member, (VALUES ('MEMBER_WALLET'), ('MEMBER_HELD')) AS kinds(kind)
            RETURNING member_id
            """
        )
    )
    return int(result.scalars().first())  # type: ignore[arg-type]


async def member_exists(conn: AsyncConnection, *, member_id: int) -> bool:
    result = await conn.execute(
        sql("SELECT 1 FROM ledger_account WHERE member_id = :member_id AND kind = 'MEMBER_WALLET'"),
        {"member_id": member_id},
    )
    return result.first() is not None


async def credit_wallet(conn: AsyncConnection, *, member_id: int, points: int) -> Row[Any] | None:
    """Add (or, with negative points, take without a floor) points; returns (id, balance)."""
    result = await conn.execute(
        sql(
            """
            UPDATE ledger_account SET balance = balance + :points
            WHERE member_id = :member_id AND kind = 'MEMBER_WALLET'
            RETURNING id, balance
            """
        ),
        {"member_id": member_id, "points": points},
    )
    return result.first()


async def debit_wallet(conn: AsyncConnection, *, member_id: int, points: int) -> Row[Any] | None:
    """Take points only if the wallet has them: the row lock makes this race-free."""
    result = await conn.execute(
        sql(
            """
            UPDATE ledger_account SET balance = balance - :points
            WHERE member_id = :member_id AND kind = 'MEMBER_WALLET' AND balance >= :points
            RETURNING id, balance
            """
        ),
        {"member_id": member_id, "points": points},
    )
    return result.first()


async def lock_wallets(conn: AsyncConnection, *, member_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Lock wallets in member order (so two transfers in opposite directions cannot deadlock)."""
    result = await conn.execute(
        sql(
            """
            SELECT member_id, id, balance FROM ledger_account
            WHERE member_id = ANY(:member_ids) AND kind = 'MEMBER_WALLET'
            ORDER BY member_id FOR UPDATE
            """
        ),
        {"member_ids": list(member_ids)},
    )
    return {row.member_id: row for row in result}


async def change_held(conn: AsyncConnection, *, member_id: int, points: int) -> int:
    result = await conn.execute(
        sql(
            """
            UPDATE ledger_account SET balance = balance + :points
            WHERE member_id = :member_id AND kind = 'MEMBER_HELD'
            RETURNING id
            """
        ),
        {"member_id": member_id, "points": points},
    )
    return int(result.scalar_one())


async def change_sharded_balance(conn: AsyncConnection, *, account_id: int, points: int) -> None:
    """Change a hot account's balance on one randomly chosen shard row."""
    shard = random.randrange(BALANCE_SHARDS)  # noqa: S311 (load spreading, not security)
    await conn.execute(
        sql(
            "UPDATE ledger_account_shard SET balance = balance + :points"
            " WHERE account_id = :account_id AND shard = :shard"
        ),
        {"account_id": account_id, "points": points, "shard": shard},
    )


async def earn_at_once(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    request_hash: bytes,
    partner_id: int,
    member_id: int,
    points: int,
    reference: str | None,
    metadata: str,
    now: datetime,
    effective_at: datetime,
    expires_at: datetime | None,
) -> tuple[int, int] | None:
    """A plain earn as one statement: entry, wallet, shard, both postings and the lot.

    Writes only when nothing needs deciding: the key is new, the partner has no credit
    limit, the member exists and the expiry is in the future. Returns the wallet
    balance, or None having written nothing (the caller then takes the step-by-step
    path, which decides the case). The locks are taken in the step-by-step order:
    the key, then the wallet, then a shard.
    """
    result = await conn.execute(
        sql(
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
            ), new_entry AS (
                INSERT INTO ledger_entry (kind, partner_id, member_id, points, client_id,
                    idempotency_key, request_hash, reference, created_at, effective_at,
                    metadata)
                SELECT 'EARN', :partner_id, :member_id, :points, :client_id, :key, :digest,
                    :reference, :now, :effective_at, CAST(:metadata AS jsonb)
                FROM issued
                WHERE issued.expires_at > greatest(CAST(:now AS timestamptz),
                    CAST(:effective_at AS timestamptz))
                  AND EXISTS (SELECT 1 FROM ledger_account
                              WHERE member_id = :member_id AND kind = 'MEMBER_WALLET')
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
        ),
        {
            "client_id": client_id,
            "key": idempotency_key,
            "digest": request_hash,
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


async def begin_redeem(
    conn: AsyncConnection,
    *,
    client_id: str,
    idempotency_key: str,
    request_hash: bytes,
    partner_id: int,
    member_id: int,
    points: int,
    reference: str | None,
    metadata: str,
    now: datetime,
    effective_at: datetime,
) -> Row[Any]:
    """A redemption's first round trip: the entry (if its key is new) and the wallet
    debited if it holds the points, in the step-by-step lock order (key, then wallet).
    Returns (account_id, entry_id, wallet_id, balance); entry_id is None when nothing
    was written (a known key, or no such partner), wallet_id None when the wallet was
    not debited (the caller then fails the request, rolling the entry back)."""
    result = await conn.execute(
        sql(
            """
            WITH redeemed AS (
                SELECT id FROM ledger_account
                WHERE partner_id = :partner_id AND kind = 'PARTNER_REDEEMED'
            ), new_entry AS (
                INSERT INTO ledger_entry (kind, partner_id, member_id, points, client_id,
                    idempotency_key, request_hash, reference, created_at, effective_at,
                    metadata)
                SELECT 'REDEEM', :partner_id, :member_id, :points, :client_id, :key, :digest,
                    :reference, :now, :effective_at, CAST(:metadata AS jsonb)
                FROM redeemed
                ON CONFLICT (client_id, idempotency_key) DO NOTHING
                RETURNING id
            ), wallet AS (
                UPDATE ledger_account SET balance = balance - :points
                WHERE member_id = :member_id AND kind = 'MEMBER_WALLET'
                  AND balance >= :points AND EXISTS (SELECT 1 FROM new_entry)
                RETURNING id, balance
            )
            SELECT (SELECT id FROM redeemed) AS account_id,
                   (SELECT id FROM new_entry) AS entry_id,
                   (SELECT id FROM wallet) AS wallet_id,
                   (SELECT balance FROM wallet) AS balance
            """
        ),
        {
            "client_id": client_id,
            "key": idempotency_key,
            "digest": request_hash,
            "partner_id": partner_id,
            "member_id": member_id,
            "points": points,
            "reference": reference,
            "metadata": metadata,
            "now": now,
            "effective_at": effective_at,
        },
    )
    return result.one()


async def lock_partner_issuance(conn: AsyncConnection, *, partner_id: int) -> None:
    """Serialize issuance of one partner; only taken for partners with a credit limit."""
    await conn.execute(
        sql("SELECT pg_advisory_xact_lock(727100, :partner_id)"),
        {"partner_id": partner_id % 2_147_483_647},
    )


async def outstanding_points(conn: AsyncConnection, *, issuer_partner_id: int) -> int:
    """Points issued by a partner still in wallets or reserved by active holds."""
    result = await conn.execute(
        sql(
            """
            SELECT
              (SELECT coalesce(sum(remaining), 0) FROM ledger_lot
               WHERE issuer_partner_id = :issuer AND remaining <> 0)
            + (SELECT coalesce(sum(c.points), 0) FROM ledger_hold h
               JOIN ledger_lot_consumption c ON c.hold_id = h.id AND c.kind = 'HOLD'
               WHERE h.status = 'ACTIVE' AND c.issuer_partner_id = :issuer)
            """
        ),
        {"issuer": issuer_partner_id},
    )
    return int(result.scalar_one())


# --- entries and postings -------------------------------------------------------------


async def insert_entry(conn: AsyncConnection, **values: Any) -> int | None:
    """Insert an entry; None when (client, idempotency key) already exists."""
    values.setdefault("metadata", "{}")
    result = await conn.execute(
        sql(
            """
            INSERT INTO ledger_entry (kind, partner_id, member_id, counterparty_member_id,
                points, client_id, idempotency_key, request_hash, reference, target_entry_id,
                hold_id, created_at, effective_at, metadata)
            VALUES (:kind, :partner_id, :member_id, :counterparty_member_id, :points,
                :client_id, :idempotency_key, :request_hash, :reference, :target_entry_id,
                :hold_id, :created_at, :effective_at, CAST(:metadata AS jsonb))
            ON CONFLICT (client_id, idempotency_key) DO NOTHING
            RETURNING id
            """
        ),
        values,
    )
    return result.scalar()


_ENTRY_COLUMNS = (
    "id, kind, partner_id, member_id, counterparty_member_id, points, client_id,"
    " idempotency_key, request_hash, reference, target_entry_id, hold_id, created_at,"
    " effective_at, metadata"
)


async def entry_by_key(
    conn: AsyncConnection, *, client_id: str, idempotency_key: str
) -> Row[Any] | None:
    result = await conn.execute(
        sql(
            f"SELECT {_ENTRY_COLUMNS} FROM ledger_entry"
            " WHERE client_id = :client_id AND idempotency_key = :key"
        ),
        {"client_id": client_id, "key": idempotency_key},
    )
    return result.first()


async def entry_by_id(
    conn: AsyncConnection, *, entry_id: int, for_update: bool = False
) -> Row[Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    result = await conn.execute(
        sql(f"SELECT {_ENTRY_COLUMNS} FROM ledger_entry WHERE id = :entry_id{lock}"),
        {"entry_id": entry_id},
    )
    return result.first()


async def reversed_points(conn: AsyncConnection, *, target_entry_id: int) -> int:
    result = await conn.execute(
        sql(
            "SELECT coalesce(sum(points), 0) FROM ledger_entry"
            " WHERE target_entry_id = :target AND kind = 'REVERSAL'"
        ),
        {"target": target_entry_id},
    )
    return int(result.scalar_one())


async def insert_postings(
    conn: AsyncConnection, *, entry_id: int, legs: Sequence[tuple[int, int]]
) -> None:
    """Insert the legs (account_id, signed amount) of one entry; zero legs are dropped."""
    legs = [(account_id, amount) for account_id, amount in legs if amount != 0]
    await conn.execute(
        sql(
            """
            INSERT INTO ledger_posting (entry_id, account_id, amount)
            SELECT :entry_id, leg.account_id, leg.amount
            FROM unnest(CAST(:accounts AS bigint[]), CAST(:amounts AS bigint[]))
                 AS leg(account_id, amount)
            """
        ),
        {
            "entry_id": entry_id,
            "accounts": [account_id for account_id, _ in legs],
            "amounts": [amount for _, amount in legs],
        },
    )


# --- lots -----------------------------------------------------------------------------


async def insert_lot(
    conn: AsyncConnection,
    *,
    member_id: int,
    issuer_partner_id: int | None,
    origin: LotOrigin,
    entry_id: int,
    amount: int,
    earned_at: datetime,
    expires_at: datetime,
    source_lot_id: int | None = None,
) -> int:
    result = await conn.execute(
        sql(
            """
            INSERT INTO ledger_lot (member_id, issuer_partner_id, origin, entry_id,
                source_lot_id, amount, remaining, earned_at, expires_at)
            VALUES (:member_id, :issuer, :origin, :entry_id, :source_lot_id, :amount, :amount,
                :earned_at, :expires_at)
            RETURNING id
            """
        ),
        {
            "member_id": member_id,
            "issuer": issuer_partner_id,
            "origin": str(origin),
            "entry_id": entry_id,
            "source_lot_id": source_lot_id,
            "amount": amount,
            "earned_at": earned_at,
            "expires_at": expires_at,
        },
    )
    return int(result.scalar_one())


def _allocation(row: Row[Any], points: int) -> LotAllocation:
    return LotAllocation(
        lot_id=row.id,
        issuer_partner_id=row.issuer_partner_id,
        points=points,
        earned_at=row.earned_at,
        expires_at=row.expires_at,
    )


async def spendable_lots(
    conn: AsyncConnection, *, member_id: int, points: int, now: datetime
) -> tuple[list[Row[Any]], list[Row[Any]]]:
    """The live lots needed to cover ``points`` (oldest expiry first), and every lot that
    has expired but was not swept yet. Caller holds the member's wallet lock."""
    result = await conn.execute(
        sql(
            """
            WITH live AS (
                SELECT id, issuer_partner_id, remaining, earned_at, expires_at,
                       sum(remaining) OVER (ORDER BY expires_at, id) AS running
                FROM ledger_lot
                WHERE member_id = :member_id AND remaining > 0 AND expires_at > :now
            )
            SELECT id, issuer_partner_id, remaining, earned_at, expires_at, false AS expired
            FROM live WHERE running - remaining < :points
            UNION ALL
            SELECT id, issuer_partner_id, remaining, earned_at, expires_at, true
            FROM ledger_lot
            WHERE member_id = :member_id AND remaining > 0 AND expires_at <= :now
            ORDER BY expires_at, id
            """
        ),
        {"member_id": member_id, "points": points, "now": now},
    )
    rows = result.all()
    return [r for r in rows if not r.expired], [r for r in rows if r.expired]


async def expired_lots(conn: AsyncConnection, *, member_id: int, as_of: datetime) -> list[Row[Any]]:
    result = await conn.execute(
        sql(
            """
            SELECT id, issuer_partner_id, remaining, earned_at, expires_at FROM ledger_lot
            WHERE member_id = :member_id AND remaining > 0 AND expires_at <= :as_of
            ORDER BY expires_at, id
            """
        ),
        {"member_id": member_id, "as_of": as_of},
    )
    return list(result.all())


async def members_with_expired_lots(
    conn: AsyncConnection, *, as_of: datetime, limit: int
) -> list[int]:
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


async def lot_of_entry(conn: AsyncConnection, *, entry_id: int) -> Row[Any] | None:
    result = await conn.execute(
        sql(
            "SELECT id, issuer_partner_id, remaining, earned_at, expires_at"
            " FROM ledger_lot WHERE entry_id = :entry_id AND origin <> 'TRANSFER'"
        ),
        {"entry_id": entry_id},
    )
    return result.first()


async def redeemed_lots(conn: AsyncConnection, *, redemption_entry_id: int) -> list[Row[Any]]:
    """Per lot, the points a redemption still holds (net of earlier reversals), in the
    order they should be given back: the last consumed first."""
    result = await conn.execute(
        sql(
            """
            SELECT l.id, l.issuer_partner_id, l.earned_at, l.expires_at,
                   sum(c.points) AS remaining
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
    return list(result.all())


async def hold_reservations(conn: AsyncConnection, *, hold_id: int) -> list[Row[Any]]:
    """Per lot, the points an active hold reserves, oldest expiry first."""
    result = await conn.execute(
        sql(
            """
            SELECT l.id, l.issuer_partner_id, l.earned_at, l.expires_at,
                   sum(c.points) AS remaining
            FROM ledger_lot_consumption c JOIN ledger_lot l ON l.id = c.lot_id
            WHERE c.hold_id = :hold_id AND c.kind = 'HOLD'
            GROUP BY l.id HAVING sum(c.points) > 0
            ORDER BY l.expires_at, l.id
            """
        ),
        {"hold_id": hold_id},
    )
    return list(result.all())


def allocate(rows: Sequence[Row[Any]], points: int) -> list[LotAllocation]:
    """Take ``points`` from the rows' ``remaining`` in the given order."""
    allocations: list[LotAllocation] = []
    left = points
    for row in rows:
        if left == 0:
            break
        take = min(int(row.remaining), left)
        if take > 0:
            allocations.append(_allocation(row, take))
            left -= take
    return allocations


async def record_consumptions(
    conn: AsyncConnection,
    *,
    entry_id: int,
    kind: ConsumptionKind,
    allocations: Sequence[LotAllocation],
    redeemer_partner_id: int | None = None,
    hold_id: int | None = None,
) -> None:
    """Append consumption rows and move the lots' remaining by the same amounts (one
    round trip): positive takes from a lot, negative gives back."""
    if not allocations:
        return
    params = {
        "entry_id": entry_id,
        "kind": str(kind),
        "redeemer": redeemer_partner_id,
        "hold_id": hold_id,
        "lots": [a.lot_id for a in allocations],
        "issuers": [a.issuer_partner_id for a in allocations],
        "points": [a.points for a in allocations],
    }
    await conn.execute(
        sql(
            """
            WITH taken AS (
                INSERT INTO ledger_lot_consumption (entry_id, lot_id, kind, points,
                    issuer_partner_id, redeemer_partner_id, hold_id)
                SELECT :entry_id, c.lot_id, :kind, c.points, c.issuer, :redeemer, :hold_id
                FROM unnest(CAST(:lots AS bigint[]), CAST(:issuers AS bigint[]),
                            CAST(:points AS bigint[])) AS c(lot_id, issuer, points)
            )
            UPDATE ledger_lot l SET remaining = l.remaining - c.points
            FROM (SELECT lot_id, sum(points) AS points
                  FROM unnest(CAST(:lots AS bigint[]), CAST(:points AS bigint[]))
                       AS u(lot_id, points) GROUP BY lot_id) AS c
            WHERE l.id = c.lot_id
            """
        ),
        params,
    )


# --- holds ----------------------------------------------------------------------------

_HOLD_COLUMNS = (
    "id, member_id, partner_id, points, captured_points, status, created_at, expires_at,"
    " hold_entry_id"
)


async def insert_hold(
    conn: AsyncConnection,
    *,
    member_id: int,
    partner_id: int,
    points: int,
    created_at: datetime,
    expires_at: datetime,
    hold_entry_id: int,
) -> int:
    result = await conn.execute(
        sql(
            """
            INSERT INTO ledger_hold (member_id, partner_id, points, status, created_at,
                expires_at, hold_entry_id)
            VALUES (:member_id, :partner_id, :points, 'ACTIVE', :created_at, :expires_at,
                :hold_entry_id)
            RETURNING id
            """
        ),
        {
            "member_id": member_id,
            "partner_id": partner_id,
            "points": points,
            "created_at": created_at,
            "expires_at": expires_at,
            "hold_entry_id": hold_entry_id,
        },
    )
    return int(result.scalar_one())


async def hold_by_id(
    conn: AsyncConnection, *, hold_id: int, for_update: bool = False
) -> Row[Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    result = await conn.execute(
        sql(f"SELECT {_HOLD_COLUMNS} FROM ledger_hold WHERE id = :hold_id{lock}"),
        {"hold_id": hold_id},
    )
    return result.first()


async def hold_by_entry(conn: AsyncConnection, *, hold_entry_id: int) -> Row[Any] | None:
    result = await conn.execute(
        sql(f"SELECT {_HOLD_COLUMNS} FROM ledger_hold WHERE hold_entry_id = :entry_id"),
        {"entry_id": hold_entry_id},
    )
    return result.first()


async def close_hold(
    conn: AsyncConnection,
    *,
    hold_id: int,
    status: HoldStatus,
    captured_points: int,
    closing_entry_id: int,
) -> None:
    await conn.execute(
        sql(
            """
            UPDATE ledger_hold SET status = :status, captured_points = :captured,
                closing_entry_id = :closing_entry_id
            WHERE id = :hold_id AND status = 'ACTIVE'
            """
        ),
        {
            "hold_id": hold_id,
            "status": str(status),
            "captured": captured_points,
            "closing_entry_id": closing_entry_id,
        },
    )


async def expired_active_holds(conn: AsyncConnection, *, as_of: datetime, limit: int) -> list[int]:
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


# --- reads ----------------------------------------------------------------------------


async def member_balances(conn: AsyncConnection, *, member_id: int) -> dict[str, int]:
    result = await conn.execute(
        sql("SELECT kind, balance FROM ledger_account WHERE member_id = :member_id"),
        {"member_id": member_id},
    )
    return {row.kind: int(row.balance) for row in result}


async def wallet_rows(conn: AsyncConnection, *, member_id: int) -> list[Row[Any]]:
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
    conn: AsyncConnection, *, member_id: int, now: datetime, until: datetime
) -> list[Row[Any]]:
    result = await conn.execute(
        sql(
            """
            SELECT issuer_partner_id, expires_at, sum(remaining) AS points FROM ledger_lot
            WHERE member_id = :member_id AND remaining > 0
              AND expires_at > :now AND expires_at <= :until
            GROUP BY issuer_partner_id, expires_at
            ORDER BY expires_at, issuer_partner_id NULLS FIRST
            """
        ),
        {"member_id": member_id, "now": now, "until": until},
    )
    return list(result.all())


async def lots_of_member(conn: AsyncConnection, *, member_id: int) -> list[Row[Any]]:
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


async def postings_of_entry(conn: AsyncConnection, *, entry_id: int) -> list[Row[Any]]:
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


async def consumptions_of_entry(conn: AsyncConnection, *, entry_id: int) -> list[Row[Any]]:
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


async def account_balance(conn: AsyncConnection, *, account_id: int) -> int:
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
    conn: AsyncConnection,
    *,
    limit: int,
    before_id: int | None = None,
    partner_id: int | None = None,
    member_id: int | None = None,
    kinds: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reference: str | None = None,
) -> list[Row[Any]]:
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


async def entries_by_ids(conn: AsyncConnection, *, entry_ids: Sequence[int]) -> list[Row[Any]]:
    result = await conn.execute(
        sql(f"SELECT {_ENTRY_COLUMNS} FROM ledger_entry WHERE id = ANY(:ids)"),
        {"ids": list(entry_ids)},
    )
    return list(result.all())


async def watch_wallet(
    conn: AsyncConnection, *, member_id: int, watcher: str, expires_at: datetime
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


async def unwatch_wallet(conn: AsyncConnection, *, member_id: int, watcher: str) -> None:
    await conn.execute(
        sql("DELETE FROM wallet_watch WHERE member_id = :member_id AND watcher = :watcher"),
        {"member_id": member_id, "watcher": watcher},
    )


async def accounts_page(
    conn: AsyncConnection, *, after_id: int, limit: int, kind: str | None
) -> list[Row[Any]]:
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
