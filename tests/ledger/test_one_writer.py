"""One rule, one writer: the one-statement earn (the only fast path) writes exactly the rows
the general writer writes for the same earn, and every operation's single call is a
batch of one through the same mechanism."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from exchange import ledger
from exchange.kit.db import Database
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.ledger import repository
from exchange.ledger.models import PartnerPolicy
from tests.conftest import NOW, Factory
from tests.ledger.helpers import lots, postings

CASES: list[dict[str, Any]] = [
    {"points": 120},
    {"points": 7, "reference": "receipt-1", "metadata": {"till": 3}},
    {"points": 50, "expires_at": NOW + timedelta(days=10)},
    {"points": 80, "effective_at": NOW - timedelta(days=40)},
    {"points": 9, "effective_at": NOW - timedelta(days=5), "expires_at": NOW + timedelta(hours=1)},
]


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on the database while the block runs (BEGIN not counted)."""
    with db.watching() as sent:
        seen: list[str] = []
        yield seen
        seen.extend(statement for statement in sent if statement != "BEGIN")


async def _written(db: Database, result: ledger.EntryResult) -> dict[str, Any]:
    """Everything an earn wrote, without the ids and the member that tell two earns apart."""
    async with db.transaction(SYSTEM) as conn:
        entry = await repository.entry_by_id(conn, entry_id=result.entry_id)
    assert entry is not None
    columns = ("kind", "partner_id", "points", "reference", "created_at", "effective_at")
    lot_columns = ("issuer_partner_id", "origin", "amount", "remaining", "earned_at", "expires_at")
    assert result.member_id is not None
    return {
        "entry": {name: getattr(entry, name) for name in columns},
        "metadata": entry.metadata,
        "postings": await postings(db, result.entry_id),
        "lots": [
            {name: getattr(lot, name) for name in lot_columns}
            for lot in await lots(db, result.member_id)
        ],
        "balance": result.wallet_balance,
    }


@pytest.mark.parametrize("case", CASES)
async def test_the_one_statement_earn_writes_what_the_general_writer_writes(
    make: Factory, case: dict[str, Any]
) -> None:
    partner = await make.partner(PartnerPolicy(points_lifetime_days=90))
    fast_member, general_member = await make.member(), await make.member()

    with counting(make.db) as statements:
        async with make.db.transaction(SYSTEM) as conn:
            fast = await ledger.earn(
                conn,
                client_id=make.client_id,
                partner_id=partner,
                request=ledger.EarnRequest(make.key(), fast_member, **case),
                now=NOW,
            )
    async with make.db.transaction(SYSTEM) as conn:
        [general] = await ledger.earn_many(
            conn,
            client_id=make.client_id,
            partner_id=partner,
            requests=[ledger.EarnRequest(make.key(), general_member, **case)],
            now=NOW,
        )

    assert len(statements) == 1, "the single earn took the one-statement path"
    assert isinstance(general, ledger.EntryResult)
    assert fast.entry.created_at == general.entry.created_at
    assert await _written(make.db, fast) == await _written(make.db, general)


async def test_an_earn_the_fast_path_cannot_decide_is_decided_by_the_general_path(
    make: Factory,
) -> None:
    # A partner with a credit limit: the one statement writes nothing and hands over.
    partner = await make.partner(PartnerPolicy(credit_limit_points=100))
    alice = await make.member()
    await make.earn(partner, alice, 60)

    with counting(make.db) as statements, pytest.raises(DomainError) as refused:
        await make.earn(partner, alice, 50)  # 60 + 50 > 100

    assert refused.value.code == ErrorCode.LIMIT_EXCEEDED
    assert len(statements) > 1
    assert (await make.wallet(alice)).available == 60
