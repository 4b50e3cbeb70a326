"""All SQL of the loyalty engine. Functions take the unit of work's connection and plain
values; every read and write runs under the caller's row-level-security scope."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from exchange.kit.db import Connection, Row, sql

BUDGET_SHARDS = 16

# --- purchases ------------------------------------------------------------------------

_PURCHASE = (
    "p.id, p.partner_id, p.member_id, p.client_id, p.idempotency_key, p.request_hash,"
    " p.amount, p.currency, p.occurred_at, p.channel, p.store_ref, p.reference, p.points,"
    " p.created_at,"
    " (SELECT coalesce(sum(r.amount), 0) FROM purchase_refund r WHERE r.purchase_id = p.id)"
    " AS refunded_amount"
)


async def claim_purchases(conn: Connection, *, rows: Sequence[dict[str, Any]]) -> list[int | None]:
    """Insert purchases (dicts of the purchase's columns) under their idempotency keys, in
    one statement; each one's id, or None where its key was taken (before, or by an
    earlier row of the same call)."""
    if not rows:
        return []
    columns = {name: [row[name] for row in rows] for name in _CLAIMED}
    result = await conn.execute(
        sql(_CLAIM_PURCHASES),
        {**columns, "items": [json.dumps(row["items"]) for row in rows]},
    )
    taken = {(str(r.client_id), str(r.idempotency_key)): int(r.id) for r in result}
    ids: list[int | None] = []
    for row in rows:
        ids.append(taken.pop((row["client_id"], row["idempotency_key"]), None))
    return ids


_CLAIMED = (
    "partner_id", "member_id", "client_id", "idempotency_key", "request_hash", "amount",
    "currency", "occurred_at", "channel", "store_ref", "reference", "points", "created_at",
)  # fmt: skip

_CLAIM_PURCHASES = """
INSERT INTO purchase (partner_id, member_id, client_id, idempotency_key, request_hash,
    amount, currency, occurred_at, channel, store_ref, reference, items, points, created_at)
SELECT c.partner_id, c.member_id, c.client_id, c.idempotency_key, c.request_hash, c.amount,
    c.currency, c.occurred_at, c.channel, c.store_ref, c.reference, CAST(c.items AS jsonb),
    c.points, c.created_at
FROM unnest(CAST(:partner_id AS bigint[]), CAST(:member_id AS bigint[]),
            CAST(:client_id AS text[]), CAST(:idempotency_key AS text[]),
            CAST(:request_hash AS bytea[]), CAST(:amount AS numeric[]),
            CAST(:currency AS text[]), CAST(:occurred_at AS timestamptz[]),
            CAST(:channel AS text[]), CAST(:store_ref AS text[]), CAST(:reference AS text[]),
            CAST(:items AS text[]), CAST(:points AS bigint[]),
            CAST(:created_at AS timestamptz[]))
     WITH ORDINALITY AS c(partner_id, member_id, client_id, idempotency_key, request_hash,
                          amount, currency, occurred_at, channel, store_ref, reference, items,
                          points, created_at, position)
ORDER BY c.position
ON CONFLICT (client_id, idempotency_key) DO NOTHING
RETURNING id, client_id, idempotency_key
"""


async def purchase_by_key(conn: Connection, *, client_id: str, idempotency_key: str) -> Row | None:
    result = await conn.execute(
        sql(
            f"SELECT {_PURCHASE} FROM purchase p"
            " WHERE p.client_id = :client_id AND p.idempotency_key = :key"
        ),
        {"client_id": client_id, "key": idempotency_key},
    )
    return result.first()


async def purchases_by_ids(conn: Connection, *, purchase_ids: Sequence[int]) -> list[Row]:
    result = await conn.execute(
        sql(f"SELECT {_PURCHASE} FROM purchase p WHERE p.id = ANY(CAST(:ids AS bigint[]))"),
        {"ids": list(purchase_ids)},
    )
    return list(result.all())


async def lock_purchase(conn: Connection, *, purchase_id: int) -> Row | None:
    """A purchase, locked: its refunds are serialized on it."""
    result = await conn.execute(
        sql(f"SELECT {_PURCHASE} FROM purchase p WHERE p.id = :id FOR UPDATE"),
        {"id": purchase_id},
    )
    return result.first()


async def purchases_page(
    conn: Connection,
    *,
    partner_id: int | None,
    member_id: int | None,
    since: datetime | None,
    until: datetime | None,
    reference: str | None,
    before_id: int | None,
    limit: int,
) -> list[Row]:
    """Newest first, keyset-paginated on id."""
    result = await conn.execute(
        sql(
            f"""
            SELECT {_PURCHASE} FROM purchase p
            WHERE (CAST(:before_id AS bigint) IS NULL OR p.id < :before_id)
              AND (CAST(:partner_id AS bigint) IS NULL OR p.partner_id = :partner_id)
              AND (CAST(:member_id AS bigint) IS NULL OR p.member_id = :member_id)
              AND (CAST(:since AS timestamptz) IS NULL OR p.occurred_at >= :since)
              AND (CAST(:until AS timestamptz) IS NULL OR p.occurred_at < :until)
              AND (CAST(:reference AS text) IS NULL OR p.reference = :reference)
            ORDER BY p.id DESC LIMIT :limit
            """
        ),
        {
            "before_id": before_id,
            "partner_id": partner_id,
            "member_id": member_id,
            "since": since,
            "until": until,
            "reference": reference,
            "limit": limit,
        },
    )
    return list(result.all())


async def awards_of(conn: Connection, *, purchase_ids: Sequence[int]) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT purchase_id, position, rule, campaign_id, funder_partner_id, points, entry_id
            FROM purchase_award WHERE purchase_id = ANY(CAST(:ids AS bigint[]))
            ORDER BY purchase_id, position
            """
        ),
        {"ids": list(purchase_ids)},
    )
    return list(result.all())


@dataclass(frozen=True)
class Outcome:
    """What one purchase's awards left: the awards (rule, campaign id, funder, points,
    entry id, in order), its points, and its mark on the member's aggregates."""

    purchase_id: int
    awards: Sequence[tuple[Any, ...]]
    points: int
    member_id: int
    amount: Decimal
    occurred_at: datetime
    categories: Sequence[tuple[str, Decimal]]
    month: date


async def record_outcomes(
    conn: Connection, *, partner_id: int, outcomes: Sequence[Outcome]
) -> None:
    """What purchases of one partner left, in one statement: the awards, each purchase's
    points, and the members' aggregates (purchases and spend here and per category, the
    qualifying points of the month). No member appears twice in ``outcomes``."""
    awards = [(o.purchase_id, a) for o in outcomes for a in o.awards]
    spends = [(o, c, s) for o in outcomes for c, s in o.categories]
    await conn.execute(
        sql(_RECORD_OUTCOMES),
        {
            "award_purchases": [p for p, _ in awards],
            "positions": _positions(outcomes),
            "rules": [str(a[0]) for _, a in awards],
            "campaigns": [a[1] for _, a in awards],
            "funders": [a[2] for _, a in awards],
            "points": [a[3] for _, a in awards],
            "entries": [a[4] for _, a in awards],
            "purchases": [o.purchase_id for o in outcomes],
            "totals": [o.points for o in outcomes],
            "members": [o.member_id for o in outcomes],
            "amounts": [o.amount for o in outcomes],
            "ats": [o.occurred_at for o in outcomes],
            "months": [o.month for o in outcomes],
            "spend_members": [o.member_id for o, _, _ in spends],
            "spend_ats": [o.occurred_at for o, _, _ in spends],
            "categories": [c for _, c, _ in spends],
            "spends": [s for _, _, s in spends],
            "partner_id": partner_id,
        },
    )


def _positions(outcomes: Sequence[Outcome]) -> list[int]:
    return [position for o in outcomes for position in range(1, len(o.awards) + 1)]


_RECORD_OUTCOMES = """
WITH awarded AS (
    INSERT INTO purchase_award (purchase_id, position, rule, campaign_id,
        funder_partner_id, points, entry_id)
    SELECT * FROM unnest(CAST(:award_purchases AS bigint[]), CAST(:positions AS integer[]),
                         CAST(:rules AS text[]), CAST(:campaigns AS bigint[]),
                         CAST(:funders AS bigint[]), CAST(:points AS bigint[]),
                         CAST(:entries AS bigint[]))
), purchased AS (
    SELECT * FROM unnest(CAST(:purchases AS bigint[]), CAST(:totals AS bigint[]),
                         CAST(:members AS bigint[]), CAST(:amounts AS numeric[]),
                         CAST(:ats AS timestamptz[]), CAST(:months AS date[]))
        AS t(purchase_id, total, member_id, amount, at, month)
), total AS (
    UPDATE purchase p SET points = t.total FROM purchased t WHERE p.id = t.purchase_id
), partner_stats AS (
    INSERT INTO member_partner_stats AS s (member_id, partner_id, purchases, spend,
        first_purchase_at, last_purchase_at)
    SELECT t.member_id, :partner_id, 1, t.amount, t.at, t.at FROM purchased t
    ORDER BY t.member_id
    ON CONFLICT (member_id, partner_id) DO UPDATE SET
        purchases = s.purchases + 1, spend = s.spend + EXCLUDED.spend,
        first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
        last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at)
), category_stats AS (
    INSERT INTO member_category_stats AS s (member_id, partner_id, category,
        purchases, spend, last_purchase_at)
    SELECT c.member_id, :partner_id, c.category, 1, c.spend, c.at
    FROM unnest(CAST(:spend_members AS bigint[]), CAST(:categories AS text[]),
                CAST(:spends AS numeric[]), CAST(:spend_ats AS timestamptz[]))
         AS c(member_id, category, spend, at)
    ORDER BY c.member_id, c.category
    ON CONFLICT (member_id, partner_id, category) DO UPDATE SET
        purchases = s.purchases + 1, spend = s.spend + EXCLUDED.spend,
        last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at)
)
INSERT INTO member_qualifying AS q (member_id, month, points)
SELECT t.member_id, t.month, t.total FROM purchased t ORDER BY t.member_id
ON CONFLICT (member_id, month) DO UPDATE SET points = q.points + EXCLUDED.points
"""


async def take_back_spend(
    conn: Connection, *, member_id: int, partner_id: int, amount: Decimal
) -> None:
    """A refund lowers the spend of the member's aggregates at the partner (its profile
    there); the purchase still counts as one."""
    await conn.execute(
        sql(
            "UPDATE member_partner_stats SET spend = greatest(spend - :amount, 0)"
            " WHERE member_id = :member_id AND partner_id = :partner_id"
        ),
        {"member_id": member_id, "partner_id": partner_id, "amount": amount},
    )


async def add_qualifying(conn: Connection, *, member_id: int, month: date, points: int) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO member_qualifying AS q (member_id, month, points)
            VALUES (:member_id, :month, :points)
            ON CONFLICT (member_id, month) DO UPDATE SET points = q.points + EXCLUDED.points
            """
        ),
        {"member_id": member_id, "month": month, "points": points},
    )


async def member_facts(
    conn: Connection,
    *,
    partner_id: int,
    members: Sequence[tuple[int, datetime, datetime]],
    window: date,
) -> list[Row]:
    """What purchases need to know of their members (member id, the purchase's time
    ``at``, ``since``: 30 days before it), in one statement, a row per member in order:
    its tier and qualifying points since ``window`` (with the tier ladder), consent,
    purchases and spend here, coalition-wide purchases, and where and what it bought
    since ``since`` (coalition-wide; the caller keeps only this partner's without
    consent), and the built-in segments it is in at ``at`` (judged on this partner's
    purchases, or the coalition's with consent: the one function ``insights_segments``),
    and the targeted campaigns whose offer it activated."""
    result = await conn.execute(
        sql(_MEMBER_FACTS),
        {
            "members": [m for m, _, _ in members],
            "ats": [at for _, at, _ in members],
            "sinces": [since for _, _, since in members],
            "partner_id": partner_id,
            "window": window,
        },
    )
    return list(result.all())


_MEMBER_FACTS = """
WITH ladder AS (
    SELECT coalesce(json_agg(json_build_object('name', name, 'points', qualifying_points,
        'multiplier', earn_multiplier) ORDER BY qualifying_points), '[]') AS ladder
    FROM tier
)
SELECT
  (SELECT tier FROM member_tier WHERE member_id = w.member_id) AS tier,
  (SELECT coalesce(sum(points), 0) FROM member_qualifying
   WHERE member_id = w.member_id AND month >= :window) AS qualifying,
  (SELECT ladder FROM ladder) AS ladder,
  coalesce(pr.consent_cross_partner, false) AS consent,
  s.purchases AS purchases_here, s.spend AS spend_here, s.last_purchase_at AS last_here,
  (SELECT coalesce(sum(purchases), 0) FROM member_partner_stats
   WHERE member_id = w.member_id) AS purchases_coalition,
  (SELECT coalesce(array_agg(DISTINCT s2.partner_id::text || ':' || p.name), '{}')
   FROM member_partner_stats s2 JOIN partner p ON p.id = s2.partner_id
   WHERE s2.member_id = w.member_id AND s2.last_purchase_at >= w.since) AS partners_recent,
  (SELECT coalesce(array_agg(DISTINCT partner_id::text || ':' || category), '{}')
   FROM member_category_stats
   WHERE member_id = w.member_id AND last_purchase_at >= w.since) AS categories_recent,
  CASE WHEN coalesce(pr.consent_cross_partner, false)
    THEN (SELECT insights_segments(min(first_purchase_at), max(last_purchase_at),
                                   sum(purchases)::integer, pr.rfm_monetary, w.at)
          FROM member_partner_stats WHERE member_id = w.member_id)
    ELSE insights_segments(s.first_purchase_at, s.last_purchase_at, s.purchases,
                           s.rfm_monetary, w.at)
  END AS segments,
  (SELECT coalesce(array_agg(campaign_id), '{}') FROM offer
   WHERE member_id = w.member_id AND status = 'ACTIVATED') AS offers
FROM unnest(CAST(:members AS bigint[]), CAST(:ats AS timestamptz[]),
            CAST(:sinces AS timestamptz[])) WITH ORDINALITY AS w(member_id, at, since, position)
LEFT JOIN member_partner_stats s ON s.member_id = w.member_id AND s.partner_id = :partner_id
LEFT JOIN member_profile pr ON pr.member_id = w.member_id
ORDER BY w.position
"""


async def qualifying_points(conn: Connection, *, member_id: int, since: date) -> int:
    result = await conn.execute(
        sql(
            "SELECT coalesce(sum(points), 0) FROM member_qualifying"
            " WHERE member_id = :member_id AND month >= :since"
        ),
        {"member_id": member_id, "since": since},
    )
    return int(result.scalar_one())


# --- refunds --------------------------------------------------------------------------


async def claim_refund(conn: Connection, **values: Any) -> int | None:
    result = await conn.execute(
        sql(
            """
            INSERT INTO purchase_refund (purchase_id, amount, points, client_id,
                idempotency_key, request_hash, created_at)
            VALUES (:purchase_id, :amount, :points, :client_id, :idempotency_key,
                :request_hash, :created_at)
            ON CONFLICT (client_id, idempotency_key) DO NOTHING
            RETURNING id
            """
        ),
        values,
    )
    refund_id = result.scalar()
    return int(refund_id) if refund_id is not None else None


async def refund_by_key(conn: Connection, *, client_id: str, idempotency_key: str) -> Row | None:
    result = await conn.execute(
        sql(
            "SELECT id, purchase_id, amount, points, request_hash FROM purchase_refund"
            " WHERE client_id = :client_id AND idempotency_key = :key"
        ),
        {"client_id": client_id, "key": idempotency_key},
    )
    return result.first()


async def reversed_of(conn: Connection, *, entry_ids: Sequence[int]) -> dict[int, int]:
    """Points reversed so far of each entry."""
    result = await conn.execute(
        sql(
            """
            SELECT target_entry_id, sum(points) AS points FROM ledger_entry
            WHERE kind = 'REVERSAL' AND target_entry_id = ANY(CAST(:ids AS bigint[]))
            GROUP BY target_entry_id
            """
        ),
        {"ids": list(entry_ids)},
    )
    return {int(row.target_entry_id): int(row.points) for row in result}


# --- campaigns ------------------------------------------------------------------------

_CAMPAIGN_TERMS = (
    "c.id, c.owner_partner_id, c.name, c.status, c.starts_at, c.ends_at, c.condition,"
    " c.effect_kind, c.effect_value, c.effect_category, c.max_points_per_purchase,"
    " c.budget_points, c.per_member_limit, c.created_at,"
    " (SELECT coalesce(json_agg(json_build_object('partner', f.partner_id, 'share', f.share,"
    "   'accepted', f.accepted_at IS NOT NULL, 'declined', f.declined_at IS NOT NULL)"
    "   ORDER BY f.partner_id NULLS FIRST), '[]') FROM campaign_funding f"
    "  WHERE f.campaign_id = c.id) AS funding,"
    " EXISTS (SELECT 1 FROM campaign_target t WHERE t.campaign_id = c.id) AS targeted"
)
#: A campaign as it is shown: its terms and what it awarded (a sum over its awards; the
#: purchase path reads the terms only).
_CAMPAIGN = (
    _CAMPAIGN_TERMS + ", (SELECT coalesce(sum(a.points), 0) FROM purchase_award a"
    "  WHERE a.campaign_id = c.id) AS awarded"
)


async def insert_campaign(conn: Connection, **values: Any) -> int:
    result = await conn.execute(
        sql(
            """
            INSERT INTO campaign (owner_partner_id, name, status, starts_at, ends_at,
                condition, effect_kind, effect_value, effect_category,
                max_points_per_purchase, budget_points, per_member_limit, created_by,
                created_at, updated_at)
            VALUES (:owner_partner_id, :name, :status, :starts_at, :ends_at, :condition,
                :effect_kind, :effect_value, :effect_category, :max_points_per_purchase,
                :budget_points, :per_member_limit, :created_by, :now, :now)
            RETURNING id
            """
        ),
        values,
    )
    return int(result.scalar_one())


async def insert_funding(
    conn: Connection,
    *,
    campaign_id: int,
    funders: Sequence[tuple[int | None, Decimal, bool]],
    now: datetime,
) -> None:
    """Funding rows (partner or None for the coalition, share, accepted already)."""
    await conn.execute(
        sql(
            """
            INSERT INTO campaign_funding (campaign_id, partner_id, share, accepted_at)
            SELECT :campaign_id, f.partner_id, f.share,
                   CASE WHEN f.accepted THEN CAST(:now AS timestamptz) END
            FROM unnest(CAST(:partners AS bigint[]), CAST(:shares AS numeric[]),
                        CAST(:accepted AS boolean[])) AS f(partner_id, share, accepted)
            """
        ),
        {
            "campaign_id": campaign_id,
            "partners": [f[0] for f in funders],
            "shares": [f[1] for f in funders],
            "accepted": [f[2] for f in funders],
            "now": now,
        },
    )


async def insert_budget(conn: Connection, *, campaign_id: int, budget: int) -> None:
    """Spread a budget over BUDGET_SHARDS rows: each purchase takes from one of them, so
    concurrent purchases do not queue on one counter, and spent <= budget holds as the
    sum of the shards (each shard refuses to exceed its allotment)."""
    await conn.execute(
        sql(
            """
            INSERT INTO campaign_budget_shard (campaign_id, shard, allotted)
            SELECT :campaign_id, s, :budget / :shards + CASE WHEN s < :budget % :shards
                                                          THEN 1 ELSE 0 END
            FROM generate_series(0, :shards - 1) AS s
            """
        ),
        {"campaign_id": campaign_id, "budget": budget, "shards": BUDGET_SHARDS},
    )


async def campaigns(
    conn: Connection,
    *,
    campaign_ids: Sequence[int] | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 1000,
) -> list[Row]:
    """Campaigns the caller may see (row-level security), newest first."""
    result = await conn.execute(
        sql(
            f"""
            SELECT {_CAMPAIGN} FROM campaign c
            WHERE (CAST(:ids AS bigint[]) IS NULL OR c.id = ANY(CAST(:ids AS bigint[])))
              AND (CAST(:status AS text) IS NULL OR c.status = :status)
              AND (CAST(:before_id AS bigint) IS NULL OR c.id < :before_id)
            ORDER BY c.id DESC LIMIT :limit
            """
        ),
        {
            "ids": list(campaign_ids) if campaign_ids is not None else None,
            "status": status,
            "before_id": before_id,
            "limit": limit,
        },
    )
    return list(result.all())


async def live_campaign_stamps(conn: Connection, *, partner_id: int) -> list[Row]:
    """(id, updated_at) of the ACTIVE campaigns that can apply to the partner's purchases:
    its own and the operator's (the window is checked against each purchase's time)."""
    result = await conn.execute(
        sql(
            """
            SELECT c.id, c.updated_at FROM campaign c
            WHERE c.status = 'ACTIVE'
              AND (c.owner_partner_id = :partner_id OR c.owner_partner_id IS NULL)
            ORDER BY c.id
            """
        ),
        {"partner_id": partner_id},
    )
    return list(result.all())


async def campaign_terms(conn: Connection, *, campaign_ids: Sequence[int]) -> list[Row]:
    """Campaigns' terms and funding, with their updated_at (not what they awarded)."""
    result = await conn.execute(
        sql(
            f"SELECT {_CAMPAIGN_TERMS}, c.updated_at, 0 AS awarded FROM campaign c"
            " WHERE c.id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": list(campaign_ids)},
    )
    return list(result.all())


async def set_campaign_status(
    conn: Connection,
    *,
    campaign_id: int,
    status: str,
    allowed_from: Sequence[str],
    now: datetime,
) -> bool:
    result = await conn.execute(
        sql(
            """
            UPDATE campaign SET status = :status, updated_at = :now
            WHERE id = :id AND status = ANY(CAST(:allowed AS text[]))
            RETURNING id
            """
        ),
        {"id": campaign_id, "status": status, "allowed": list(allowed_from), "now": now},
    )
    return result.first() is not None


async def answer_funding(
    conn: Connection, *, campaign_id: int, partner_id: int, accept: bool, now: datetime
) -> bool:
    """Record a funder's acceptance or refusal (once)."""
    result = await conn.execute(
        sql(
            """
            UPDATE campaign_funding SET
                accepted_at = CASE WHEN :accept THEN CAST(:now AS timestamptz) END,
                declined_at = CASE WHEN :accept THEN NULL ELSE CAST(:now AS timestamptz) END
            WHERE campaign_id = :campaign_id AND partner_id = :partner_id
              AND accepted_at IS NULL AND declined_at IS NULL
            RETURNING id
            """
        ),
        {"campaign_id": campaign_id, "partner_id": partner_id, "accept": accept, "now": now},
    )
    return result.first() is not None


async def take_member_uses(
    conn: Connection, *, limits: dict[tuple[int, int], int]
) -> set[tuple[int, int]]:
    """Count one more purchase of a member for a campaign ((campaign id, member id) -> the
    campaign's per-member limit) where it has not reached the limit, in one statement;
    the pairs counted. The rows are the members' own (no hot row), taken in order."""
    if not limits:
        return set()
    ordered = sorted(limits)
    result = await conn.execute(
        sql(
            """
            WITH wanted AS (
                SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:members AS bigint[]),
                                     CAST(:limits AS integer[]))
                    AS w(campaign_id, member_id, use_limit)
            )
            INSERT INTO campaign_member_use AS u (campaign_id, member_id, uses)
            SELECT campaign_id, member_id, 1 FROM wanted ORDER BY campaign_id, member_id
            ON CONFLICT (campaign_id, member_id) DO UPDATE SET uses = u.uses + 1
            WHERE u.uses < (SELECT w.use_limit FROM wanted w
                            WHERE w.campaign_id = u.campaign_id AND w.member_id = u.member_id)
            RETURNING campaign_id, member_id
            """
        ),
        {
            "ids": [c for c, _ in ordered],
            "members": [m for _, m in ordered],
            "limits": [limits[pair] for pair in ordered],
        },
    )
    return {(int(row.campaign_id), int(row.member_id)) for row in result}


async def give_back_member_uses(conn: Connection, *, pairs: Sequence[tuple[int, int]]) -> None:
    """Undo :func:`take_member_uses` for these (campaign id, member id) pairs in the same
    transaction (their budgets gave nothing)."""
    if pairs:
        await conn.execute(
            sql(
                """
                UPDATE campaign_member_use u SET uses = u.uses - 1
                FROM unnest(CAST(:ids AS bigint[]), CAST(:members AS bigint[]))
                    AS g(campaign_id, member_id)
                WHERE u.campaign_id = g.campaign_id AND u.member_id = g.member_id
                """
            ),
            {"ids": [c for c, _ in pairs], "members": [m for _, m in pairs]},
        )


async def take_budgets(conn: Connection, *, wants: dict[int, int]) -> dict[int, int]:
    """Take each campaign's points (id -> points) from its budget; the points granted.
    One statement takes from a shard of each campaign that no other purchase holds; a
    campaign it could not cover falls back to :func:`take_budget`'s rules."""
    if not wants:
        return {}
    ordered = sorted(wants)
    start = random.randrange(BUDGET_SHARDS)  # noqa: S311 (load spreading, not security)
    result = await conn.execute(
        sql(_TAKE_BUDGETS),
        {"ids": ordered, "points": [wants[c] for c in ordered], "start": start,
         "shards": BUDGET_SHARDS},
    )  # fmt: skip
    granted = {int(row.campaign_id): int(row.granted) for row in result}
    for campaign_id in ordered:
        got = granted.get(campaign_id, 0)
        if got == 0:
            granted[campaign_id] = await take_budget(
                conn, campaign_id=campaign_id, points=wants[campaign_id]
            )
        while 0 < got < wants[campaign_id]:
            more = await _take_from_a_shard(
                conn, campaign_id, wants[campaign_id] - got, start, skip_locked=True
            )
            if more == 0:
                break
            got += more
            granted[campaign_id] = got
    return granted


_TAKE_BUDGETS = """
WITH wanted AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:points AS bigint[]))
        AS w(campaign_id, points)
), pick AS (
    SELECT w.campaign_id, s.shard, least(w.points, s.allotted - s.spent) AS granted
    FROM wanted w CROSS JOIN LATERAL (
        SELECT b.shard, b.allotted, b.spent FROM campaign_budget_shard b
        WHERE b.campaign_id = w.campaign_id AND b.spent < b.allotted
        ORDER BY (b.shard - :start + :shards) % :shards
        LIMIT 1 FOR UPDATE SKIP LOCKED
    ) s
)
UPDATE campaign_budget_shard b SET spent = b.spent + pick.granted
FROM pick WHERE b.campaign_id = pick.campaign_id AND b.shard = pick.shard
RETURNING pick.campaign_id, pick.granted
"""


async def take_budget(conn: Connection, *, campaign_id: int, points: int) -> int:
    """Take ``points`` from the campaign's budget shards; the points granted (fewer when
    the budget runs out). The first shard is one no other purchase holds, or, when every
    shard with budget left is held, the first to be released; an award one shard cannot
    cover takes the rest from shards no other purchase holds, never waiting while it
    holds one (so two purchases never wait on each other's shards)."""
    start = random.randrange(BUDGET_SHARDS)  # noqa: S311 (load spreading, not security)
    granted = await _take_from_a_shard(conn, campaign_id, points, start, skip_locked=True)
    if granted == 0:
        granted = await _take_from_a_shard(conn, campaign_id, points, start, skip_locked=False)
    while 0 < granted < points:
        more = await _take_from_a_shard(
            conn, campaign_id, points - granted, start, skip_locked=True
        )
        if more == 0:
            break
        granted += more
    return granted


async def _take_from_a_shard(
    conn: Connection, campaign_id: int, points: int, start: int, *, skip_locked: bool
) -> int:
    result = await conn.execute(
        sql(_TAKE_BUDGET.format(skip=" SKIP LOCKED" if skip_locked else "")),
        {"campaign_id": campaign_id, "points": points, "start": start, "shards": BUDGET_SHARDS},
    )
    granted = result.scalar()
    return int(granted) if granted is not None else 0


async def budgets_left(conn: Connection, *, campaign_ids: Sequence[int]) -> dict[int, int]:
    """What is left of each budget (campaigns without one are absent)."""
    result = await conn.execute(
        sql(
            "SELECT campaign_id, sum(allotted - spent) AS left FROM campaign_budget_shard"
            " WHERE campaign_id = ANY(CAST(:ids AS bigint[])) GROUP BY campaign_id"
        ),
        {"ids": list(campaign_ids)},
    )
    return {int(row.campaign_id): int(row.left) for row in result}


async def member_uses(
    conn: Connection, *, campaign_ids: Sequence[int], member_id: int
) -> dict[int, int]:
    """How many of the member's purchases each campaign rewarded."""
    result = await conn.execute(
        sql(
            "SELECT campaign_id, uses FROM campaign_member_use"
            " WHERE campaign_id = ANY(CAST(:ids AS bigint[])) AND member_id = :member_id"
        ),
        {"ids": list(campaign_ids), "member_id": member_id},
    )
    return {int(row.campaign_id): int(row.uses) for row in result}


_TAKE_BUDGET = """
WITH pick AS (
    SELECT shard, least(:points, allotted - spent) AS granted
    FROM campaign_budget_shard
    WHERE campaign_id = :campaign_id AND spent < allotted
    ORDER BY (shard - :start + :shards) % :shards
    LIMIT 1 FOR UPDATE{skip}
)
UPDATE campaign_budget_shard b SET spent = b.spent + pick.granted
FROM pick WHERE b.campaign_id = :campaign_id AND b.shard = pick.shard
RETURNING pick.granted
"""


async def purchases_between(
    conn: Connection, *, partner_id: int | None, start: datetime, end: datetime, limit: int
) -> list[Row]:
    """Recorded purchases in [start, end), oldest first (a campaign simulation replays
    them); ``partner_id`` None: every partner's."""
    result = await conn.execute(
        sql(
            """
            SELECT id, partner_id, member_id, amount, currency, occurred_at, channel,
                   store_ref, items
            FROM purchase
            WHERE occurred_at >= :start AND occurred_at < :end
              AND (CAST(:partner_id AS bigint) IS NULL OR partner_id = :partner_id)
            ORDER BY occurred_at, id LIMIT :limit
            """
        ),
        {"partner_id": partner_id, "start": start, "end": end, "limit": limit},
    )
    return list(result.all())


# --- tiers ----------------------------------------------------------------------------


async def tiers(conn: Connection) -> list[Row]:
    result = await conn.execute(
        sql("SELECT name, qualifying_points, earn_multiplier FROM tier ORDER BY qualifying_points")
    )
    return list(result.all())


async def upsert_tier(
    conn: Connection,
    *,
    name: str,
    qualifying_points: int,
    earn_multiplier: Decimal,
    now: datetime,
) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO tier (name, qualifying_points, earn_multiplier, updated_at)
            VALUES (:name, :points, :multiplier, :now)
            ON CONFLICT (name) DO UPDATE SET qualifying_points = EXCLUDED.qualifying_points,
                earn_multiplier = EXCLUDED.earn_multiplier, updated_at = EXCLUDED.updated_at
            """
        ),
        {"name": name, "points": qualifying_points, "multiplier": earn_multiplier, "now": now},
    )


async def member_tier(conn: Connection, *, member_id: int) -> Row | None:
    result = await conn.execute(
        sql("SELECT member_id, tier, since, reviewed_at FROM member_tier WHERE member_id = :id"),
        {"id": member_id},
    )
    return result.first()


async def change_tier(
    conn: Connection,
    *,
    member_id: int,
    from_tier: str | None,
    to_tier: str | None,
    qualifying: int,
    reason: str,
    now: datetime,
) -> None:
    """A member's new tier, and the change in its history, in one statement."""
    await conn.execute(
        sql(
            """
            WITH current AS (
                INSERT INTO member_tier AS t (member_id, tier, since, reviewed_at)
                VALUES (:member_id, :to_tier, :now, :now)
                ON CONFLICT (member_id) DO UPDATE SET tier = EXCLUDED.tier,
                    since = EXCLUDED.since, reviewed_at = EXCLUDED.reviewed_at
            )
            INSERT INTO member_tier_change (member_id, from_tier, to_tier, qualifying_points,
                reason, at)
            VALUES (:member_id, :from_tier, :to_tier, :qualifying, :reason, :now)
            """
        ),
        {
            "member_id": member_id,
            "from_tier": from_tier,
            "to_tier": to_tier,
            "qualifying": qualifying,
            "reason": reason,
            "now": now,
        },
    )


async def tier_holders(conn: Connection) -> dict[str, int]:
    result = await conn.execute(
        sql("SELECT tier, count(*) AS n FROM member_tier WHERE tier IS NOT NULL GROUP BY tier")
    )
    return {row.tier: int(row.n) for row in result}


async def members_to_review(
    conn: Connection, *, reviewed_before: datetime, after_member: int, limit: int
) -> list[Row]:
    """Members holding a tier not reviewed since ``reviewed_before``, in member order."""
    result = await conn.execute(
        sql(
            """
            SELECT member_id, tier, since FROM member_tier
            WHERE tier IS NOT NULL AND reviewed_at < :before AND member_id > :after
            ORDER BY member_id LIMIT :limit
            """
        ),
        {"before": reviewed_before, "after": after_member, "limit": limit},
    )
    return list(result.all())


async def mark_reviewed(conn: Connection, *, member_ids: Sequence[int], now: datetime) -> None:
    await conn.execute(
        sql(
            "UPDATE member_tier SET reviewed_at = :now"
            " WHERE member_id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": list(member_ids), "now": now},
    )


async def purchases_of_client(conn: Connection, *, client_id: str) -> int:
    """How many purchases a client recorded."""
    result = await conn.execute(
        sql("SELECT count(*) FROM purchase WHERE client_id = :client_id"), {"client_id": client_id}
    )
    return int(result.scalar_one())
