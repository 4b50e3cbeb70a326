"""Worked examples: holds at the point of sale — hold, capture (full or partial),
release, and the automatic release of an expired hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from exchange import ledger
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.ledger.models import EntryResult
from tests.conftest import NOW, Factory
from tests.ledger.helpers import consumptions, lots, partner_balance, postings


async def _hold(make: Factory, partner: int, member: int, points: int, **kw: Any) -> EntryResult:
    now = kw.pop("now", NOW)
    async with make.db.transaction(SYSTEM) as conn:
        return await ledger.hold(
            conn,
            client_id=make.client_id,
            partner_id=partner,
            request=ledger.HoldRequest(make.key(), member, points, **kw),
            now=now,
        )


async def _capture(make: Factory, partner: int, hold_id: int, **kw: Any) -> EntryResult:
    now = kw.pop("now", NOW)
    async with make.db.transaction(SYSTEM) as conn:
        return await ledger.capture(
            conn,
            client_id=make.client_id,
            partner_id=partner,
            request=ledger.CaptureRequest(make.key(), hold_id, **kw),
            now=now,
        )


async def test_hold_moves_points_from_available_to_held(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)

    result = await _hold(make, cinema, alice, 60)

    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held, wallet.balance) == (40, 60, 100)
    assert await postings(make.db, result.entry_id) == [("MEMBER_WALLET", -60), ("MEMBER_HELD", 60)]
    assert await consumptions(make.db, result.entry_id) == [("HOLD", 60, None)]
    hold = await ledger_hold(make, result.hold_id)
    assert (hold.status, hold.points, hold.expires_at) == (
        "ACTIVE",
        60,
        NOW + timedelta(minutes=15),
    )


async def ledger_hold(make: Factory, hold_id: int | None):  # type: ignore[no-untyped-def]
    assert hold_id is not None
    async with make.db.transaction(SYSTEM) as conn:
        return await ledger.get_hold(conn, hold_id=hold_id)


async def test_full_capture_turns_the_hold_into_a_redemption(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    held = await _hold(make, cinema, alice, 60)

    captured = await _capture(make, cinema, held.hold_id)

    assert captured.points == 60
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (40, 0)
    assert await postings(make.db, captured.entry_id) == [
        ("MEMBER_HELD", -60),
        ("PARTNER_REDEEMED", 60),
    ]
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 60
    assert (await ledger_hold(make, held.hold_id)).status == "CAPTURED"


async def test_partial_capture_redeems_part_and_returns_the_rest_to_the_lots(
    make: Factory,
) -> None:
    coffee = await make.partner()
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 50, expires_at=NOW + timedelta(days=10))
    await make.earn(cinema, alice, 50, expires_at=NOW + timedelta(days=20))
    held = await _hold(make, cinema, alice, 80)  # 50 coffee + 30 cinema reserved

    captured = await _capture(make, cinema, held.hold_id, points=55)

    # Captured oldest expiry first: 50 coffee + 5 cinema; 25 cinema points go back.
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held, wallet.balance) == (45, 0, 45)
    assert await postings(make.db, captured.entry_id) == [
        ("MEMBER_HELD", -80),
        ("MEMBER_WALLET", 25),
        ("PARTNER_REDEEMED", 55),
    ]
    redeemed = [c for c in await consumptions(make.db, captured.entry_id) if c[0] == "REDEEM"]
    assert redeemed == [("REDEEM", 50, cinema), ("REDEEM", 5, cinema)]
    assert [lot.remaining for lot in await lots(make.db, alice)] == [0, 45]
    hold = await ledger_hold(make, held.hold_id)
    assert (hold.status, hold.captured_points) == ("CAPTURED", 55)


async def test_capture_more_than_the_hold_is_invalid(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    held = await _hold(make, cinema, alice, 30)

    with pytest.raises(DomainError) as error:
        await _capture(make, cinema, held.hold_id, points=31)

    assert error.value.code == ErrorCode.INVALID_INPUT
    assert (await make.wallet(alice)).held == 30


async def test_release_returns_every_held_point(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    held = await _hold(make, cinema, alice, 70)

    async with make.db.transaction(SYSTEM) as conn:
        released = await ledger.release(conn, partner_id=cinema, hold_id=held.hold_id, now=NOW)

    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (100, 0)
    assert await postings(make.db, released.entry_id) == [
        ("MEMBER_HELD", -70),
        ("MEMBER_WALLET", 70),
    ]
    assert [lot.remaining for lot in await lots(make.db, alice)] == [100]
    assert (await ledger_hold(make, held.hold_id)).status == "RELEASED"


async def test_a_closed_hold_can_not_be_captured_or_released_again(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    held = await _hold(make, cinema, alice, 10)
    await _capture(make, cinema, held.hold_id)

    with pytest.raises(DomainError) as capture_again:
        await _capture(make, cinema, held.hold_id)
    with pytest.raises(DomainError) as release_after:
        async with make.db.transaction(SYSTEM) as conn:
            await ledger.release(conn, partner_id=cinema, hold_id=held.hold_id, now=NOW)

    assert capture_again.value.code == ErrorCode.HOLD_NOT_ACTIVE
    assert release_after.value.code == ErrorCode.HOLD_NOT_ACTIVE


async def test_another_partner_can_not_see_or_capture_a_hold(make: Factory) -> None:
    cinema = await make.partner()
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    held = await _hold(make, cinema, alice, 10)

    with pytest.raises(DomainError) as error:
        await _capture(make, coffee, held.hold_id)

    assert error.value.code == ErrorCode.NOT_FOUND


async def test_an_expired_hold_can_not_be_captured_and_is_released_by_the_sweep(
    make: Factory,
) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    held = await _hold(make, cinema, alice, 40, ttl_seconds=60)
    later = NOW + timedelta(seconds=61)

    with pytest.raises(DomainError) as error:
        await _capture(make, cinema, held.hold_id, now=later)
    assert error.value.code == ErrorCode.HOLD_NOT_ACTIVE

    async with make.db.transaction(SYSTEM) as conn:
        released = await ledger.release_holds_batch(conn, as_of=later)

    assert released >= 1
    wallet = await make.wallet(alice)
    assert (wallet.available, wallet.held) == (100, 0)
    assert (await ledger_hold(make, held.hold_id)).status == "EXPIRED"


async def test_hold_refuses_more_than_available(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    await _hold(make, cinema, alice, 80)

    with pytest.raises(DomainError) as error:
        await _hold(make, cinema, alice, 21)

    assert error.value.code == ErrorCode.INSUFFICIENT_POINTS
    assert (await make.wallet(alice)).held == 80
