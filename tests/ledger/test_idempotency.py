"""Worked examples: idempotency keys, unique per client."""

from __future__ import annotations

import pytest

from exchange import ledger
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from tests.conftest import NOW, Factory


async def test_a_replay_returns_the_original_entry_and_moves_nothing(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    first = await make.earn(coffee, alice, 100, key="purchase-1")

    replay = await make.earn(coffee, alice, 100, key="purchase-1")

    assert (replay.entry_id, replay.replayed, first.replayed) == (first.entry_id, True, False)
    assert (await make.wallet(alice)).balance == 100


async def test_the_same_key_with_a_different_request_is_refused(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 100, key="purchase-2")

    with pytest.raises(DomainError) as different_points:
        await make.earn(coffee, alice, 101, key="purchase-2")
    with pytest.raises(DomainError) as different_operation:
        await make.redeem(coffee, alice, 100, key="purchase-2")

    assert different_points.value.code == ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert different_operation.value.code == ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert (await make.wallet(alice)).balance == 100


async def test_keys_are_scoped_to_the_client(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 100, key="shared-key")

    async with make.db.transaction(SYSTEM) as conn:
        other = await ledger.earn(
            conn,
            client_id="another-client",
            partner_id=coffee,
            request=ledger.EarnRequest(idempotency_key="shared-key", member_id=alice, points=100),
            now=NOW,
        )

    assert other.replayed is False
    assert (await make.wallet(alice)).balance == 200


async def test_a_failed_request_leaves_its_key_free_for_a_retry(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()

    with pytest.raises(DomainError):
        await make.redeem(coffee, alice, 50, key="checkout-9")
    await make.earn(coffee, alice, 80)
    retried = await make.redeem(coffee, alice, 50, key="checkout-9")

    assert (retried.replayed, retried.wallet_balance) == (False, 30)


@pytest.mark.parametrize("key", ["", "   ", "k" * 201])
async def test_an_empty_or_oversized_key_is_invalid(make: Factory, key: str) -> None:
    coffee = await make.partner()
    alice = await make.member()

    with pytest.raises(DomainError) as error:
        await make.earn(coffee, alice, 10, key=key)

    assert (error.value.code, error.value.field) == (ErrorCode.INVALID_INPUT, ["idempotencyKey"])


async def test_a_replay_days_later_still_returns_the_original(make: Factory) -> None:
    from datetime import timedelta

    coffee = await make.partner()
    alice = await make.member()
    earned = await make.earn(coffee, alice, 100, key="late-earn")
    redeemed = await make.redeem(coffee, alice, 10, key="late-redeem")
    later = NOW + timedelta(days=3)

    earn_again = await make.earn(coffee, alice, 100, key="late-earn", now=later)
    redeem_again = await make.redeem(coffee, alice, 10, key="late-redeem", now=later)

    assert (earn_again.entry_id, earn_again.replayed) == (earned.entry_id, True)
    assert (redeem_again.entry_id, redeem_again.replayed) == (redeemed.entry_id, True)
    assert (await make.wallet(alice)).balance == 90
