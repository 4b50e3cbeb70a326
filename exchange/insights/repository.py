"""All SQL of member insights. Functions take the unit of work's connection and plain
values; every read and write runs under the caller's row-level-security scope, except
the refresh (system work) and the functions the migrations run as the owner (the
selection of an audience and a campaign's outcome, 0021; cross-shopping, 0023), which
check the caller themselves.

The built-in segment rules live in one SQL function, ``insights_segments`` (migration
0020); the statements here call it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from exchange.kit.db import Connection, Row, sql

# --- profiles -------------------------------------------------------------------------

#: A member's profile as one partner reads it (its own purchases with the member; its
#: segments from the coalition's profile when the member consented), or as the operator
#: reads it (``:partner_id`` NULL: the coalition's).
_PROFILE = """
SELECT CASE WHEN own THEN s.first_purchase_at ELSE c.first_at END AS first_purchase_at,
       CASE WHEN own THEN s.last_purchase_at ELSE c.last_at END AS last_purchase_at,
       CASE WHEN own THEN coalesce(s.purchases, 0) ELSE coalesce(c.purchases, 0) END
         AS purchases,
       CASE WHEN own THEN coalesce(s.spend, 0) ELSE coalesce(c.spend, 0) END AS spend,
       CASE WHEN own THEN s.rfm_recency ELSE pr.rfm_recency END AS rfm_recency,
       CASE WHEN own THEN s.rfm_frequency ELSE pr.rfm_frequency END AS rfm_frequency,
       CASE WHEN own THEN s.rfm_monetary ELSE pr.rfm_monetary END AS rfm_monetary,
       coalesce(pr.consent_cross_partner, false) AS consent,
       CASE WHEN own AND NOT coalesce(pr.consent_cross_partner, false)
            THEN insights_segments(s.first_purchase_at, s.last_purchase_at, s.purchases,
                                   s.rfm_monetary, :now)
            ELSE insights_segments(c.first_at, c.last_at, c.purchases, pr.rfm_monetary, :now)
       END AS segments
FROM (SELECT CAST(:partner_id AS bigint) IS NOT NULL AS own) AS caller
LEFT JOIN member_partner_stats s ON s.member_id = :member_id AND s.partner_id = :partner_id
LEFT JOIN member_profile pr ON pr.member_id = :member_id
LEFT JOIN LATERAL (
    SELECT min(first_purchase_at) AS first_at, max(last_purchase_at) AS last_at,
           sum(purchases)::integer AS purchases, sum(spend) AS spend
    FROM member_partner_stats WHERE member_id = :member_id
) c ON true
"""


async def profile(
    conn: Connection, *, member_id: int, partner_id: int | None, now: datetime
) -> Row:
    result = await conn.execute(
        sql(_PROFILE), {"member_id": member_id, "partner_id": partner_id, "now": now}
    )
    return result.one()


def _quintile(order: str, partition: str = "") -> str:
    """1..5 by rank (ties share a quintile): 5 is the top fifth."""
    window = f"OVER ({partition} ORDER BY {order})"
    return f"least(5, 1 + floor(5 * percent_rank() {window}))::smallint"


_REFRESH_PER_PARTNER = f"""
WITH ranked AS (
    SELECT member_id, partner_id,
           {_quintile("last_purchase_at", "PARTITION BY partner_id")} AS r,
           {_quintile("purchases", "PARTITION BY partner_id")} AS f,
           {_quintile("spend", "PARTITION BY partner_id")} AS m
    FROM member_partner_stats
)
UPDATE member_partner_stats s SET rfm_recency = ranked.r, rfm_frequency = ranked.f,
    rfm_monetary = ranked.m
FROM ranked
WHERE s.member_id = ranked.member_id AND s.partner_id = ranked.partner_id
  AND (s.rfm_recency, s.rfm_frequency, s.rfm_monetary)
      IS DISTINCT FROM (ranked.r, ranked.f, ranked.m)
"""

_REFRESH_COALITION = f"""
INSERT INTO member_profile AS p (member_id, rfm_recency, rfm_frequency, rfm_monetary)
SELECT member_id, {_quintile("last_at")}, {_quintile("purchases")}, {_quintile("spend")}
FROM (SELECT member_id, max(last_purchase_at) AS last_at, sum(purchases) AS purchases,
             sum(spend) AS spend
      FROM member_partner_stats GROUP BY member_id) AS a
ON CONFLICT (member_id) DO UPDATE SET rfm_recency = EXCLUDED.rfm_recency,
    rfm_frequency = EXCLUDED.rfm_frequency, rfm_monetary = EXCLUDED.rfm_monetary
WHERE (p.rfm_recency, p.rfm_frequency, p.rfm_monetary)
      IS DISTINCT FROM (EXCLUDED.rfm_recency, EXCLUDED.rfm_frequency, EXCLUDED.rfm_monetary)
"""


async def refresh_rfm(conn: Connection) -> tuple[int, int]:
    """Recompute every RFM quintile, set-based: per partner, then coalition-wide; the rows
    that changed (profiles at partners, members)."""
    per_partner = await conn.affected(sql(_REFRESH_PER_PARTNER))
    coalition = await conn.affected(sql(_REFRESH_COALITION))
    return per_partner, coalition


async def claim_refresh(conn: Connection, *, wait: bool) -> datetime | None:
    """Lock the one row of ``insights_refresh`` for this transaction and return when the
    quintiles were last recomputed; None if another transaction holds it (``wait``:
    wait for it instead)."""
    lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
    result = await conn.execute(
        sql(f"SELECT refreshed_at FROM insights_refresh WHERE id = 1 {lock}")
    )
    found: datetime | None = result.scalar_one_or_none()
    return found


async def mark_refreshed(conn: Connection, *, now: datetime) -> None:
    await conn.execute(
        sql("UPDATE insights_refresh SET refreshed_at = :now WHERE id = 1"), {"now": now}
    )


async def set_consent(conn: Connection, *, member_id: int, consent: bool, now: datetime) -> bool:
    """Record a member's consent to cross-partner use; whether it changed."""
    result = await conn.execute(
        sql(
            """
            INSERT INTO member_profile AS p (member_id, consent_cross_partner, consent_at)
            VALUES (:member_id, :consent, :now)
            ON CONFLICT (member_id) DO UPDATE SET
                consent_cross_partner = EXCLUDED.consent_cross_partner,
                consent_at = EXCLUDED.consent_at
            WHERE p.consent_cross_partner IS DISTINCT FROM EXCLUDED.consent_cross_partner
            RETURNING member_id
            """
        ),
        {"member_id": member_id, "consent": consent, "now": now},
    )
    return result.first() is not None


# --- segments -------------------------------------------------------------------------


async def segment_rows(
    conn: Connection,
    *,
    owner_partner_id: int | None,
    after_id: int,
    limit: int,
    segment_id: int | None = None,
) -> list[Row]:
    """The caller's custom segments (row-level security: a partner's own; the operator's
    are those without an owner), in id order; ``segment_id``: only that one."""
    result = await conn.execute(
        sql(
            """
            SELECT id, name, condition FROM segment
            WHERE owner_partner_id IS NOT DISTINCT FROM CAST(:owner AS bigint)
              AND id > :after
              AND (CAST(:segment_id AS bigint) IS NULL OR id = CAST(:segment_id AS bigint))
            ORDER BY id LIMIT :limit
            """
        ),
        {"owner": owner_partner_id, "after": after_id, "limit": limit, "segment_id": segment_id},
    )
    return list(result.all())


async def insert_segment(conn: Connection, **values: Any) -> int | None:
    """A custom segment; None when the caller has one of that name."""
    result = await conn.execute(
        sql(
            """
            INSERT INTO segment (owner_partner_id, name, condition, created_by, created_at)
            VALUES (:owner_partner_id, :name, :condition, :created_by, :now)
            ON CONFLICT ((coalesce(owner_partner_id, 0)), name) DO NOTHING
            RETURNING id
            """
        ),
        values,
    )
    found = result.scalar()
    return int(found) if found is not None else None


_BASIS = """
SELECT s.member_id,
       CASE WHEN coalesce(pr.consent_cross_partner, false) THEN c.first_at
            ELSE s.first_purchase_at END AS first_at,
       CASE WHEN coalesce(pr.consent_cross_partner, false) THEN c.last_at
            ELSE s.last_purchase_at END AS last_at,
       CASE WHEN coalesce(pr.consent_cross_partner, false) THEN c.purchases
            ELSE s.purchases END AS purchases,
       CASE WHEN coalesce(pr.consent_cross_partner, false) THEN pr.rfm_monetary
            ELSE s.rfm_monetary END AS monetary,
       s.first_purchase_at AS own_first_at, s.last_purchase_at AS own_last_at,
       s.purchases AS own_purchases, s.spend, s.rfm_recency, s.rfm_frequency,
       s.rfm_monetary, coalesce(pr.consent_cross_partner, false) AS consent
FROM member_partner_stats s
JOIN member_link l ON l.member_id = s.member_id AND l.partner_id = s.partner_id
LEFT JOIN member_profile pr ON pr.member_id = s.member_id
LEFT JOIN LATERAL (
    SELECT min(first_purchase_at) AS first_at, max(last_purchase_at) AS last_at,
           sum(purchases)::integer AS purchases
    FROM member_partner_stats x WHERE x.member_id = s.member_id
      AND coalesce(pr.consent_cross_partner, false)
) c ON true
WHERE s.partner_id = :partner_id
"""


async def built_in_sizes(
    conn: Connection, *, partner_id: int | None, now: datetime
) -> dict[str, int]:
    """How many of the partner's members (the operator: of the coalition's) are in each
    built-in segment now."""
    if partner_id is None:
        source = """
            SELECT insights_segments(min(s.first_purchase_at), max(s.last_purchase_at),
                       sum(s.purchases)::integer, max(pr.rfm_monetary), :now) AS segments
            FROM member_partner_stats s LEFT JOIN member_profile pr
              ON pr.member_id = s.member_id
            GROUP BY s.member_id
        """
    else:
        source = (
            "SELECT insights_segments(b.first_at, b.last_at, b.purchases, b.monetary, :now)"
            f" AS segments FROM ({_BASIS}) b"
        )
    result = await conn.execute(
        sql(
            f"SELECT name, count(*) AS members FROM ({source}) m,"
            " unnest(m.segments) AS name GROUP BY name"
        ),
        {"partner_id": partner_id, "now": now},
    )
    return {row.name: int(row.members) for row in result}


#: The coalition's profiles as the operator reads them (``_PROFILE`` with no partner): the
#: sum of each member's rows at every partner, its coalition-wide RFM and segments.
_COALITION_PROFILES = """
SELECT s.member_id, min(s.first_purchase_at) AS first_purchase_at,
       max(s.last_purchase_at) AS last_purchase_at, sum(s.purchases)::integer AS purchases,
       sum(s.spend) AS spend, pr.rfm_recency, pr.rfm_frequency, pr.rfm_monetary,
       coalesce(pr.consent_cross_partner, false) AS consent,
       insights_segments(min(s.first_purchase_at), max(s.last_purchase_at),
                         sum(s.purchases)::integer, pr.rfm_monetary, :now) AS segments
FROM member_partner_stats s LEFT JOIN member_profile pr ON pr.member_id = s.member_id
WHERE s.member_id > :after
GROUP BY s.member_id, pr.rfm_recency, pr.rfm_frequency, pr.rfm_monetary,
         pr.consent_cross_partner
ORDER BY s.member_id LIMIT :limit
"""

#: One partner's linked members' profiles as it reads them (its own purchases; segments
#: from the coalition's profile when the member consented).
_PARTNER_PROFILES = f"""
SELECT b.member_id, b.own_first_at AS first_purchase_at,
       b.own_last_at AS last_purchase_at, b.own_purchases AS purchases, b.spend,
       b.rfm_recency, b.rfm_frequency, b.rfm_monetary, b.consent,
       insights_segments(b.first_at, b.last_at, b.purchases, b.monetary, :now) AS segments
FROM ({_BASIS}) b WHERE b.member_id > :after ORDER BY b.member_id LIMIT :limit
"""


async def profiles_page(
    conn: Connection, *, partner_id: int | None, now: datetime, after_member: int, limit: int
) -> list[Row]:
    """A page of the profiles a custom segment's size is counted over, in member order:
    the partner's linked members' as it reads them (None: the operator's, every member
    with a purchase, as the coalition's)."""
    statement = _COALITION_PROFILES if partner_id is None else _PARTNER_PROFILES
    result = await conn.execute(
        sql(statement),
        {"partner_id": partner_id, "now": now, "after": after_member, "limit": limit},
    )
    return list(result.all())


# --- targets and offers ---------------------------------------------------------------


async def insert_target(conn: Connection, **values: Any) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO campaign_target (campaign_id, segment, audience, control_share,
                offer_title, offer_description)
            VALUES (:campaign_id, :segment, :audience, :control_share, :offer_title,
                :offer_description)
            """
        ),
        values,
    )


async def select_audience(
    conn: Connection, *, campaign_id: int, now: datetime, expires_at: datetime | None
) -> tuple[int, int]:
    """Select a target's audience once (run as the owner; the caller must manage the
    campaign): (treated, control)."""
    result = await conn.execute(
        sql("SELECT treated, control FROM insights_select_audience(:id, :now, :expires)"),
        {"id": campaign_id, "now": now, "expires": expires_at},
    )
    row = result.first()
    return (int(row.treated), int(row.control)) if row is not None else (0, 0)


async def targets(conn: Connection, *, campaign_ids: Sequence[int]) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT campaign_id, segment, audience, control_share, offer_title,
                   offer_description, treated, control, selected_at
            FROM campaign_target WHERE campaign_id = ANY(CAST(:ids AS bigint[]))
            """
        ),
        {"ids": list(campaign_ids)},
    )
    return list(result.all())


_OFFER = (
    "o.id, o.campaign_id, o.member_id, o.title, o.description, o.status, o.expires_at,"
    " o.activated_at"
)


async def offers_of_member(conn: Connection, *, member_id: int, limit: int) -> list[Row]:
    result = await conn.execute(
        sql(
            f"SELECT {_OFFER} FROM offer o WHERE o.member_id = :member_id"
            " ORDER BY o.id DESC LIMIT :limit"
        ),
        {"member_id": member_id, "limit": limit},
    )
    return list(result.all())


async def offers_by_ids(conn: Connection, *, offer_ids: Sequence[int]) -> list[Row]:
    result = await conn.execute(
        sql(f"SELECT {_OFFER} FROM offer o WHERE o.id = ANY(CAST(:ids AS bigint[]))"),
        {"ids": list(offer_ids)},
    )
    return list(result.all())


async def activate_offer(conn: Connection, *, offer_id: int, member_id: int, now: datetime) -> bool:
    """AVAILABLE -> ACTIVATED for an offer of this member that has not expired."""
    result = await conn.execute(
        sql(
            """
            UPDATE offer SET status = 'ACTIVATED', activated_at = :now
            WHERE id = :id AND member_id = :member_id AND status = 'AVAILABLE'
              AND (expires_at IS NULL OR expires_at > :now)
            RETURNING id
            """
        ),
        {"id": offer_id, "member_id": member_id, "now": now},
    )
    return result.first() is not None


async def campaign_outcome(
    conn: Connection, *, campaign_id: int, start: datetime, end: datetime
) -> list[Row]:
    """(control, members, purchasers, spend, activated) per group (run as the owner; the caller
    must manage the campaign)."""
    result = await conn.execute(
        sql(
            "SELECT control, members, purchasers, spend, activated"
            " FROM insights_campaign_outcome(:id, :start, :end)"
        ),
        {"id": campaign_id, "start": start, "end": end},
    )
    return list(result.all())


# --- GDPR -----------------------------------------------------------------------------


async def member_export(conn: Connection, *, member_id: int) -> Row:
    """What insights hold of one member: its profile at each partner, its consent, its
    purchases (with their personal fields) and its offers, as JSON."""
    result = await conn.execute(
        sql(
            """
            SELECT
              (SELECT coalesce(json_agg(json_build_object('partner', partner_id,
                 'purchases', purchases, 'spend', spend::text,
                 'firstPurchaseAt', first_purchase_at, 'lastPurchaseAt', last_purchase_at)
                 ORDER BY partner_id), '[]')
               FROM member_partner_stats WHERE member_id = :m) AS profiles,
              (SELECT consent_cross_partner FROM member_profile WHERE member_id = :m)
                AS consent,
              (SELECT coalesce(json_agg(json_build_object('id', id, 'partner', partner_id,
                 'amount', amount::text, 'currency', currency, 'occurredAt', occurred_at,
                 'storeRef', store_ref, 'reference', reference, 'items', items)
                 ORDER BY id), '[]')
               FROM purchase WHERE member_id = :m) AS purchases,
              (SELECT coalesce(json_agg(json_build_object('id', id, 'campaign', campaign_id,
                 'title', title, 'status', status, 'createdAt', created_at) ORDER BY id), '[]')
               FROM offer WHERE member_id = :m) AS offers
            """
        ),
        {"m": member_id},
    )
    return result.one()


async def forget_member(conn: Connection, *, member_id: int) -> int:
    """GDPR erasure: the member's profiles, consent and offers are deleted (and whether it
    was selected for a campaign), its purchases lose their personal fields (store,
    reference, items); amounts stay, as the ledger's entries do. The purchases cleared."""
    return await conn.affected(
        sql(
            """
            WITH stats AS (DELETE FROM member_partner_stats WHERE member_id = :m),
                 categories AS (DELETE FROM member_category_stats WHERE member_id = :m),
                 profile AS (DELETE FROM member_profile WHERE member_id = :m),
                 offers AS (DELETE FROM offer WHERE member_id = :m),
                 selected AS (DELETE FROM campaign_selection WHERE member_id = :m)
            UPDATE purchase SET store_ref = NULL, reference = NULL, items = '[]'::jsonb
            WHERE member_id = :m
            """
        ),
        {"m": member_id},
    )


# --- KPIs -----------------------------------------------------------------------------

_PARTNER = "(CAST(:partner AS bigint) IS NULL OR {column} = :partner)"


async def kpis(conn: Connection, *, partner_id: int | None, start: datetime, end: datetime) -> Row:
    """Points issued, redeemed and expired of the partner's lots (the operator's: every
    partner's) in [start, end); members active in the 30 and 90 days before ``end``,
    repeat buyers, spend and spenders in the window; and the retention cohorts as three
    arrays in step (``cohorts``, ``offsets``, ``cohort_members``): members by the month
    of their first purchase (at the partner; the operator's: anywhere) in the window, and
    how many of them bought in each later month (offset 1, 2, ...; offset 0 is the
    cohort).

    Counted by ``insights_kpis`` (migration 0024), run as the owner: it reads indexes
    only, without the row-security check per row, and takes the partner from the caller
    (``insights_partner``: a partner reads its own whatever it passes)."""
    result = await conn.execute(
        sql("SELECT * FROM insights_kpis(:partner, :start, :end)"),
        {"partner": partner_id, "start": start, "end": end},
    )
    return result.one()


async def liability(conn: Connection, *, partner_id: int | None) -> list[Row]:
    """Points still in wallets, by issuing partner (None: the coalition's own). Counted by
    ``insights_liability`` (migration 0024), run as the owner, for the partner the
    caller may read (``insights_partner``)."""
    result = await conn.execute(
        sql("SELECT issuer_partner_id, points FROM insights_liability(:partner)"),
        {"partner": partner_id},
    )
    return list(result.all())


async def cross_shopping(
    conn: Connection, *, partner_id: int | None, start: datetime, k: int
) -> tuple[int, list[Row]]:
    """Of the partner's members who consented to cross-partner use (the operator's: every
    consenting member), how many bought each category elsewhere since ``start``: only
    categories with at least ``k`` of them (k-anonymity). (population, rows).

    Counted by ``insights_cross_shopping`` (migration 0023), run as the owner: it takes
    the partner from the caller (a partner reads its own whatever it passes) and returns
    aggregates only."""
    result = await conn.execute(
        sql(
            """
            SELECT category, members, population
            FROM insights_cross_shopping(:partner, :start, :k)
            ORDER BY members DESC, category
            """
        ),
        {"partner": partner_id, "start": start, "k": k},
    )
    rows = list(result.all())
    if rows:
        return int(rows[0].population), rows
    return 0, []


async def campaign_costs(conn: Connection, *, campaign_id: int) -> list[Row]:
    """Points a campaign awarded, by funder (None: the coalition) and by the partner where
    they were earned."""
    result = await conn.execute(
        sql(
            """
            SELECT a.funder_partner_id, p.partner_id, sum(a.points) AS points
            FROM purchase_award a JOIN purchase p ON p.id = a.purchase_id
            WHERE a.campaign_id = :id
            GROUP BY a.funder_partner_id, p.partner_id
            """
        ),
        {"id": campaign_id},
    )
    return list(result.all())


async def liability_at(
    conn: Connection, *, partner_id: int | None, moments: Sequence[datetime]
) -> list[Row]:
    """Points in wallets at each moment: what the partner's lots (every partner's) took
    in before it, less what left them before it."""
    result = await conn.execute(
        sql(
            f"""
            SELECT b.at,
                   (SELECT coalesce(sum(l.amount), 0) FROM ledger_lot l
                    WHERE {_PARTNER.format(column="l.issuer_partner_id")}
                      AND l.earned_at < b.at)
                 - (SELECT coalesce(sum(c.points), 0)
                    FROM ledger_lot_consumption c JOIN ledger_entry e ON e.id = c.entry_id
                    WHERE {_PARTNER.format(column="c.issuer_partner_id")}
                      AND e.effective_at < b.at) AS points
            FROM unnest(CAST(:moments AS timestamptz[])) AS b(at) ORDER BY b.at
            """
        ),
        {"partner": partner_id, "moments": list(moments)},
    )
    return list(result.all())


async def targeted_campaign_ids(
    conn: Connection, *, owner_partner_id: int | None, limit: int
) -> list[int]:
    """The targeted campaigns of a partner (None: every one), newest first."""
    result = await conn.execute(
        sql(
            """
            SELECT c.id FROM campaign c JOIN campaign_target t ON t.campaign_id = c.id
            WHERE CAST(:owner AS bigint) IS NULL OR c.owner_partner_id = :owner
            ORDER BY c.id DESC LIMIT :limit
            """
        ),
        {"owner": owner_partner_id, "limit": limit},
    )
    return [int(row.id) for row in result]
