"""Worked examples: settlement runs with the arithmetic written out. Each test settles a
period of its own (a year nobody else books into), so other tests' entries stay out."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from exchange import ledger
from exchange.kit.db import Database, RowScope, sql
from exchange.kit.errors import DomainError
from exchange.kit.system import SYSTEM
from partners import registry
from partners.models import ContractTerms, FundingModel
from settlement import repository
from settlement.money import allocate
from settlement.service import run_settlement

_years = itertools.count(2041 + secrets.randbelow(400) * 2)


class Period:
    """A fresh year, with helpers to book into it."""

    def __init__(self, db: Database, year: int | None = None) -> None:
        self.db = db
        self.year = year or next(_years)
        self.start = datetime(self.year, 1, 1, tzinfo=UTC)
        self.end = datetime(self.year, 2, 1, tzinfo=UTC)
        self.keys = itertools.count()

    def at(self, day: int) -> datetime:
        return self.start + timedelta(days=day, hours=12)

    async def partner(
        self,
        issue: str,
        redeem: str,
        funding: str = "PREFUNDED",
        fee: str = "0",
        currency: str = "USD",
    ) -> int:
        terms = ContractTerms(
            currency=currency,
            issue_price=Decimal(issue),
            redemption_price=Decimal(redeem),
            fee_rate=Decimal(fee),
            funding_model=FundingModel(funding),
        )
        async with self.db.transaction(SYSTEM) as conn:
            created = await registry.add_partner(
                conn,
                name=f"P{self.year}-{secrets.token_hex(3)}",
                terms=terms,
                now=self.start - timedelta(days=1),
            )
        return created.id

    async def member(self) -> int:
        async with self.db.transaction(SYSTEM) as conn:
            return await ledger.open_member(conn)

    async def earn(self, partner: int, member: int, points: int, day: int) -> int:
        async with self.db.transaction(SYSTEM) as conn:
            result = await ledger.earn(
                conn,
                client_id="settle",
                partner_id=partner,
                request=ledger.EarnRequest(
                    idempotency_key=f"{self.year}-{next(self.keys)}",
                    member_id=member,
                    points=points,
                ),
                now=self.at(day),
            )
        return result.entry_id

    async def redeem(self, partner: int, member: int, points: int, day: int) -> int:
        async with self.db.transaction(SYSTEM) as conn:
            result = await ledger.redeem(
                conn,
                client_id="settle",
                partner_id=partner,
                request=ledger.RedeemRequest(
                    idempotency_key=f"{self.year}-{next(self.keys)}",
                    member_id=member,
                    points=points,
                ),
                now=self.at(day),
            )
        return result.entry_id

    async def settle(self, start: datetime | None = None, end: datetime | None = None):  # type: ignore[no-untyped-def]
        async with self.db.transaction(SYSTEM) as conn:
            return await run_settlement(
                conn,
                start=start or self.start,
                end=end or self.end,
                now=datetime(9999, 1, 1, tzinfo=UTC),
            )


def p(partner_id: int) -> str:
    return f"partner:{partner_id}"


def owes(doc: dict[str, Any], x: str, y: str) -> Decimal:
    """What x owes y net, from the document's bilateral positions."""
    a, b = sorted((x, y))
    for pair in doc["bilateral"]:
        if (pair["a"], pair["b"]) == (a, b):
            amount = Decimal(pair["aOwesB"])
            return amount if a == x else -amount
    return Decimal(0)


async def test_prefunded_partners(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    cinema = await period.partner(issue="0.012", redeem="0.009")
    alice = await period.member()
    await period.earn(coffee, alice, 1_000, day=1)
    await period.earn(cinema, alice, 500, day=2)
    await period.redeem(cinema, alice, 600, day=3)  # coffee's lot expires first: all coffee's

    run = await period.settle()
    doc = run.document

    # coffee -> coalition 1000 x 0.010 = 10.00; cinema -> coalition 500 x 0.012 = 6.00;
    # coalition -> cinema 600 x 0.009 = 5.40. Net: coffee 10.00, cinema 0.60, coalition -10.60.
    assert doc["netPositions"] == {
        "coalition": "-10.60",
        p(coffee): "10.00",
        p(cinema): "0.60",
    }
    assert doc["points"]["matrix"] == [{"issuer": p(coffee), "redeemer": p(cinema), "points": 600}]
    assert sorted(doc["instructions"], key=lambda i: i["amount"]) == [
        {"payer": p(cinema), "payee": "coalition", "amount": "0.60"},
        {"payer": p(coffee), "payee": "coalition", "amount": "10.00"},
    ]
    assert doc["reconciliation"] == {
        "journalBalanced": True,
        "coalitionMargin": "10.60",
        "partnersNetEqualsMargin": True,
    }


async def test_on_redemption_issuer_pays_the_redeemer_plus_the_fee(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(
        issue="0.010", redeem="0.008", funding="ON_REDEMPTION", fee="0.02"
    )
    cinema = await period.partner(issue="0.012", redeem="0.009")
    alice = await period.member()
    await period.earn(coffee, alice, 1_000, day=1)
    await period.earn(cinema, alice, 500, day=2)
    await period.redeem(cinema, alice, 600, day=3)
    await period.redeem(coffee, alice, 100, day=4)  # coffee's own points at coffee: no money

    doc = (await period.settle()).document

    # coffee -> cinema 600 x 0.009 = 5.40; coffee -> coalition fee 5.40 x 0.02 = 0.108;
    # cinema (prefunded) -> coalition 500 x 0.012 = 6.00. Exact total 11.508 -> 11.51:
    # floors 5.40 + 0.10 + 6.00 = 11.50, the last cent goes to the fee (remainder .008).
    assert sorted(doc["obligations"], key=lambda o: o["reason"]) == [
        {"debtor": p(coffee), "creditor": "coalition", "reason": "fee", "amount": "0.11"},
        {"debtor": p(cinema), "creditor": "coalition", "reason": "issuance", "amount": "6.00"},
        {"debtor": p(coffee), "creditor": p(cinema), "reason": "redemption", "amount": "5.40"},
    ]
    # Multilateral: cinema's 5.40 due from coffee nets against its 6.00 due to the coalition.
    assert doc["netPositions"] == {"coalition": "-6.11", p(coffee): "5.51", p(cinema): "0.60"}
    assert sorted(doc["instructions"], key=lambda i: i["amount"]) == [
        {"payer": p(cinema), "payee": "coalition", "amount": "0.60"},
        {"payer": p(coffee), "payee": "coalition", "amount": "5.51"},
    ]
    assert owes(doc, p(coffee), "coalition") == Decimal("0.11")
    assert owes(doc, p(cinema), "coalition") == Decimal("6.00")
    assert owes(doc, p(coffee), p(cinema)) == Decimal("5.40")
    assert doc["reconciliation"]["journalBalanced"] is True


async def _issue_price_from(period: Period, partner: int, price: str, *, day: int) -> None:
    """A contract change, made on day 1, to ``price`` per point issued from ``day`` on."""
    async with period.db.transaction(SYSTEM) as conn:
        current = await registry.get_partner(conn, partner_id=partner, now=period.at(1))
        terms = ContractTerms(**{**current.contract.terms.__dict__, "issue_price": Decimal(price)})
        await registry.change_contract(
            conn, partner_id=partner, terms=terms, effective_from=period.at(day), now=period.at(1)
        )


async def test_a_price_change_mid_period_prices_each_entry_by_its_contract(
    db: Database,
) -> None:
    period = Period(db)
    grocer = await period.partner(issue="0.010", redeem="0.008")
    alice = await period.member()
    await period.earn(grocer, alice, 100, day=1)
    await _issue_price_from(period, grocer, "0.02", day=10)
    await period.earn(grocer, alice, 100, day=15)

    doc = (await period.settle()).document

    # 100 x 0.010 + 100 x 0.020 = 1.00 + 2.00 = 3.00
    assert doc["netPositions"][p(grocer)] == "3.00"


async def test_of_two_contract_changes_from_the_same_instant_the_later_prices(
    db: Database,
) -> None:
    period = Period(db)
    grocer = await period.partner(issue="0.010", redeem="0.008")
    alice = await period.member()
    await period.earn(grocer, alice, 100, day=1)
    await _issue_price_from(period, grocer, "0.02", day=10)
    await _issue_price_from(period, grocer, "0.03", day=10)
    await period.earn(grocer, alice, 100, day=9)
    await period.earn(grocer, alice, 100, day=10)

    doc = (await period.settle()).document

    # 100 x 0.010 (day 1) + 100 x 0.010 (day 9) + 100 x 0.030 (day 10, the later change)
    assert doc["netPositions"][p(grocer)] == "5.00"


async def test_a_redemption_reversed_in_the_next_period_is_settled_there(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(issue="0.010", redeem="0.008")
    alice = await period.member()
    await period.earn(coffee, alice, 1_000, day=1)
    redemption = await period.redeem(coffee, alice, 500, day=20)
    async with db.transaction(SYSTEM) as conn:
        await ledger.reverse(
            conn,
            client_id="settle",
            partner_id=coffee,
            request=ledger.ReverseRequest(
                idempotency_key=f"{period.year}-rev", entry_id=redemption, points=200
            ),
            now=period.end + timedelta(days=3),
        )

    first = (await period.settle()).document
    second = (await period.settle(period.end, period.end + timedelta(days=28))).document

    # January: coalition owes coffee 500 x 0.008 = 4.00 (and is owed 10.00 for issuance).
    assert first["netPositions"][p(coffee)] == "6.00"
    # February: 200 points come back, so coffee owes back 200 x 0.008 = 1.60.
    assert second["points"]["matrix"] == [
        {"issuer": p(coffee), "redeemer": p(coffee), "points": -200}
    ]
    assert second["netPositions"][p(coffee)] == "1.60"


async def test_the_same_ledger_and_period_give_the_same_document(db: Database) -> None:
    period = Period(db)
    coffee = await period.partner(issue="0.0033", redeem="0.0031")
    alice = await period.member()
    for day in range(1, 8):
        await period.earn(coffee, alice, 7, day=day)
    await period.redeem(coffee, alice, 13, day=9)

    first, second = await period.settle(), await period.settle()

    assert first.digest == second.digest
    assert first.document == second.document
    assert first.id != second.id


async def test_a_runs_transaction_hashes_its_joins_and_no_other_does(db: Database) -> None:
    """Under an operator's row scope (runSettlement) the policies hide a period's size
    from the planner, which would join a month of entries one index lookup at a time;
    the run's transaction turns nested loops off, for itself only."""
    operator = RowScope(kind="OPERATOR", client_id="finance")
    setting = sql("SELECT current_setting('enable_nestloop')")
    async with db.transaction(operator) as conn:
        await repository.room_for_aggregates(conn)
        assert (await conn.execute(setting)).scalar_one() == "off"
    async with db.transaction(operator) as conn:
        assert (await conn.execute(setting)).scalar_one() == "on"


def test_rounding_residue_goes_to_the_largest_remainders() -> None:
    thirds = {"a": Decimal("0.333"), "b": Decimal("0.333"), "c": Decimal("0.334")}

    rounded = allocate(thirds, "USD")

    assert rounded == {"a": Decimal("0.33"), "b": Decimal("0.33"), "c": Decimal("0.34")}
    assert sum(rounded.values()) == Decimal("1.00")
    assert allocate({"x": Decimal("5")}, "JPY") == {"x": Decimal("5")}


async def test_partners_in_two_currencies_can_not_be_settled_together(db: Database) -> None:
    period = Period(db)
    euros = await period.partner(issue="0.01", redeem="0.008", currency="EUR")
    dollars = await period.partner(issue="0.01", redeem="0.008", currency="USD")
    alice = await period.member()
    await period.earn(euros, alice, 10, day=1)
    await period.earn(dollars, alice, 10, day=1)

    with pytest.raises(DomainError, match="exchange-rate table"):
        await period.settle()


async def test_an_exchange_rate_table_settles_two_currencies_in_one(db: Database) -> None:
    period = Period(db)
    euros = await period.partner(issue="0.010", redeem="0.008", currency="EUR")
    dollars = await period.partner(issue="0.012", redeem="0.009", currency="USD")
    alice = await period.member()
    await period.earn(euros, alice, 1_000, day=1)
    await period.earn(dollars, alice, 500, day=2)
    await period.redeem(dollars, alice, 400, day=3)  # the euro partner's points

    async with db.transaction(SYSTEM) as conn:
        with pytest.raises(DomainError, match="no exchange rate for EUR"):
            await run_settlement(
                conn,
                start=period.start,
                end=period.end,
                now=datetime(9999, 1, 1, tzinfo=UTC),
                currency="USD",
            )
    async with db.transaction(SYSTEM) as conn:
        run = await run_settlement(
            conn,
            start=period.start,
            end=period.end,
            now=datetime(9999, 1, 1, tzinfo=UTC),
            currency="USD",
            rates={"EUR": Decimal("1.10")},
        )

    # euros: 1000 x 0.010 EUR = 10.00 EUR x 1.10 = 11.00 USD owed for issuance.
    # dollars: 500 x 0.012 = 6.00 owed; 400 x 0.009 = 3.60 due from the coalition: 2.40 net.
    assert run.document["currency"] == "USD"
    assert run.document["exchangeRates"] == {"EUR": "1.10", "USD": "1"}
    assert run.document["netPositions"][p(euros)] == "11.00"
    assert run.document["netPositions"][p(dollars)] == "2.40"


async def test_a_period_that_has_not_ended_is_refused(db: Database) -> None:
    async with db.transaction(SYSTEM) as conn:
        with pytest.raises(DomainError, match="not ended"):
            await run_settlement(
                conn,
                start=datetime(2026, 1, 1, tzinfo=UTC),
                end=datetime(2999, 1, 1, tzinfo=UTC),
                now=datetime(2026, 11, 23, tzinfo=UTC),
            )


async def _unbalanced_journal(db: Database) -> None:
    async with db.transaction(SYSTEM) as conn:
        run = (
            await conn.execute(
                sql(
                    "INSERT INTO settlement_run (period_start, period_end, currency, status,"
                    " document, digest, created_at, cutoff) VALUES ('2030-01-01', '2030-02-01',"
                    " 'USD', 'DRAFT', '{}', 'x', now(), now()) RETURNING id"
                )
            )
        ).scalar()
        await conn.execute(
            sql("INSERT INTO settlement_posting (run_id, account, amount) VALUES (:r, 'A', 1)"),
            {"r": run},
        )


async def test_the_database_refuses_an_unbalanced_money_journal(db: Database) -> None:
    with pytest.raises(asyncpg.PostgresError, match="unbalanced"):
        await _unbalanced_journal(db)
