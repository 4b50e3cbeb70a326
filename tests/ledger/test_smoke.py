from tests.conftest import Factory


async def test_earn_then_redeem_moves_points(make: Factory) -> None:
    partner = await make.partner()
    member = await make.member()
    earned = await make.earn(partner, member, 100)
    assert earned.wallet_balance == 100
    redeemed = await make.redeem(partner, member, 30)
    assert redeemed.wallet_balance == 70
    wallet = await make.wallet(member)
    assert wallet.balance == 70
