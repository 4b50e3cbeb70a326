"""Worked examples: DRAFT -> FINALIZED (the period closes) -> PAID, and a late entry into
a closed period settled by the next run as a labelled prior-period adjustment."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from exchange import ledger
from exchange.kit.db import Database, sql
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from settlement import service
from tests.settlement.test_runs import Period, p


async def _settle(db: Database, period: Period, start, end, now):  # type: ignore[no-untyped-def]
    async with db.transaction(SYSTEM) as conn:
        return await service.run_settlement(conn, start=start, end=end, now=now)


async def test_a_late_entry_into_a_closed_period_is_settled_next_time(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    alice = await period.member()
    await period.earn(coffee, alice, 1_000, day=5)
    january = await _settle(db, period, period.start, period.end, period.end + timedelta(days=1))
    async with db.transaction(SYSTEM) as conn:
        await service.finalize(conn, run_id=january.id, now=period.end + timedelta(days=1))
        # Booked on 20 January, but recorded on 3 February: after January closed.
        await ledger.earn(
            conn,
            client_id="settle",
            partner_id=coffee,
            request=ledger.EarnRequest(
                idempotency_key=f"{period.year}-late",
                member_id=alice,
                points=300,
                effective_at=period.at(19),
            ),
            now=period.end + timedelta(days=2),
        )
    february_end = period.end + timedelta(days=28)
    february = await _settle(db, period, period.end, february_end, february_end + timedelta(days=1))

    # January: 1000 x 0.010 = 10.00. February: nothing booked in February, but the late
    # January earn: 300 x 0.010 = 3.00, labelled as a prior-period adjustment.
    assert january.document["netPositions"][p(coffee)] == "10.00"
    assert february.document["points"]["byParty"] == {}
    assert february.document["priorPeriodAdjustments"]["byParty"][p(coffee)]["issued"] == 300
    assert february.document["obligations"] == [
        {
            "debtor": p(coffee),
            "creditor": "coalition",
            "reason": "issuance (prior-period adjustment)",
            "amount": "3.00",
        }
    ]


async def test_finalizing_twice_and_settling_a_closed_period_are_refused(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    await period.earn(coffee, await period.member(), 10, day=1)
    run = await period.settle()
    async with db.transaction(SYSTEM) as conn:
        finalized = await service.finalize(conn, run_id=run.id, now=period.end)

    with pytest.raises(DomainError) as twice:
        async with db.transaction(SYSTEM) as conn:
            await service.finalize(conn, run_id=run.id, now=period.end)
    with pytest.raises(DomainError) as overlapping:
        await period.settle(period.start + timedelta(days=10), period.end + timedelta(days=10))

    assert finalized.status == "FINALIZED"
    assert twice.value.code == ErrorCode.PERIOD_CLOSED
    assert overlapping.value.code == ErrorCode.PERIOD_CLOSED


async def test_a_run_is_paid_once_every_instruction_is(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    cinema = await period.partner(issue="0.010", redeem="0.009", funding="ON_REDEMPTION")
    alice = await period.member()
    await period.earn(cinema, alice, 1_000, day=1)
    await period.redeem(coffee, alice, 500, day=2)  # cinema owes coffee 500 x 0.008 = 4.00
    run = await period.settle()
    async with db.transaction(SYSTEM) as conn:
        await service.finalize(conn, run_id=run.id, now=period.end)
    count = len(run.document["instructions"])
    assert count >= 1

    async with db.transaction(SYSTEM) as conn:
        for number in range(1, count + 1):
            latest = await service.record_payment(
                conn,
                run_id=run.id,
                instruction=number,
                reference=f"wire-{number}",
                now=period.end,
            )
    with pytest.raises(DomainError) as again:
        async with db.transaction(SYSTEM) as conn:
            await service.record_payment(
                conn, run_id=run.id, instruction=1, reference="dup", now=period.end
            )

    assert latest.status == "PAID"
    assert again.value.code == ErrorCode.INVALID_INPUT


async def test_a_finalized_run_still_ties_to_the_ledger(db: Database) -> None:
    from settlement import reconciliation

    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    await period.earn(coffee, await period.member(), 70, day=1)
    run = await period.settle()
    async with db.transaction(SYSTEM) as conn:
        await service.finalize(conn, run_id=run.id, now=period.end)

    async with db.transaction(SYSTEM) as conn:
        checks = await reconciliation.verify(conn)

    assert all(check.ok for check in checks), checks


async def test_a_run_stored_before_its_breakdown_existed_still_ties_to_the_ledger(
    db: Database,
) -> None:
    from settlement import reconciliation
    from settlement.service import digest_of

    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    await period.earn(coffee, await period.member(), 90, day=1)
    run = await period.settle()
    older = {k: v for k, v in run.document.items() if k != "breakdown"}
    async with db.transaction(SYSTEM) as conn:
        await service.finalize(conn, run_id=run.id, now=period.end)
        # The run as a version without the breakdown stored it.
        await conn.execute(
            sql(
                "UPDATE settlement_run SET document = CAST(:document AS jsonb), digest = :digest"
                " WHERE id = :id"
            ),
            {"document": json.dumps(older), "digest": digest_of(older), "id": run.id},
        )

    async with db.transaction(SYSTEM) as conn:
        checks = await reconciliation.verify(conn)

    assert "breakdown" in run.document
    assert all(check.ok for check in checks), checks
