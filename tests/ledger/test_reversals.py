"""Worked examples: reversing earns and redemptions, fully or in part."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exchange import ledger
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.ledger.models import PartnerPolicy
from tests.conftest import NOW, Factory
from tests.ledger.helpers import consumptions, lots, partner_balance, postings


async def _reverse(
    make: Factory, partner: int, entry_id: int, points: int | None = None, key: str | None = None
):  # type: ignore[no-untyped-def]
    async with make.db.transaction(SYSTEM) as conn:
        return await ledger.reverse(
            conn,
            client_id=make.client_id,
            partner_id=partner,
            request=ledger.ReverseRequest(
                idempotency_key=key or make.key(), entry_id=entry_id, points=points
            ),
            now=NOW,
        )


async def test_full_reversal_of_an_earn_takes_the_points_back(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 100)

    reversal = await _reverse(make, coffee, earned.entry_id)

    assert (reversal.kind, reversal.points, reversal.wallet_balance) == ("REVERSAL", 100, 0)
    assert await postings(make.db, reversal.entry_id) == [
        ("MEMBER_WALLET", -100),
        ("PARTNER_ISSUED", 100),
    ]
    assert await partner_balance(make.db, coffee, "PARTNER_ISSUED") == 0


async def test_partial_reversals_can_not_exceed_what_is_left(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 100)

    await _reverse(make, coffee, earned.entry_id, 30)
    with pytest.raises(DomainError) as too_much:
        await _reverse(make, coffee, earned.entry_id, 71)
    rest = await _reverse(make, coffee, earned.entry_id)  # default: all that is left
    with pytest.raises(DomainError) as again:
        await _reverse(make, coffee, earned.entry_id)

    assert too_much.value.code == ErrorCode.INVALID_INPUT
    assert rest.points == 70
    assert again.value.code == ErrorCode.ALREADY_REVERSED
    assert (await make.wallet(alice)).balance == 0


async def test_reversing_an_earn_whose_points_were_spent_fails(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 100)
    await make.redeem(coffee, alice, 90)

    with pytest.raises(DomainError) as error:
        await _reverse(make, coffee, earned.entry_id)

    assert error.value.code == ErrorCode.INSUFFICIENT_POINTS
    assert (await make.wallet(alice)).balance == 10


async def test_a_partner_allowed_to_go_negative_reverses_spent_points_into_a_debt(
    make: Factory,
) -> None:
    grocer = await make.partner(PartnerPolicy(allow_negative_reversal=True))
    alice = await make.member()
    earned = await make.earn(grocer, alice, 100)
    await make.redeem(grocer, alice, 90)

    reversal = await _reverse(make, grocer, earned.entry_id)

    # 10 left - 100 reversed = -90: the member owes the grocer 90 points.
    assert reversal.wallet_balance == -90
    [lot] = await lots(make.db, alice)
    assert lot.remaining == -90
    with pytest.raises(DomainError) as error:
        await make.redeem(grocer, alice, 1)
    assert error.value.code == ErrorCode.INSUFFICIENT_POINTS


async def test_reversing_a_redemption_restores_the_lots_it_consumed(make: Factory) -> None:
    coffee = await make.partner()
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 50, expires_at=NOW + timedelta(days=10))
    await make.earn(coffee, alice, 50, expires_at=NOW + timedelta(days=20))
    redemption = await make.redeem(cinema, alice, 80)  # 50 from lot 1, 30 from lot 2

    reversal = await _reverse(make, cinema, redemption.entry_id, 40)

    # The last consumed is given back first: 30 to lot 2, then 10 to lot 1.
    assert reversal.wallet_balance == 60
    assert [lot.remaining for lot in await lots(make.db, alice)] == [10, 50]
    assert await consumptions(make.db, reversal.entry_id) == [
        ("REDEEM", -30, cinema),
        ("REDEEM", -10, cinema),
    ]
    assert await postings(make.db, reversal.entry_id) == [
        ("MEMBER_WALLET", 40),
        ("PARTNER_REDEEMED", -40),
    ]
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 40


async def test_a_capture_is_reversible_like_a_redemption(make: Factory) -> None:
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(cinema, alice, 100)
    async with make.db.transaction(SYSTEM) as conn:
        held = await ledger.hold(
            conn,
            client_id=make.client_id,
            partner_id=cinema,
            request=ledger.HoldRequest(idempotency_key=make.key(), member_id=alice, points=60),
            now=NOW,
        )
        assert held.hold_id is not None
        captured = await ledger.capture(
            conn,
            client_id=make.client_id,
            partner_id=cinema,
            request=ledger.CaptureRequest(idempotency_key=make.key(), hold_id=held.hold_id),
            now=NOW,
        )

    reversal = await _reverse(make, cinema, captured.entry_id)

    assert reversal.wallet_balance == 100


async def test_only_the_partner_that_booked_an_entry_can_reverse_it(make: Factory) -> None:
    coffee = await make.partner()
    cinema = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 100)

    with pytest.raises(DomainError) as error:
        await _reverse(make, cinema, earned.entry_id)

    assert error.value.code == ErrorCode.NOT_FOUND


async def test_a_reversal_can_not_be_reversed(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 100)
    reversal = await _reverse(make, coffee, earned.entry_id, 10)

    with pytest.raises(DomainError) as error:
        await _reverse(make, coffee, reversal.entry_id)

    assert error.value.code == ErrorCode.NOT_REVERSIBLE


async def test_replaying_a_reversal_returns_it_even_after_the_target_is_used_up(
    make: Factory,
) -> None:
    coffee = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 100)
    first = await _reverse(make, coffee, earned.entry_id, key="refund-1")

    replay = await _reverse(make, coffee, earned.entry_id, key="refund-1")

    assert (replay.entry_id, replay.replayed) == (first.entry_id, True)
    assert (await make.wallet(alice)).balance == 0
