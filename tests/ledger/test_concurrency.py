"""Concurrency, with committed transactions: each operation runs in its own unit of work
on its own connection, all at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from exchange import ledger
from exchange.kit.errors import DomainError, ErrorCode
from exchange.ledger.models import EntryResult, PartnerPolicy
from tests.conftest import NOW, Factory
from tests.ledger.helpers import lots


async def _all(make: Factory, calls: list[Callable[[Any], Awaitable[EntryResult]]]):  # type: ignore[no-untyped-def]
    """Run each call in its own committed transaction, concurrently; results or errors."""

    async def one(call: Callable[[Any], Awaitable[EntryResult]]) -> EntryResult | DomainError:
        try:
            async with make.db.transaction() as conn:
                return await call(conn)
        except DomainError as error:
            return error

    return await asyncio.gather(*(one(call) for call in calls))


def _codes(results: list[Any]) -> list[ErrorCode]:
    return [r.code for r in results if isinstance(r, DomainError)]


async def test_concurrent_redemptions_never_overdraw_a_wallet(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 95)

    results = await _all(
        make,
        [
            lambda conn, i=i: ledger.redeem(
                conn,
                client_id=make.client_id,
                idempotency_key=f"r-{i}-{alice}",
                partner_id=cinema,
                member_id=alice,
                points=10,
                now=NOW,
            )
            for i in range(20)
        ],
    )

    succeeded = [r for r in results if isinstance(r, EntryResult)]
    assert len(succeeded) == 9  # 9 x 10 = 90 of 95
    assert _codes(results) == [ErrorCode.INSUFFICIENT_POINTS] * 11
    assert (await make.wallet(alice)).balance == 5
    assert sum(lot.remaining for lot in await lots(make.db, alice)) == 5


async def test_concurrent_identical_requests_have_one_effect(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()

    earns = await _all(
        make,
        [
            lambda conn: ledger.earn(
                conn,
                client_id=make.client_id,
                idempotency_key=f"same-earn-{alice}",
                partner_id=coffee,
                member_id=alice,
                points=70,
                now=NOW,
            )
            for _ in range(20)
        ],
    )
    redeems = await _all(
        make,
        [
            lambda conn: ledger.redeem(
                conn,
                client_id=make.client_id,
                idempotency_key=f"same-redeem-{alice}",
                partner_id=coffee,
                member_id=alice,
                points=30,
                now=NOW,
            )
            for _ in range(20)
        ],
    )

    for results in (earns, redeems):
        assert all(isinstance(r, EntryResult) for r in results)
        assert len({r.entry_id for r in results}) == 1
        assert sum(not r.replayed for r in results) == 1
    assert (await make.wallet(alice)).balance == 40


async def test_concurrent_requests_reusing_a_key_for_different_input_have_one_effect(
    make: Factory,
) -> None:
    coffee = await make.partner()
    alice = await make.member()

    results = await _all(
        make,
        [
            lambda conn, points=points: ledger.earn(
                conn,
                client_id=make.client_id,
                idempotency_key=f"contested-{alice}",
                partner_id=coffee,
                member_id=alice,
                points=points,
                now=NOW,
            )
            for points in range(1, 11)
        ],
    )

    winners = [r for r in results if isinstance(r, EntryResult)]
    assert len(winners) == 1
    assert _codes(results) == [ErrorCode.IDEMPOTENCY_KEY_REUSED] * 9
    assert (await make.wallet(alice)).balance == winners[0].points


async def test_concurrent_earns_of_one_partner_spread_over_shard_rows(make: Factory) -> None:
    coffee = await make.partner()
    members = [await make.member() for _ in range(40)]

    results = await _all(
        make,
        [
            lambda conn, i=i: ledger.earn(
                conn,
                client_id=make.client_id,
                idempotency_key=f"bulk-{coffee}-{i}",
                partner_id=coffee,
                member_id=members[i % 40],
                points=5,
                now=NOW,
            )
            for i in range(200)
        ],
    )

    assert all(isinstance(r, EntryResult) for r in results)
    async with make.db.transaction() as conn:
        shards = (
            (
                await conn.execute(
                    text(
                        "SELECT s.balance FROM ledger_account_shard s JOIN ledger_account a"
                        " ON a.id = s.account_id WHERE a.partner_id = :p"
                        " AND a.kind = 'PARTNER_ISSUED'"
                    ),
                    {"p": coffee},
                )
            )
            .scalars()
            .all()
        )
    assert sum(shards) == -1_000
    assert sum(1 for balance in shards if balance != 0) > 1


async def test_opposite_transfers_between_two_members_do_not_deadlock(make: Factory) -> None:
    coffee = await make.partner()
    alice, bob = await make.member(), await make.member()
    await make.earn(coffee, alice, 500)
    await make.earn(coffee, bob, 500)

    results = await _all(
        make,
        [
            lambda conn, i=i: ledger.transfer(
                conn,
                client_id=make.client_id,
                idempotency_key=f"gift-{alice}-{i}",
                from_member_id=alice if i % 2 else bob,
                to_member_id=bob if i % 2 else alice,
                points=7,
                now=NOW,
            )
            for i in range(30)
        ],
    )

    assert all(isinstance(r, EntryResult) for r in results)
    total = (await make.wallet(alice)).balance + (await make.wallet(bob)).balance
    assert total == 1_000


async def test_a_hold_is_either_captured_or_released_never_both(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    async with make.db.transaction() as conn:
        held = await ledger.hold(
            conn,
            client_id=make.client_id,
            idempotency_key=make.key(),
            partner_id=cinema,
            member_id=alice,
            points=40,
            now=NOW,
        )
    hold_id = held.hold_id
    assert hold_id is not None

    results = await _all(
        make,
        [
            lambda conn: ledger.capture(
                conn,
                client_id=make.client_id,
                idempotency_key=make.key(),
                partner_id=cinema,
                hold_id=hold_id,
                now=NOW,
            ),
            lambda conn: ledger.release(conn, partner_id=cinema, hold_id=hold_id, now=NOW),
        ]
        * 3,
    )

    assert sum(isinstance(r, EntryResult) for r in results) == 1
    assert _codes(results) == [ErrorCode.HOLD_NOT_ACTIVE] * 5
    wallet = await make.wallet(alice)
    assert wallet.held == 0
    assert wallet.available in (60, 100)


async def test_concurrent_full_reversals_restore_a_redemption_once(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    redemption = await make.redeem(cinema, alice, 80)

    results = await _all(
        make,
        [
            lambda conn, i=i: ledger.reverse(
                conn,
                client_id=make.client_id,
                idempotency_key=f"refund-{alice}-{i}",
                partner_id=cinema,
                entry_id=redemption.entry_id,
                now=NOW,
            )
            for i in range(8)
        ],
    )

    assert sum(isinstance(r, EntryResult) for r in results) == 1
    assert _codes(results) == [ErrorCode.ALREADY_REVERSED] * 7
    assert (await make.wallet(alice)).balance == 100


async def test_a_credit_limit_holds_under_concurrent_issuance(make: Factory) -> None:
    grocer = await make.partner(PartnerPolicy(credit_limit_points=1_000))
    members = [await make.member() for _ in range(5)]

    results = await _all(
        make,
        [
            lambda conn, i=i: ledger.earn(
                conn,
                client_id=make.client_id,
                idempotency_key=f"limit-{grocer}-{i}",
                partner_id=grocer,
                member_id=members[i % 5],
                points=50,
                now=NOW,
            )
            for i in range(30)
        ],
    )

    assert sum(isinstance(r, EntryResult) for r in results) == 20
    assert _codes(results) == [ErrorCode.LIMIT_EXCEEDED] * 10


async def test_concurrent_holds_and_redemptions_never_overdraw(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)

    calls: list[Callable[[Any], Awaitable[EntryResult]]] = []
    for i in range(16):
        if i % 2:
            calls.append(
                lambda conn, i=i: ledger.hold(
                    conn,
                    client_id=make.client_id,
                    idempotency_key=f"h-{alice}-{i}",
                    partner_id=cinema,
                    member_id=alice,
                    points=15,
                    now=NOW,
                )
            )
        else:
            calls.append(
                lambda conn, i=i: ledger.redeem(
                    conn,
                    client_id=make.client_id,
                    idempotency_key=f"d-{alice}-{i}",
                    partner_id=cinema,
                    member_id=alice,
                    points=15,
                    now=NOW,
                )
            )
    results = await _all(make, calls)

    succeeded = [r for r in results if isinstance(r, EntryResult)]
    assert len(succeeded) == 6  # 6 x 15 = 90 of 100
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.balance) == (10, 10 + wallet.held)
    assert wallet.held == 15 * sum(r.kind == "HOLD" for r in succeeded)
