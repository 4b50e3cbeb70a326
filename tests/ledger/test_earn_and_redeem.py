"""Worked examples: earning and redeeming points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exchange.kit.errors import DomainError, ErrorCode
from exchange.ledger.models import PartnerPolicy
from tests.conftest import NOW, Factory
from tests.ledger.helpers import consumptions, lots, partner_balance, postings


async def test_earn_credits_the_wallet_debits_the_partner_and_creates_a_lot(
    make: Factory,
) -> None:
    coffee = await make.partner(PartnerPolicy(points_lifetime_days=365))
    alice = await make.member()

    result = await make.earn(coffee, alice, 120, reference="receipt-1")

    assert result.wallet_balance == 120
    assert await postings(make.db, result.entry_id) == [
        ("MEMBER_WALLET", 120),
        ("PARTNER_ISSUED", -120),
    ]
    [lot] = await lots(make.db, alice)
    assert (lot.issuer_partner_id, lot.amount, lot.remaining) == (coffee, 120, 120)
    assert lot.expires_at == NOW + timedelta(days=365)
    assert await partner_balance(make.db, coffee, "PARTNER_ISSUED") == -120


async def test_earn_takes_a_per_request_expiry(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    expires_at = datetime(2027, 1, 31, tzinfo=UTC)

    await make.earn(coffee, alice, 10, expires_at=expires_at)

    [lot] = await lots(make.db, alice)
    assert lot.expires_at == expires_at


async def test_earn_refuses_an_expiry_in_the_past(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()

    with pytest.raises(DomainError) as error:
        await make.earn(coffee, alice, 10, expires_at=NOW - timedelta(days=1))

    assert error.value.code == ErrorCode.INVALID_INPUT
    assert error.value.field == ["expiresAt"]
    assert (await make.wallet(alice)).balance == 0


@pytest.mark.parametrize("points", [0, -5, 10**13, True, 1.5, "10"])
async def test_earn_refuses_points_that_are_not_a_positive_whole_number(
    make: Factory, points: object
) -> None:
    coffee = await make.partner()
    alice = await make.member()

    with pytest.raises(DomainError) as error:
        await make.earn(coffee, alice, points)  # type: ignore[arg-type]

    assert error.value.code == ErrorCode.INVALID_INPUT
    assert error.value.field == ["points"]
    assert (await make.wallet(alice)).balance == 0


async def test_earn_for_an_unknown_member_or_partner_is_not_found(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()

    with pytest.raises(DomainError) as unknown_member:
        await make.earn(coffee, 999_999_999, 10)
    with pytest.raises(DomainError) as unknown_partner:
        await make.earn(987_654_321, alice, 10)

    assert unknown_member.value.code == ErrorCode.NOT_FOUND
    assert unknown_partner.value.code == ErrorCode.NOT_FOUND


async def test_redeem_consumes_lots_oldest_expiry_first_and_records_the_redeemer(
    make: Factory,
) -> None:
    coffee = await make.partner()
    cinema = await make.partner()
    alice = await make.member()
    # Earned later but expiring sooner: the cinema lot must be spent first.
    await make.earn(coffee, alice, 100, expires_at=NOW + timedelta(days=300))
    await make.earn(cinema, alice, 50, expires_at=NOW + timedelta(days=30))

    result = await make.redeem(cinema, alice, 70)

    # 70 = all 50 of the cinema lot + 20 of the coffee lot; 150 - 70 = 80 left.
    assert result.wallet_balance == 80
    assert await postings(make.db, result.entry_id) == [
        ("MEMBER_WALLET", -70),
        ("PARTNER_REDEEMED", 70),
    ]
    assert await consumptions(make.db, result.entry_id) == [
        ("REDEEM", 50, cinema),
        ("REDEEM", 20, cinema),
    ]
    remaining = {lot.issuer_partner_id: lot.remaining for lot in await lots(make.db, alice)}
    assert remaining == {coffee: 80, cinema: 0}
    assert await partner_balance(make.db, cinema, "PARTNER_REDEEMED") == 70


async def test_redeem_more_than_the_wallet_holds_fails_and_moves_nothing(
    make: Factory,
) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 40)

    with pytest.raises(DomainError) as error:
        await make.redeem(coffee, alice, 41)

    assert error.value.code == ErrorCode.INSUFFICIENT_POINTS
    assert (await make.wallet(alice)).balance == 40
    assert await partner_balance(make.db, coffee, "PARTNER_REDEEMED") == 0


async def test_redeem_does_not_spend_expired_points(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 30, expires_at=NOW + timedelta(days=1))
    await make.earn(coffee, alice, 20, expires_at=NOW + timedelta(days=90))
    later = NOW + timedelta(days=2)

    with pytest.raises(DomainError) as error:
        await make.redeem(coffee, alice, 25, now=later)
    assert error.value.code == ErrorCode.INSUFFICIENT_POINTS

    # The first lot expired before the spend: it is swept into breakage on the way.
    result = await make.redeem(coffee, alice, 15, now=later)
    assert result.wallet_balance == 5
    assert [lot.remaining for lot in await lots(make.db, alice)] == [0, 5]


async def test_wallet_breaks_the_balance_down_by_issuing_partner(make: Factory) -> None:
    coffee = await make.partner()
    cinema = await make.partner()
    alice = await make.member()
    await make.earn(coffee, alice, 100)
    await make.earn(cinema, alice, 40)
    await make.redeem(
        cinema,
        alice,
        30,
    )

    wallet = await make.wallet(alice)

    # Lots expire in the same order (same lifetime, earned in order): coffee's go first.
    assert wallet.balance == 110
    assert {b.issuer_partner_id: b.points for b in wallet.by_issuer} == {coffee: 70, cinema: 40}


async def test_a_plain_earn_is_one_statement_and_a_replay_still_replays(make: Factory) -> None:
    coffee = await make.partner()
    alice = await make.member()
    with make.db.watching() as statements:
        first = await make.earn(coffee, alice, 40, key="k1")
        plain = len([statement for statement in statements if statement != "BEGIN"])
        again = await make.earn(coffee, alice, 40, key="k1")

    assert plain == 1
    assert again.replayed
    assert again.entry_id == first.entry_id
    assert await partner_balance(make.db, coffee, "PARTNER_ISSUED") == -40
    assert [(lot.amount, lot.remaining) for lot in await lots(make.db, alice)] == [(40, 40)]
