"""Worked examples: partner policy flags the ledger applies."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exchange import ledger
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.ledger.models import PartnerPolicy
from tests.conftest import NOW, Factory
from tests.ledger.helpers import lots


async def test_issuance_stops_at_the_credit_limit_on_outstanding_points(make: Factory) -> None:
    grocer = await make.partner(PartnerPolicy(credit_limit_points=1_000))
    alice = await make.member()
    await make.earn(grocer, alice, 900)

    with pytest.raises(DomainError) as error:
        await make.earn(grocer, alice, 101)
    assert error.value.code == ErrorCode.LIMIT_EXCEEDED

    # Redeeming reduces what is outstanding, which makes room again.
    await make.redeem(grocer, alice, 200)
    await make.earn(grocer, alice, 300)
    assert (await make.wallet(alice)).balance == 1_000


async def test_a_policy_change_applies_to_later_earns(make: Factory) -> None:
    coffee = await make.partner(PartnerPolicy(points_lifetime_days=30))
    alice = await make.member()
    await make.earn(coffee, alice, 10)

    async with make.db.transaction(SYSTEM) as conn:
        await ledger.set_partner_policy(
            conn, partner_id=coffee, policy=PartnerPolicy(points_lifetime_days=90)
        )
    await make.earn(coffee, alice, 10)

    assert [lot.expires_at for lot in await lots(make.db, alice)] == [
        NOW + timedelta(days=30),
        NOW + timedelta(days=90),
    ]
