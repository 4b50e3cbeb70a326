"""`exchange bench seed`: a coalition written by the ledger's own batch operations is the
ledger that earning and redeeming live would have left, and `exchange bench --seeded` can
drive it."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange import ledger
from exchange.devtools import bench, seed
from exchange.kit.clock import utc_now
from exchange.kit.db import Database, sql
from exchange.kit.errors import InvalidInput
from exchange.kit.system import SYSTEM
from exchange.ledger import repository
from partners import identity
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET_KEY


@pytest.fixture(scope="module")
async def seeded(db: Database) -> seed.SeedSummary:
    return await seed.seed(
        db,
        members=200,
        entries=2_000,
        partners=3,
        secret=TEST_SECRET_KEY.encode(),
        now=utc_now(),
        progress=lambda line: None,
    )


async def test_seed_writes_members_links_and_a_valid_history(
    db: Database, seeded: seed.SeedSummary
) -> None:
    async with db.transaction(SYSTEM) as conn:
        kinds = dict(
            (
                await conn.execute(
                    sql(
                        "SELECT kind, count(*) FROM ledger_entry WHERE client_id = 'seed'"
                        " GROUP BY kind"
                    )
                )
            ).all()
        )
        partner_ids = await seed.seed_partners(conn)
        linked = await conn.execute(
            sql("SELECT count(DISTINCT member_id) FROM member_link WHERE partner_id = ANY(:ids)"),
            {"ids": partner_ids},
        )
        events = (
            await conn.execute(
                sql(
                    "SELECT count(*), count(*) FILTER (WHERE fanned_out_at IS NULL)"
                    " FROM event_outbox WHERE partner_id = ANY(:ids)"
                ),
                {"ids": partner_ids},
            )
        ).one()
    async with db.transaction(SYSTEM) as conn:
        report = await ledger.verify(conn)

    assert (seeded.members, seeded.entries, seeded.redemptions) == (200, 2_000, 600)
    assert kinds == {"EARN": 1_400, "REDEEM": 600}
    assert len(partner_ids) == 3
    assert linked.scalar_one() == 200
    # an event per entry, fanned out by the seed: no backlog for the server it serves
    assert tuple(events) == (2_000, 0)
    assert report.ok, [check for check in report.checks if not check.ok]


async def test_a_seeded_wallet_is_its_lots_and_a_seeded_redemption_replays(
    db: Database, seeded: seed.SeedSummary
) -> None:
    async with db.transaction(SYSTEM) as conn:
        redemption = (
            await conn.execute(
                sql(
                    "SELECT e.idempotency_key, e.partner_id, e.member_id, e.points, e.effective_at,"
                    " l.member_ref"
                    " FROM ledger_entry e JOIN member_link l ON l.member_id = e.member_id"
                    " AND l.partner_id = e.partner_id"
                    " WHERE e.client_id = 'seed' AND e.kind = 'REDEEM' ORDER BY e.id LIMIT 1"
                )
            )
        ).one()
        member_id = await identity.resolve(
            conn, partner_id=redemption.partner_id, member_ref=redemption.member_ref
        )
        wallet = await ledger.wallet(conn, member_id=member_id)
        lots = await repository.lots_of_member(conn, member_id=member_id)
        replay = await ledger.redeem(
            conn,
            client_id="seed",
            partner_id=redemption.partner_id,
            request=ledger.RedeemRequest(
                idempotency_key=redemption.idempotency_key,
                member_id=member_id,
                points=redemption.points,
                effective_at=redemption.effective_at,  # the seed books its history backdated
            ),
            now=utc_now(),
        )

    assert member_id == redemption.member_id
    assert wallet.balance == sum(int(lot.remaining) for lot in lots)
    assert any(lot.remaining < lot.amount for lot in lots)
    assert replay.replayed


async def test_bench_seeded_links_its_sample_to_every_seed_partner(
    db: Database, seeded: seed.SeedSummary
) -> None:
    partners, refs = await bench.setup_seeded(db, members=5)

    async with db.transaction(SYSTEM) as conn:
        for partner in partners:
            for ref in refs:
                await identity.resolve(conn, partner_id=partner.partner_id, member_ref=ref)
    assert len(partners) == 3
    assert 1 <= len(refs) <= 5


async def test_seeding_an_already_seeded_database_is_refused(
    db: Database, seeded: seed.SeedSummary
) -> None:
    with pytest.raises(InvalidInput, match="already seeded"):
        await seed.seed(
            db,
            members=1,
            entries=1,
            partners=1,
            secret=TEST_SECRET_KEY.encode(),
            now=utc_now(),
            progress=lambda line: None,
        )


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "seed", "--members", "0", "--entries", "10"],
        ["bench", "seed", "--members", "10", "--entries", "-1"],
        ["bench", "seed", "--entries", "10"],
    ],
)
def test_bad_seed_arguments_get_one_line_and_status_two(args: list[str], tmp_path: Path) -> None:
    result = run(args, "postgresql://unused/none", tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("exchange: error: ")


async def test_seed_records_purchases_through_the_loyalty_engine(
    scratch_database_url: str, tmp_path: Path
) -> None:
    result = run(
        ["bench", "seed", "--members", "30", "--entries", "40", "--partners", "3",
         "--purchases", "50", "--json"],
        scratch_database_url, tmp_path,
    )  # fmt: skip
    database = Database(scratch_database_url)
    try:
        async with database.transaction(SYSTEM) as conn:
            counts = (
                await conn.execute(
                    sql(
                        "SELECT (SELECT count(*) FROM purchase) AS purchases,"
                        " (SELECT sum(purchases) FROM member_partner_stats) AS profiled,"
                        " (SELECT count(*) FROM purchase_award) AS awards"
                    )
                )
            ).one()
        async with database.transaction(SYSTEM) as conn:
            report = await ledger.verify(conn)
    finally:
        await database.dispose()

    assert result.returncode == 0, result.stderr
    assert '"purchases": 50' in result.stdout
    assert (counts.purchases, counts.profiled) == (50, 50)  # each one in a profile
    assert counts.awards == 50  # base points: each purchase earned
    assert report.ok, [check for check in report.checks if not check.ok]


class _Stopped(Exception):
    """The seed was stopped between two rounds (as by a kill)."""


async def test_a_stopped_seed_resumes_its_purchases_where_it_stopped(
    scratch_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seed, "PURCHASES_PER_ROUND", 20)
    counts = {"members": 30, "entries": 40, "partners": 3, "purchases": 70}
    now = utc_now()

    def stop_after_two_rounds(line: str) -> None:
        if "40/70 purchases" in line:
            raise _Stopped

    lines: list[str] = []
    database = Database(scratch_database_url)
    try:
        with pytest.raises(_Stopped):
            await seed.seed(database, **counts, secret=TEST_SECRET_KEY.encode(), now=now,
                            progress=stop_after_two_rounds)  # fmt: skip
        stopped = await _purchase_counts(database)
        await seed.seed(database, **counts, secret=TEST_SECRET_KEY.encode(), now=now,
                        progress=lines.append, resume=True)  # fmt: skip
        resumed = await _purchase_counts(database)
        # resumed again when complete: the last round replays, nothing is added
        await seed.seed(database, **counts, secret=TEST_SECRET_KEY.encode(), now=now,
                        progress=lines.append, resume=True)  # fmt: skip
        again = await _purchase_counts(database)
        async with database.transaction(SYSTEM) as conn:
            report = await ledger.verify(conn)
    finally:
        await database.dispose()

    assert stopped == (40, 40, 40)
    assert "… resuming at purchase 40 (40 recorded)" in lines
    assert resumed == (70, 70, 70)  # purchases, distinct keys, purchases in profiles
    assert "… resuming at purchase 60 (70 recorded)" in lines
    assert again == (70, 70, 70)
    assert report.ok, [check for check in report.checks if not check.ok]


async def _purchase_counts(database: Database) -> tuple[int, int, int]:
    async with database.transaction(SYSTEM) as conn:
        row = (
            await conn.execute(
                sql(
                    "SELECT (SELECT count(*) FROM purchase) AS purchases,"
                    " (SELECT count(DISTINCT idempotency_key) FROM purchase) AS keys,"
                    " (SELECT coalesce(sum(purchases), 0) FROM member_partner_stats) AS profiled"
                )
            )
        ).one()
    return int(row.purchases), int(row["keys"]), int(row.profiled)
