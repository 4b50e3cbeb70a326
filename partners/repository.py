"""All SQL of the partners package."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exchange.kit.db import Connection, Row, sql
from partners.models import ContractTerms

_PARTNER_WITH_CONTRACT = """
    SELECT p.id, p.name, p.status, p.created_at, c.version, c.effective_from, c.currency,
           c.issue_price, c.redemption_price, c.fee_rate, c.funding_model,
           c.points_lifetime_days, c.credit_limit_points, c.allow_negative_reversal,
           c.earn_rate, c.max_points_per_operation
    FROM partner p
    JOIN LATERAL (
        SELECT * FROM partner_contract pc
        WHERE pc.partner_id = p.id AND pc.effective_from <= :now
        ORDER BY pc.effective_from DESC, pc.version DESC LIMIT 1
    ) c ON true
"""


async def insert_partner(conn: Connection, *, name: str, created_at: datetime) -> int | None:
    result = await conn.execute(
        sql(
            "INSERT INTO partner (name, created_at) VALUES (:name, :created_at)"
            " ON CONFLICT (name) DO NOTHING RETURNING id"
        ),
        {"name": name, "created_at": created_at},
    )
    created = result.scalar()
    return None if created is None else int(created)


async def insert_contract(
    conn: Connection, *, partner_id: int, effective_from: datetime, terms: ContractTerms
) -> int:
    result = await conn.execute(
        sql(
            """
            INSERT INTO partner_contract (partner_id, version, effective_from, currency,
                issue_price, redemption_price, fee_rate, funding_model, points_lifetime_days,
                credit_limit_points, allow_negative_reversal, earn_rate,
                max_points_per_operation)
            SELECT :partner_id, coalesce(max(version), 0) + 1, :effective_from, :currency,
                :issue_price, :redemption_price, :fee_rate, :funding_model, :lifetime,
                :credit_limit, :allow_negative, :earn_rate, :max_points
            FROM partner_contract WHERE partner_id = :partner_id
            RETURNING version
            """
        ),
        {
            "partner_id": partner_id,
            "effective_from": effective_from,
            "currency": terms.currency,
            "issue_price": terms.issue_price,
            "redemption_price": terms.redemption_price,
            "fee_rate": terms.fee_rate,
            "funding_model": str(terms.funding_model),
            "lifetime": terms.points_lifetime_days,
            "credit_limit": terms.credit_limit_points,
            "allow_negative": terms.allow_negative_reversal,
            "earn_rate": terms.earn_rate,
            "max_points": terms.max_points_per_operation,
        },
    )
    return int(result.scalar_one())


async def lock_partner(conn: Connection, *, partner_id: int) -> None:
    await conn.execute(
        sql("SELECT id FROM partner WHERE id = :partner_id FOR UPDATE"),
        {"partner_id": partner_id},
    )


async def partners_listing(
    conn: Connection,
    *,
    now: datetime,
    partner_ids: list[int] | None,
    after_id: int,
    limit: int,
) -> list[Row]:
    """Partners in id order, each with its contract in force where the caller may see it
    (row-level security on partner_contract), else no contract columns."""
    result = await conn.execute(
        sql(
            _PARTNER_WITH_CONTRACT.replace("JOIN LATERAL", "LEFT JOIN LATERAL")
            + " WHERE (CAST(:ids AS bigint[]) IS NULL OR p.id = ANY(CAST(:ids AS bigint[])))"
            " AND p.id > :after_id ORDER BY p.id LIMIT :limit"
        ),
        {"now": now, "ids": partner_ids, "after_id": after_id, "limit": limit},
    )
    return list(result.all())


async def partners_in_force(conn: Connection, *, now: datetime) -> list[Row]:
    result = await conn.execute(sql(f"{_PARTNER_WITH_CONTRACT} ORDER BY p.id"), {"now": now})
    return list(result.all())


async def partner_in_force(
    conn: Connection, *, now: datetime, partner_id: int | None = None, name: str | None = None
) -> Row | None:
    result = await conn.execute(
        sql(
            f"{_PARTNER_WITH_CONTRACT} WHERE (CAST(:partner_id AS bigint) IS NULL"
            " OR p.id = :partner_id) AND (CAST(:name AS text) IS NULL OR p.name = :name)"
        ),
        {"now": now, "partner_id": partner_id, "name": name},
    )
    return result.first()


async def contracts(conn: Connection, *, partner_id: int) -> list[Row]:
    result = await conn.execute(
        sql("SELECT * FROM partner_contract WHERE partner_id = :partner_id ORDER BY version"),
        {"partner_id": partner_id},
    )
    return list(result.all())


async def set_status(conn: Connection, *, partner_id: int, status: str) -> bool:
    result = await conn.execute(
        sql("UPDATE partner SET status = :status WHERE id = :partner_id RETURNING id"),
        {"partner_id": partner_id, "status": status},
    )
    return result.first() is not None


# --- member identity and links --------------------------------------------------------


async def lock_identities(conn: Connection, *, indexes: list[bytes]) -> None:
    """Serialize links of one person (same e-mail or phone) across partners."""
    for index in sorted(indexes):
        await conn.execute(
            sql("SELECT pg_advisory_xact_lock(727200, hashtext(encode(:index, 'hex')))"),
            {"index": index},
        )


async def members_by_index(
    conn: Connection, *, email_index: bytes | None, phone_index: bytes | None
) -> list[int]:
    """The members with this e-mail's or phone's blind index, across the coalition, in
    id order. A database function of migration 0014 looks them up as the owner and
    returns only their ids: a partner or member caller never sees identity rows of
    members it has not linked or is not."""
    result = await conn.execute(
        sql("SELECT exchange_members_by_contact(:email, :phone) AS member_id"),
        {"email": email_index, "phone": phone_index},
    )
    return [int(member_id) for member_id in result.scalars()]


async def insert_identity(conn: Connection, **values: Any) -> None:
    await conn.execute(
        sql(
            """
            INSERT INTO member_identity (member_id, email_index, phone_index,
                email_ciphertext, phone_ciphertext, created_at)
            VALUES (:member_id, :email_index, :phone_index, :email_ciphertext,
                :phone_ciphertext, :created_at)
            """
        ),
        values,
    )


async def add_identity_facts(conn: Connection, **values: Any) -> None:
    """Fill in an e-mail or phone the member did not have yet."""
    await conn.execute(
        sql(
            """
            UPDATE member_identity SET
                email_index = coalesce(email_index, :email_index),
                email_ciphertext = CASE WHEN email_index IS NULL THEN :email_ciphertext
                                        ELSE email_ciphertext END,
                phone_index = coalesce(phone_index, :phone_index),
                phone_ciphertext = CASE WHEN phone_index IS NULL THEN :phone_ciphertext
                                        ELSE phone_ciphertext END
            WHERE member_id = :member_id
            """
        ),
        values,
    )


async def set_identity_facts(conn: Connection, **values: Any) -> bool:
    """Replace the e-mail and/or phone given (index and ciphertext); a kind not given
    (None) stays. False when the member has no identity left (erased)."""
    result = await conn.execute(
        sql(
            """
            UPDATE member_identity SET
                email_index = coalesce(CAST(:email_index AS bytea), email_index),
                email_ciphertext = coalesce(CAST(:email_ciphertext AS bytea), email_ciphertext),
                phone_index = coalesce(CAST(:phone_index AS bytea), phone_index),
                phone_ciphertext = coalesce(CAST(:phone_ciphertext AS bytea), phone_ciphertext)
            WHERE member_id = :member_id AND erased_at IS NULL
            RETURNING member_id
            """
        ),
        values,
    )
    return result.first() is not None


async def link(conn: Connection, *, partner_id: int, member_ref: str) -> int | None:
    result = await conn.execute(
        sql(
            "SELECT member_id FROM member_link"
            " WHERE partner_id = :partner_id AND member_ref = :member_ref"
        ),
        {"partner_id": partner_id, "member_ref": member_ref},
    )
    member_id = result.scalar()
    return int(member_id) if member_id is not None else None


async def links(conn: Connection, *, partner_id: int, member_refs: list[str]) -> dict[str, int]:
    result = await conn.execute(
        sql(
            "SELECT member_ref, member_id FROM member_link"
            " WHERE partner_id = :partner_id AND member_ref = ANY(CAST(:refs AS text[]))"
        ),
        {"partner_id": partner_id, "refs": member_refs},
    )
    return {row.member_ref: int(row.member_id) for row in result}


async def insert_link(
    conn: Connection, *, partner_id: int, member_ref: str, member_id: int, now: datetime
) -> bool:
    result = await conn.execute(
        sql(
            """
            INSERT INTO member_link (partner_id, member_ref, member_id, created_at)
            VALUES (:partner_id, :member_ref, :member_id, :now)
            ON CONFLICT DO NOTHING RETURNING member_id
            """
        ),
        {"partner_id": partner_id, "member_ref": member_ref, "member_id": member_id, "now": now},
    )
    return result.first() is not None


async def delete_link(conn: Connection, *, partner_id: int, member_ref: str) -> bool:
    result = await conn.execute(
        sql(
            "DELETE FROM member_link WHERE partner_id = :partner_id AND member_ref = :member_ref"
            " RETURNING member_id"
        ),
        {"partner_id": partner_id, "member_ref": member_ref},
    )
    return result.first() is not None


async def identity(conn: Connection, *, member_id: int) -> Row | None:
    result = await conn.execute(
        sql("SELECT * FROM member_identity WHERE member_id = :member_id"),
        {"member_id": member_id},
    )
    return result.first()


async def links_of_member(conn: Connection, *, member_id: int) -> list[Row]:
    result = await conn.execute(
        sql(
            """
            SELECT l.partner_id, p.name AS partner_name, l.member_ref, l.created_at
            FROM member_link l JOIN partner p ON p.id = l.partner_id
            WHERE l.member_id = :member_id ORDER BY l.partner_id, l.member_ref
            """
        ),
        {"member_id": member_id},
    )
    return list(result.all())


async def erase_identity(conn: Connection, *, member_id: int, now: datetime) -> bool:
    await conn.execute(
        sql("DELETE FROM member_link WHERE member_id = :member_id"), {"member_id": member_id}
    )
    result = await conn.execute(
        sql(
            """
            UPDATE member_identity SET email_index = NULL, phone_index = NULL,
                email_ciphertext = NULL, phone_ciphertext = NULL, erased_at = :now
            WHERE member_id = :member_id RETURNING member_id
            """
        ),
        {"member_id": member_id, "now": now},
    )
    return result.first() is not None


# --- change notification --------------------------------------------------------------

#: Channel on which every server process hears that tokens may have stopped being valid
#: (a partner suspended, a client or token revoked, keys rotated).
AUTH_CHANNEL = "exchange_auth"


async def notify_auth_change(conn: Connection) -> None:
    """Delivered to listeners when the transaction commits."""
    await conn.execute(sql("SELECT pg_notify(:channel, '')"), {"channel": AUTH_CHANNEL})


async def is_linked(conn: Connection, *, partner_id: int, member_id: int) -> bool:
    result = await conn.execute(
        sql(
            "SELECT 1 FROM member_link WHERE partner_id = :partner_id AND member_id = :member_id"
            " LIMIT 1"
        ),
        {"partner_id": partner_id, "member_id": member_id},
    )
    return result.first() is not None


async def links_of_partner(
    conn: Connection, *, partner_id: int, after_ref: str | None, limit: int
) -> list[Row]:
    """A partner's links in member_ref order, keyset-paginated."""
    result = await conn.execute(
        sql(
            """
            SELECT member_ref, member_id, created_at FROM member_link
            WHERE partner_id = :partner_id
              AND (CAST(:after AS text) IS NULL OR member_ref > :after)
            ORDER BY member_ref LIMIT :limit
            """
        ),
        {"partner_id": partner_id, "after": after_ref, "limit": limit},
    )
    return list(result.all())


# --- many members at once (a coalition seeded at scale) -------------------------------


async def insert_links_many(
    conn: Connection, *, links: list[tuple[int, str, int]], now: datetime
) -> None:
    """Links (partner id, member ref, member id) written in one statement."""
    await conn.execute(
        sql(
            """
            INSERT INTO member_link (partner_id, member_ref, member_id, created_at)
            SELECT l.partner_id, l.member_ref, l.member_id, :now
            FROM unnest(CAST(:partners AS bigint[]), CAST(:refs AS text[]),
                        CAST(:members AS bigint[])) AS l(partner_id, member_ref, member_id)
            """
        ),
        {
            "partners": [link[0] for link in links],
            "refs": [link[1] for link in links],
            "members": [link[2] for link in links],
            "now": now,
        },
    )


async def copy_identities(conn: Connection, *, records: list[tuple[Any, ...]]) -> None:
    """Identity rows (member id, e-mail index, e-mail ciphertext, created at) by COPY."""
    await conn.copy_records(
        "member_identity",
        records=records,
        columns=["member_id", "email_index", "email_ciphertext", "created_at"],
    )


async def partners_named_like(conn: Connection, *, pattern: str) -> list[int]:
    """Ids of partners whose name matches a regular expression, by name's number."""
    result = await conn.execute(
        sql(
            "SELECT id FROM partner WHERE name ~ :pattern"
            " ORDER BY substring(name FROM '[0-9]+$')::int"
        ),
        {"pattern": pattern},
    )
    return [int(partner_id) for partner_id in result.scalars()]


async def members_by_numbered_ref(
    conn: Connection, *, partner_ids: list[int], prefix: str
) -> list[int]:
    """The members these partners linked under refs ``<prefix><n>``, in order of n."""
    result = await conn.execute(
        sql(
            """
            SELECT DISTINCT ON (n) n, member_id
            FROM (SELECT substring(member_ref FROM char_length(:prefix) + 1)::bigint AS n,
                         member_id
                  FROM member_link
                  WHERE partner_id = ANY(:partners) AND member_ref ~ ('^' || :prefix || '[0-9]+$')
                 ) AS numbered
            ORDER BY n
            """
        ),
        {"partners": partner_ids, "prefix": prefix},
    )
    return [int(row.member_id) for row in result]


async def link_sample_to_partners(
    conn: Connection, *, partner_ids: list[int], count: int
) -> list[str]:
    """Refs of up to ``count`` random members linked to any of these partners, each now
    linked under the same ref to every one of them."""
    result = await conn.execute(
        sql(
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
