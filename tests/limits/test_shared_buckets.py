"""Shared buckets: processes lease chunks from one bucket in PostgreSQL, so together they
never spend more than the bucket allows, and a request costs no database write."""

from __future__ import annotations

import asyncio
import secrets

from exchange.kit.db import Database, RowScope, Scope, sql
from exchange.kit.system import SYSTEM
from exchange.limits import Limit, SharedBuckets

# Refilled slowly enough that a test's own duration adds at most a point or two.
SMALL = Limit("test", capacity=100, refill_points=1, refill_seconds=10, lease_points=10)


def _key() -> str:
    return f"client-{secrets.token_hex(4)}"


async def _row(db: Database, key: str) -> tuple[object, ...] | None:
    async with db.transaction(SYSTEM) as conn:
        row = (
            await conn.execute(
                sql("SELECT level, updated_at FROM limit_bucket WHERE name = :name"),
                {"name": f"{SMALL.name}:{key}"},
            )
        ).first()
    return tuple(row) if row is not None else None


async def test_two_processes_together_spend_no_more_than_one_bucket(db: Database) -> None:
    first, second = SharedBuckets(db, SMALL), SharedBuckets(db, SMALL)
    key = _key()

    spent = 0
    for _ in range(3 * SMALL.capacity):  # each process alone would allow 100
        for process in (first, second):
            if (await process.take(key, 1, scope=SYSTEM)).allowed:
                spent += 1

    # 100, plus at most a point or two refilled while the test ran
    assert SMALL.capacity - 2 * SMALL.lease_points <= spent <= SMALL.capacity + 2
    assert first.leases > 1
    assert second.leases > 1


async def test_concurrent_takes_of_many_processes_never_overspend(db: Database) -> None:
    processes = [SharedBuckets(db, SMALL) for _ in range(4)]
    key = _key()

    decisions = await asyncio.gather(
        *(process.take(key, 3, scope=SYSTEM) for process in processes for _ in range(40))
    )

    spent = 3 * sum(1 for decision in decisions if decision.allowed)
    assert 0 < spent <= SMALL.capacity + 2


async def test_a_process_spends_its_lease_without_writing_a_row(db: Database) -> None:
    process = SharedBuckets(db, SMALL)
    key = _key()
    await process.take(key, 1, scope=SYSTEM)  # leases 10
    after_lease = await _row(db, key)

    for _ in range(SMALL.lease_points - 1):
        assert (await process.take(key, 1, scope=SYSTEM)).allowed

    assert process.leases == 1
    assert await _row(db, key) == after_lease


async def test_an_empty_bucket_is_refused_locally_with_a_time_to_wait(db: Database) -> None:
    other, process = SharedBuckets(db, SMALL), SharedBuckets(db, SMALL)
    key = _key()
    while (await other.take(key, 10, scope=SYSTEM)).allowed:
        pass  # another process empties the bucket

    refused = await process.take(key, 5, scope=SYSTEM)
    leases = process.leases
    again = await process.take(key, 5, scope=SYSTEM)

    assert not refused.allowed
    assert refused.retry_after_seconds >= 1
    assert not again.allowed
    assert process.leases == leases  # known empty: no round trip
    assert process.refused(key) is not None


async def test_a_bucket_refills_at_its_rate(db: Database) -> None:
    quick = Limit("test-quick", capacity=4, refill_points=4, refill_seconds=1, lease_points=1)
    process = SharedBuckets(db, quick)
    key = _key()
    while (await process.take(key, 1, scope=SYSTEM)).allowed:
        pass
    refused = await process.take(key, 1, scope=SYSTEM)

    await asyncio.sleep(refused.retry_after_seconds)

    assert (await process.take(key, 1, scope=SYSTEM)).allowed


async def test_drained_buckets_are_forgotten_and_live_ones_kept(db: Database) -> None:
    quick = Limit("test-drain", capacity=2, refill_points=2, refill_seconds=1, lease_points=1)
    slow = Limit("test-slow", capacity=2, refill_points=1, refill_seconds=86_400, lease_points=1)
    process, other = SharedBuckets(db, quick), SharedBuckets(db, slow)
    drained, live, not_yet = _key(), _key(), _key()
    await process.take(drained, 1, scope=SYSTEM)
    await other.take(not_yet, 1, scope=SYSTEM)
    async with db.transaction(SYSTEM) as conn:  # untouched for an hour
        await conn.execute(
            sql(
                "UPDATE limit_bucket SET updated_at = updated_at - interval '1 hour'"
                " WHERE name IN (:drained, :not_yet)"
            ),
            {"drained": f"test-drain:{drained}", "not_yet": f"test-slow:{not_yet}"},
        )
    await process.take(live, 1, scope=SYSTEM)

    await process.forget_drained(SYSTEM)

    async with db.transaction(SYSTEM) as conn:
        names = set(
            (
                await conn.execute(sql("SELECT name FROM limit_bucket WHERE name LIKE 'test-%'"))
            ).scalars()
        )
    assert f"test-drain:{live}" in names
    assert f"test-drain:{drained}" not in names
    assert f"test-slow:{not_yet}" in names  # another limit's, which takes a day to drain


async def test_a_callers_lease_owns_its_row_and_no_other_caller_sees_it(db: Database) -> None:
    process = SharedBuckets(db, SMALL)
    mine, theirs = _key(), _key()
    await process.take(mine, 1, scope=RowScope(kind="PARTNER", partner_id=1, client_id=mine))
    await process.take(theirs, 1, scope=RowScope(kind="PARTNER", partner_id=2, client_id=theirs))
    await process.take("10.0.0.1", 1, scope=SYSTEM)  # no caller: the system's row

    async def visible(scope: Scope) -> set[str]:
        async with db.transaction(scope) as conn:
            return set((await conn.execute(sql("SELECT name FROM limit_bucket"))).scalars())

    seen_by_me = await visible(RowScope(kind="PARTNER", partner_id=1, client_id=mine))
    seen_by_operator = await visible(RowScope(kind="OPERATOR", client_id="some-operator"))
    seen_by_system = await visible(SYSTEM)

    assert seen_by_me == {f"test:{mine}"}
    # An operator reads every bucket (decision 0009: an operator sees everything).
    assert {f"test:{mine}", f"test:{theirs}", "test:10.0.0.1"} <= seen_by_operator
    assert {f"test:{mine}", f"test:{theirs}", "test:10.0.0.1"} <= seen_by_system
