"""Worked examples of the ledger under concurrency, with committed transactions.

Every operation runs in its own unit of work (its own pooled connection and transaction,
committed on success), and the operations of one example start together: each first
checks out its connection, then all are released at once by a barrier, so they really
contend for the same rows. A domain failure (INSUFFICIENT_POINTS, HOLD_NOT_ACTIVE...) is
an expected outcome and is collected; anything else (a deadlock, a serialization failure)
fails the example with every such error listed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from exchange.kit.db import Connection, Database, sql
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.ledger.models import EntryKind, EntryResult, PartnerPolicy
from tests.conftest import NOW, Factory
from tests.ledger.helpers import call_ledger, lots, partner_balance

Operation = Callable[[Connection], Awaitable[EntryResult]]
Outcome = EntryResult | DomainError

#: The `db` fixture's pool: 20 connections plus 20 overflow. A barrier over more
#: operations than connections would wait forever for a connection.
MAX_AT_ONCE = 40


# --- running operations concurrently --------------------------------------------------


async def _attempt(
    db: Database,
    operation: Operation,
    unexpected: list[str],
    barrier: asyncio.Barrier | None = None,
) -> Outcome | None:
    try:
        async with db.transaction(SYSTEM) as conn:
            if barrier is not None:
                await barrier.wait()
            return await operation(conn)
    except DomainError as error:
        return error
    except Exception as error:
        unexpected.append(_describe(operation, error))
        if barrier is not None:
            await barrier.abort()
        return None


def _describe(operation: Operation, error: BaseException) -> str:
    """One line per unexpected error: which operation, the error, the statement it hit
    and PostgreSQL's detail (for a deadlock: who waited for whom)."""
    kind = operation.__qualname__.split(".")[0]
    lines = [f"{kind}: {type(error).__name__}: {str(error).splitlines()[0]}"]
    statement = getattr(error, "statement", None)
    if statement:
        lines.append("    at: " + " ".join(str(statement).split())[:160])
    cause: BaseException | None = error
    while cause is not None:
        detail = getattr(cause, "detail", None)
        if detail:
            lines.append("    " + " ".join(str(detail).split()))
            break
        cause = cause.__cause__
    return "\n".join(lines)


def _fail_on(unexpected: list[str], of: int) -> None:
    assert not unexpected, (
        f"{len(unexpected)} of {of} operations failed unexpectedly:\n" + "\n".join(unexpected)
    )


async def at_once(db: Database, operations: Sequence[Operation]) -> list[Outcome]:
    """Run each operation in its own committed transaction, all released together once
    every one holds its connection. Outcomes in the order of the operations."""
    assert len(operations) <= MAX_AT_ONCE, "more operations than pooled connections"
    barrier = asyncio.Barrier(len(operations))
    unexpected: list[str] = []
    outcomes = await asyncio.gather(
        *(_attempt(db, operation, unexpected, barrier) for operation in operations)
    )
    _fail_on(unexpected, len(operations))
    return [outcome for outcome in outcomes if outcome is not None]


async def by_workers(db: Database, operations: Sequence[Operation], workers: int) -> list[Outcome]:
    """Run the operations through ``workers`` concurrent tasks, each operation in its own
    committed transaction. Outcomes in the order of the operations."""
    assert workers <= MAX_AT_ONCE
    outcomes: list[Outcome | None] = [None] * len(operations)
    unexpected: list[str] = []
    queue = iter(enumerate(operations))

    async def worker() -> None:
        for index, operation in queue:
            outcomes[index] = await _attempt(db, operation, unexpected)

    await asyncio.gather(*(worker() for _ in range(workers)))
    _fail_on(unexpected, len(operations))
    return [outcome for outcome in outcomes if outcome is not None]


def successes(outcomes: Sequence[Outcome]) -> list[EntryResult]:
    return [outcome for outcome in outcomes if isinstance(outcome, EntryResult)]


def failures(outcomes: Sequence[Outcome]) -> Counter[ErrorCode]:
    return Counter(outcome.code for outcome in outcomes if isinstance(outcome, DomainError))


# --- the operations, one unit of work each --------------------------------------------


def op(make: Factory, name: str, **fields: Any) -> Operation:
    """One ledger operation as its own unit of work: the test's client, a fresh key unless
    the test gives one (``release`` takes none), the request's fields as the test states
    them."""
    if name != "release":
        fields = {"client_id": make.client_id, "idempotency_key": make.key(), **fields}

    async def operation(conn: Connection) -> EntryResult:
        result: EntryResult = await call_ledger(conn, name, now=NOW, **fields)
        return result

    operation.__qualname__ = f"{name}.operation"
    return operation


async def held_by_active_holds(db: Database, member: int) -> int:
    async with db.transaction(SYSTEM) as conn:
        result = await conn.execute(
            sql(
                "SELECT coalesce(sum(points), 0) FROM ledger_hold"
                " WHERE member_id = :member AND status = 'ACTIVE'"
            ),
            {"member": member},
        )
        return int(result.scalar_one())


async def new_hold(make: Factory, partner: int, member: int, points: int) -> int:
    async with make.db.transaction(SYSTEM) as conn:
        result = await op(make, "hold", partner_id=partner, member_id=member, points=points)(conn)
    assert result.hold_id is not None
    return result.hold_id


# --- spending one wallet --------------------------------------------------------------


async def test_twenty_concurrent_redemptions_of_10_from_95_points_succeed_exactly_nine_times(
    make: Factory,
) -> None:
    # Given a wallet holding 95 points
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 95)

    # When 20 redemptions of 10 points each run at once
    outcomes = await at_once(
        make.db,
        [op(make, "redeem", partner_id=cinema, member_id=alice, points=10) for _ in range(20)],
    )

    # Then exactly 9 succeed, one after the other: each saw the balance the previous one
    # left, and none saw a negative balance
    redeemed = successes(outcomes)
    assert len(redeemed) == 9
    assert failures(outcomes) == {ErrorCode.INSUFFICIENT_POINTS: 11}
    assert sorted(r.wallet_balance or 0 for r in redeemed) == [5, 15, 25, 35, 45, 55, 65, 75, 85]
    # And the wallet keeps 5 points, which its lots account for exactly
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (5, 0)
    assert sum(lot.remaining for lot in await lots(make.db, alice)) == 5
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 90


async def test_concurrent_holds_and_redemptions_never_overdraw_a_wallet(make: Factory) -> None:
    # Given a wallet holding 100 points
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)

    # When 10 holds and 10 redemptions of 15 points each run at once
    operations = [
        op(make, "hold", partner_id=cinema, member_id=alice, points=15) for _ in range(10)
    ]
    operations += [
        op(make, "redeem", partner_id=cinema, member_id=alice, points=15) for _ in range(10)
    ]
    outcomes = await at_once(make.db, operations)

    # Then exactly 6 of them (90 points) succeed, each leaving a non-negative wallet
    done = successes(outcomes)
    assert len(done) == 6
    assert failures(outcomes) == {ErrorCode.INSUFFICIENT_POINTS: 14}
    assert sorted(r.wallet_balance or 0 for r in done) == [10, 25, 40, 55, 70, 85]
    # And 10 points stay available, while held equals the active holds
    holds = sum(r.kind == EntryKind.HOLD for r in done)
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (10, 15 * holds)
    assert await held_by_active_holds(make.db, alice) == 15 * holds
    assert sum(lot.remaining for lot in await lots(make.db, alice)) == 10


async def test_transfers_and_redemptions_racing_on_one_sender_never_overdraw_it(
    make: Factory,
) -> None:
    # Given a sender holding 100 points and an empty recipient
    cinema = await make.partner()
    alice, bob = await make.member(), await make.member()
    await make.earn(cinema, alice, 100)

    # When 15 transfers and 15 redemptions of 10 points from the sender run at once
    operations = [
        op(make, "transfer", from_member_id=alice, to_member_id=bob, points=10) for _ in range(15)
    ]
    operations += [
        op(make, "redeem", partner_id=cinema, member_id=alice, points=10) for _ in range(15)
    ]
    outcomes = await at_once(make.db, operations)

    # Then exactly 10 succeed and the sender ends at zero, never below
    done = successes(outcomes)
    assert len(done) == 10
    assert failures(outcomes) == {ErrorCode.INSUFFICIENT_POINTS: 20}
    assert sorted(r.wallet_balance or 0 for r in done) == list(range(0, 100, 10))
    # And the recipient got exactly what the successful transfers sent
    transferred = 10 * sum(r.kind == EntryKind.TRANSFER for r in done)
    assert (await make.wallet(alice)).balance == 0
    assert (await make.wallet(bob)).balance == transferred
    assert sum(lot.remaining for lot in await lots(make.db, bob)) == transferred


async def test_concurrent_redemptions_sweep_an_expired_lot_into_breakage_only_once(
    make: Factory,
) -> None:
    # Given a wallet of 100 points, of which a lot of 40 expired yesterday (not yet swept)
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(
        cinema, alice, 40, now=NOW - timedelta(days=30), expires_at=NOW - timedelta(days=1)
    )
    await make.earn(cinema, alice, 60)

    # When 10 redemptions of 10 points run at once
    outcomes = await at_once(
        make.db,
        [op(make, "redeem", partner_id=cinema, member_id=alice, points=10) for _ in range(10)],
    )

    # Then only the 60 live points could be redeemed
    assert len(successes(outcomes)) == 6
    assert failures(outcomes) == {ErrorCode.INSUFFICIENT_POINTS: 4}
    assert (await make.wallet(alice)).balance == 0
    # And the expired 40 went to breakage in exactly one EXPIRY entry
    async with make.db.transaction(SYSTEM) as conn:
        expiries = (
            await conn.execute(
                sql("SELECT points FROM ledger_entry WHERE kind = 'EXPIRY' AND member_id = :m"),
                {"m": alice},
            )
        ).scalars()
        assert list(expiries) == [40]


# --- idempotency under concurrency ----------------------------------------------------


async def test_twenty_concurrent_identical_earns_credit_the_wallet_once(make: Factory) -> None:
    # Given a member and one earn request, sent 20 times at once with the same key
    coffee = await make.partner()
    alice = await make.member()
    key = make.key()

    outcomes = await at_once(
        make.db,
        [
            op(make, "earn", partner_id=coffee, member_id=alice, points=70, idempotency_key=key)
            for _ in range(20)
        ],
    )

    # Then all 20 answer with the same entry, 19 of them as replays
    results = successes(outcomes)
    assert len(results) == 20
    assert len({r.entry_id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 19
    # And the wallet was credited once
    assert (await make.wallet(alice)).balance == 70
    assert await partner_balance(make.db, coffee, "PARTNER_ISSUED") == -70


async def test_twenty_concurrent_identical_redemptions_debit_the_wallet_once(
    make: Factory,
) -> None:
    # Given a wallet of 100 points, and one redemption of 30 sent 20 times with one key
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 100)
    key = make.key()

    outcomes = await at_once(
        make.db,
        [
            op(make, "redeem", partner_id=coffee, member_id=alice, points=30, idempotency_key=key)
            for _ in range(20)
        ],
    )

    # Then all 20 answer with the same entry, 19 of them as replays
    results = successes(outcomes)
    assert len(results) == 20
    assert len({r.entry_id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 19
    # And the wallet was debited once
    assert (await make.wallet(alice)).balance == 70
    assert await partner_balance(make.db, coffee, "PARTNER_REDEEMED") == 30


async def test_ten_concurrent_identical_holds_reserve_the_points_once(make: Factory) -> None:
    # Given a wallet of 100 points, and one hold of 40 sent 10 times with one key
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    key = make.key()

    outcomes = await at_once(
        make.db,
        [
            op(make, "hold", partner_id=cinema, member_id=alice, points=40, idempotency_key=key)
            for _ in range(10)
        ],
    )

    # Then every answer names the same entry and the same hold
    results = successes(outcomes)
    assert len(results) == 10
    assert len({(r.entry_id, r.hold_id) for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    # And 40 points are held once
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (60, 40)


async def test_ten_concurrent_identical_transfers_move_the_points_once(make: Factory) -> None:
    # Given a sender of 100 points, and one transfer of 25 sent 10 times with one key
    coffee = await make.partner()
    alice, bob = await make.member(), await make.member()
    await make.earn(coffee, alice, 100)
    key = make.key()

    outcomes = await at_once(
        make.db,
        [
            op(
                make,
                "transfer",
                from_member_id=alice,
                to_member_id=bob,
                points=25,
                idempotency_key=key,
            )
            for _ in range(10)
        ],
    )

    # Then every answer names the same entry, and 25 points moved once
    results = successes(outcomes)
    assert len(results) == 10
    assert len({r.entry_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert ((await make.wallet(alice)).balance, (await make.wallet(bob)).balance) == (75, 25)


async def test_ten_concurrent_identical_captures_redeem_the_hold_once(make: Factory) -> None:
    # Given a hold of 40 of a wallet's 100 points, and its capture sent 10 times with one key
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    hold_id = await new_hold(make, cinema, alice, 40)
    key = make.key()

    outcomes = await at_once(
        make.db,
        [
            op(make, "capture", partner_id=cinema, hold_id=hold_id, idempotency_key=key)
            for _ in range(10)
        ],
    )

    # Then every answer names the same capture, and 40 points were redeemed once
    results = successes(outcomes)
    assert len(results) == 10
    assert len({r.entry_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (60, 0)
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 40


async def test_concurrent_requests_reusing_one_key_for_different_points_have_one_effect(
    make: Factory,
) -> None:
    # Given one key, used at once by 10 earn requests that each ask for different points
    coffee = await make.partner()
    alice = await make.member()
    key = make.key()

    outcomes = await at_once(
        make.db,
        [
            op(make, "earn", partner_id=coffee, member_id=alice, points=points, idempotency_key=key)
            for points in range(1, 11)
        ],
    )

    # Then one request wins and the 9 others are refused as a reused key
    winners = successes(outcomes)
    assert len(winners) == 1
    assert winners[0].replayed is False
    assert failures(outcomes) == {ErrorCode.IDEMPOTENCY_KEY_REUSED: 9}
    # And only the winner's points were issued
    assert (await make.wallet(alice)).balance == winners[0].points


async def test_concurrent_earn_and_redeem_reusing_one_key_have_one_effect(make: Factory) -> None:
    # Given a wallet of 100 points and one key, used at once by 5 earns and 5 redemptions
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 100)
    key = make.key()
    operations = [
        op(make, "earn", partner_id=coffee, member_id=alice, points=10, idempotency_key=key)
        for _ in range(5)
    ]
    operations += [
        op(make, "redeem", partner_id=coffee, member_id=alice, points=10, idempotency_key=key)
        for _ in range(5)
    ]

    outcomes = await at_once(make.db, operations)

    # Then the first to claim the key wins (its identical twins replay it) and the 5
    # requests of the other kind are refused
    results = successes(outcomes)
    assert len(results) == 5
    assert len({(r.entry_id, r.kind) for r in results}) == 1
    assert failures(outcomes) == {ErrorCode.IDEMPOTENCY_KEY_REUSED: 5}
    expected = 110 if results[0].kind == EntryKind.EARN else 90
    assert (await make.wallet(alice)).balance == expected


# --- one hot partner ------------------------------------------------------------------


async def test_two_hundred_concurrent_earns_of_one_partner_all_succeed_over_several_shards(
    make: Factory,
) -> None:
    # Given one partner and 40 members
    coffee = await make.partner()
    members = [await make.member() for _ in range(40)]

    # When 40 concurrent tasks issue 200 earns of 5 points, 5 to each member
    outcomes = await by_workers(
        make.db,
        [
            op(make, "earn", partner_id=coffee, member_id=members[i % 40], points=5)
            for i in range(200)
        ],
        workers=40,
    )

    # Then every earn succeeds: no deadlock, no serialization failure, no refusal
    assert len(successes(outcomes)) == 200
    # And the partner's issued balance, the sum of its shard rows, is minus what it issued,
    # spread over more than one shard row
    async with make.db.transaction(SYSTEM) as conn:
        shards = (
            await conn.execute(
                sql(
                    "SELECT s.balance FROM ledger_account_shard s"
                    " JOIN ledger_account a ON a.id = s.account_id"
                    " WHERE a.kind = 'PARTNER_ISSUED' AND a.partner_id = :partner"
                ),
                {"partner": coffee},
            )
        ).scalars()
        balances = [int(balance) for balance in shards]
    assert sum(balances) == -1_000
    assert sum(balance != 0 for balance in balances) > 1
    assert {(await make.wallet(m)).balance for m in members} == {25}


async def test_a_credit_limit_of_1000_admits_exactly_20_of_30_concurrent_earns_of_50(
    make: Factory,
) -> None:
    # Given a partner allowed 1,000 outstanding points, and 5 members
    grocer = await make.partner(PartnerPolicy(credit_limit_points=1_000))
    members = [await make.member() for _ in range(5)]

    # When 30 earns of 50 points run at once
    outcomes = await at_once(
        make.db,
        [
            op(make, "earn", partner_id=grocer, member_id=members[i % 5], points=50)
            for i in range(30)
        ],
    )

    # Then exactly 20 (1,000 points) are issued and 10 refused
    assert len(successes(outcomes)) == 20
    assert failures(outcomes) == {ErrorCode.LIMIT_EXCEEDED: 10}
    assert await partner_balance(make.db, grocer, "PARTNER_ISSUED") == -1_000
    assert sum([(await make.wallet(m)).balance for m in members]) == 1_000


# --- transfers ------------------------------------------------------------------------


async def test_opposite_transfers_between_two_members_never_deadlock_and_conserve_points(
    make: Factory,
) -> None:
    # Given two members with 500 points each
    coffee = await make.partner()
    alice, bob = await make.member(), await make.member()
    await make.earn(coffee, alice, 500)
    await make.earn(coffee, bob, 500)

    # When 20 transfers of 7 from alice to bob and 20 from bob to alice run at once
    operations = [
        op(make, "transfer", from_member_id=alice, to_member_id=bob, points=7) for _ in range(20)
    ]
    operations += [
        op(make, "transfer", from_member_id=bob, to_member_id=alice, points=7) for _ in range(20)
    ]
    outcomes = await at_once(make.db, operations)

    # Then all 40 succeed and, as much having gone each way, both end where they began
    assert len(successes(outcomes)) == 40
    assert ((await make.wallet(alice)).balance, (await make.wallet(bob)).balance) == (500, 500)
    for member in (alice, bob):
        assert sum(lot.remaining for lot in await lots(make.db, member)) == 500


async def test_transfers_around_a_ring_of_members_never_deadlock_and_conserve_points(
    make: Factory,
) -> None:
    # Given 5 members with 100 points each, in a ring
    coffee = await make.partner()
    ring = [await make.member() for _ in range(5)]
    for member in ring:
        await make.earn(coffee, member, 100)

    # When each sends 10 points to the next one 6 times, all at once
    operations = [
        op(make, "transfer", from_member_id=ring[i], to_member_id=ring[(i + 1) % 5], points=10)
        for _ in range(6)
        for i in range(5)
    ]
    outcomes = await at_once(make.db, operations)

    # Then all 30 succeed and every member ends where it began
    assert len(successes(outcomes)) == 30
    assert [(await make.wallet(m)).balance for m in ring] == [100] * 5


# --- holds ----------------------------------------------------------------------------


async def test_a_hold_captured_and_released_at_once_is_settled_exactly_once(
    make: Factory,
) -> None:
    # Given 10 holds of 10 points on a wallet of 200 points
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 200)
    holds = [await new_hold(make, cinema, alice, 10) for _ in range(10)]

    # When each hold is captured and released at the same moment
    operations = [op(make, "capture", partner_id=cinema, hold_id=h) for h in holds] + [
        op(make, "release", partner_id=cinema, hold_id=h) for h in holds
    ]
    outcomes = await at_once(make.db, operations)

    # Then, per hold, exactly one of the two succeeds and the other finds it settled
    for index, hold_id in enumerate(holds):
        pair = [outcomes[index], outcomes[index + len(holds)]]
        assert len(successes(pair)) == 1, f"hold {hold_id}: {pair}"
        assert failures(pair) == {ErrorCode.HOLD_NOT_ACTIVE: 1}, f"hold {hold_id}: {pair}"
    # And nothing stays held; captured points were redeemed, released ones came back
    captured = 10 * sum(r.kind == EntryKind.CAPTURE for r in successes(outcomes))
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (200 - captured, 0)
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == captured


async def test_new_holds_racing_releases_on_one_wallet_all_complete_without_deadlock(
    make: Factory,
) -> None:
    # Guards the lock order: hold() locks the wallet and then the held account, so a
    # release must too (it once took them the other way round and deadlocked).
    # Given a wallet of 1,000 points with 10 active holds of 20
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 1_000)
    holds = [await new_hold(make, cinema, alice, 20) for _ in range(10)]

    # When 10 new holds of 20 are placed while the 10 old ones are released
    operations = [
        op(make, "hold", partner_id=cinema, member_id=alice, points=20) for _ in range(10)
    ]
    operations += [op(make, "release", partner_id=cinema, hold_id=h) for h in holds]
    outcomes = await at_once(make.db, operations)

    # Then all 20 succeed (a deadlock would fail the example), and only the new holds hold
    assert len(successes(outcomes)) == 20
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (800, 200)
    assert await held_by_active_holds(make.db, alice) == 200


async def test_new_holds_racing_full_captures_on_one_wallet_all_complete_without_deadlock(
    make: Factory,
) -> None:
    # Guards the lock order: a full capture returns nothing to the wallet but still moves
    # lots, so it must lock the wallet before the held account and the lots, as hold() does.
    # Given a wallet of 1,000 points with 10 active holds of 20
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 1_000)
    holds = [await new_hold(make, cinema, alice, 20) for _ in range(10)]

    # When 10 new holds of 20 are placed while the 10 old ones are captured in full
    operations = [
        op(make, "hold", partner_id=cinema, member_id=alice, points=20) for _ in range(10)
    ]
    operations += [op(make, "capture", partner_id=cinema, hold_id=h) for h in holds]
    outcomes = await at_once(make.db, operations)

    # Then all 20 succeed, 200 points were redeemed and 200 are held
    assert len(successes(outcomes)) == 20
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (600, 200)
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 200


async def test_new_holds_racing_partial_captures_on_one_wallet_all_complete_without_deadlock(
    make: Factory,
) -> None:
    # Guards the lock order, as with releases: wallet first, then the held account.
    # Given a wallet of 1,000 points with 10 active holds of 20
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 1_000)
    holds = [await new_hold(make, cinema, alice, 20) for _ in range(10)]

    # When 10 new holds of 20 are placed while the old ones are captured for 5 points each
    operations = [
        op(make, "hold", partner_id=cinema, member_id=alice, points=20) for _ in range(10)
    ]
    operations += [op(make, "capture", partner_id=cinema, hold_id=h, points=5) for h in holds]
    outcomes = await at_once(make.db, operations)

    # Then all 20 succeed: 50 points redeemed, 150 back in the wallet, 200 newly held
    assert len(successes(outcomes)) == 20
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (750, 200)
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 50


# --- reversals ------------------------------------------------------------------------


async def test_concurrent_full_reversals_of_one_redemption_restore_the_wallet_once(
    make: Factory,
) -> None:
    # Given a redemption of 80 of a wallet's 100 points
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    redemption = await make.redeem(cinema, alice, 80)

    # When 8 full reversals of it, each with its own key, run at once
    outcomes = await at_once(
        make.db,
        [op(make, "reverse", partner_id=cinema, entry_id=redemption.entry_id) for _ in range(8)],
    )

    # Then exactly one reverses the 80 points, the others find nothing left to reverse
    reversed_ = successes(outcomes)
    assert [r.points for r in reversed_] == [80]
    assert failures(outcomes) == {ErrorCode.ALREADY_REVERSED: 7}
    # And the wallet was restored once
    assert (await make.wallet(alice)).balance == 100
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 0


async def test_concurrent_partial_reversals_never_reverse_more_than_was_redeemed(
    make: Factory,
) -> None:
    # Given a redemption of 80 points
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    redemption = await make.redeem(cinema, alice, 80)

    # When 8 reversals of 30 points each run at once
    outcomes = await at_once(
        make.db,
        [
            op(make, "reverse", partner_id=cinema, entry_id=redemption.entry_id, points=30)
            for _ in range(8)
        ],
    )

    # Then two of them fit (60 of 80); the rest ask for more than the 20 left
    assert len(successes(outcomes)) == 2
    assert failures(outcomes) == {ErrorCode.INVALID_INPUT: 6}
    assert (await make.wallet(alice)).balance == 80
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 20


async def test_a_refund_racing_new_redemptions_never_overdraws_and_counts_every_point(
    make: Factory,
) -> None:
    # Given a wallet left with 20 points after a redemption of 80
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    redemption = await make.redeem(cinema, alice, 80)

    # When the redemption is refunded in full while 10 new redemptions of 10 run at once
    operations = [op(make, "reverse", partner_id=cinema, entry_id=redemption.entry_id)]
    operations += [
        op(make, "redeem", partner_id=cinema, member_id=alice, points=10) for _ in range(10)
    ]
    outcomes = await at_once(make.db, operations)

    # Then the refund succeeds, and between 2 (all before it) and 10 (all after it) of the
    # redemptions do; every one saw a non-negative wallet
    assert isinstance(outcomes[0], EntryResult)
    redeemed = successes(outcomes[1:])
    assert 2 <= len(redeemed) <= 10
    assert failures(outcomes) == Counter({ErrorCode.INSUFFICIENT_POINTS: 10 - len(redeemed)})
    assert all((r.wallet_balance or 0) >= 0 for r in redeemed)
    # And the wallet and the partner's redeemed account add up
    assert (await make.wallet(alice)).balance == 100 - 10 * len(redeemed)
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 10 * len(redeemed)


async def test_concurrent_identical_full_reversals_replay_the_first_one(make: Factory) -> None:
    # Guards the order in reverse(): lock the target first, then look for a replay; looked
    # for before the lock, the duplicates would find nothing left and fail ALREADY_REVERSED.
    # Given a redemption of 80 points, and one full reversal of it sent 8 times with one key
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    redemption = await make.redeem(cinema, alice, 80)
    key = make.key()

    outcomes = await at_once(
        make.db,
        [
            op(
                make,
                "reverse",
                partner_id=cinema,
                entry_id=redemption.entry_id,
                idempotency_key=key,
            )
            for _ in range(8)
        ],
    )

    # Then, as for every other operation, all 8 answer with the one reversal, 7 replayed
    # (not ALREADY_REVERSED: a retry of the request that did reverse it must see success)
    assert failures(outcomes) == {}
    results = successes(outcomes)
    assert len({r.entry_id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 7
    assert (await make.wallet(alice)).balance == 100


async def test_an_earn_reversal_racing_a_redemption_of_the_same_points_lets_one_through(
    make: Factory,
) -> None:
    # Given 8 members who each earned 100 points
    cinema = await make.partner()
    members = [await make.member() for _ in range(8)]
    earns = [await make.earn(cinema, m, 100) for m in members]

    # When, for each, a full reversal of the earn and a redemption of all 100 run at once
    operations = [op(make, "reverse", partner_id=cinema, entry_id=e.entry_id) for e in earns]
    operations += [op(make, "redeem", partner_id=cinema, member_id=m, points=100) for m in members]
    outcomes = await at_once(make.db, operations)

    # Then, per member, exactly one succeeds and the other finds the points gone
    for index, member in enumerate(members):
        pair = [outcomes[index], outcomes[index + len(members)]]
        assert len(successes(pair)) == 1, f"member {member}: {pair}"
        assert failures(pair) == {ErrorCode.INSUFFICIENT_POINTS: 1}, f"member {member}: {pair}"
        assert (await make.wallet(member)).balance == 0
