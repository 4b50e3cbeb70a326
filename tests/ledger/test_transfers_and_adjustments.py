"""Worked examples: gifting points between members, and operator adjustments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exchange import ledger
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from tests.conftest import NOW, Factory
from tests.ledger.helpers import lots, postings


async def _transfer(make: Factory, sender: int, recipient: int, points: int):  # type: ignore[no-untyped-def]
    async with make.db.transaction(SYSTEM) as conn:
        return await ledger.transfer(
            conn,
            client_id=make.client_id,
            request=ledger.TransferRequest(
                idempotency_key=make.key(),
                from_member_id=sender,
                to_member_id=recipient,
                points=points,
            ),
            now=NOW,
        )


async def test_transfer_moves_lots_with_their_issuer_and_expiry(make: Factory) -> None:
    coffee = await make.partner()
    cinema = await make.partner()
    alice = await make.member()
    bob = await make.member()
    await make.earn(coffee, alice, 30, expires_at=NOW + timedelta(days=10))
    await make.earn(cinema, alice, 50, expires_at=NOW + timedelta(days=40))

    result = await _transfer(make, alice, bob, 45)

    assert result.wallet_balance == 35
    assert (await make.wallet(bob)).balance == 45
    assert await postings(make.db, result.entry_id) == [
        ("MEMBER_WALLET", -45),
        ("MEMBER_WALLET", 45),
    ]
    received = [
        (lot.issuer_partner_id, lot.amount, lot.expires_at, lot.origin)
        for lot in await lots(make.db, bob)
    ]
    assert received == [
        (coffee, 30, NOW + timedelta(days=10), "TRANSFER"),
        (cinema, 15, NOW + timedelta(days=40), "TRANSFER"),
    ]


async def test_transfer_needs_the_points_and_a_real_recipient(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 10)

    with pytest.raises(DomainError) as short:
        await _transfer(make, alice, await make.member(), 11)
    with pytest.raises(DomainError) as nobody:
        await _transfer(make, alice, 999_999_999, 5)
    with pytest.raises(DomainError) as self_gift:
        await _transfer(make, alice, alice, 5)

    assert short.value.code == ErrorCode.INSUFFICIENT_POINTS
    assert nobody.value.code == ErrorCode.NOT_FOUND
    assert self_gift.value.code == ErrorCode.INVALID_INPUT
    assert (await make.wallet(alice)).balance == 10


async def test_adjustments_credit_and_debit_against_the_coalition(make: Factory) -> None:
    alice = await make.member()

    async with make.db.transaction(SYSTEM) as conn:
        credit = await ledger.adjust(
            conn,
            client_id="operator",
            request=ledger.AdjustRequest(
                idempotency_key=make.key(),
                member_id=alice,
                points=25,
                reason="goodwill after outage",
            ),
            now=NOW,
        )
        debit = await ledger.adjust(
            conn,
            client_id="operator",
            request=ledger.AdjustRequest(
                idempotency_key=make.key(), member_id=alice, points=-5, reason="duplicate goodwill"
            ),
            now=NOW,
        )

    assert await postings(make.db, credit.entry_id) == [
        ("MEMBER_WALLET", 25),
        ("COALITION_ADJUSTMENTS", -25),
    ]
    assert await postings(make.db, debit.entry_id) == [
        ("MEMBER_WALLET", -5),
        ("COALITION_ADJUSTMENTS", 5),
    ]
    [lot] = await lots(make.db, alice)
    assert (lot.issuer_partner_id, lot.origin, lot.remaining) == (None, "ADJUSTMENT", 20)


async def test_an_adjustment_needs_a_reason(make: Factory) -> None:
    alice = await make.member()

    with pytest.raises(DomainError) as error:
        async with make.db.transaction(SYSTEM) as conn:
            await ledger.adjust(
                conn,
                client_id="operator",
                request=ledger.AdjustRequest(
                    idempotency_key=make.key(), member_id=alice, points=5, reason=""
                ),
                now=NOW,
            )

    assert error.value.field == ["reason"]
