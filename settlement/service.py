"""A settlement run for a period [start, end): from the points ledger alone, priced with
each partner's contract in force when each entry was booked, into obligations, a
balanced money journal, net positions and payment instructions. Deterministic: the same
ledger and period give the same document, byte for byte.

Funding models (by the issuer's contract):
- PREFUNDED: the issuer owes the coalition issued x issue price; the coalition owes the
  redeemer redeemed x the redeemer's redemption price. Breakage and spread stay with the
  coalition. Coalition-issued points (operator adjustments) are funded the same way.
- ON_REDEMPTION: for its points redeemed at another partner, the issuer owes that partner
  redeemed x the redeemer's redemption price, and the coalition that amount x its fee
  rate. Its own points redeemed at itself move no money. Breakage stays with the issuer.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from exchange.kit import limits
from exchange.kit.clock import require_aware
from exchange.kit.currency import check_currency, plain
from exchange.kit.db import Connection, Row
from exchange.kit.errors import InvalidInput, Kind, NotFound, Ref
from exchange.kit.invariant import present
from settlement import journal, netting, repository
from settlement.errors import (
    InstructionPaid,
    NoContractInForce,
    PeriodClosed,
    RatesIncomplete,
    RunNotFinalized,
)
from settlement.models import (
    COALITION,
    Obligation,
    Payment,
    PricedLine,
    RunStatus,
    RunSummary,
    SettlementRun,
    Terms,
    party,
)
from settlement.money import allocate, minor_unit, round_total


async def _terms(conn: Connection, partner_ids: set[int]) -> dict[tuple[int, int], Terms]:
    rows = await repository.contracts(conn, partner_ids=sorted(partner_ids))
    return {
        (int(r.partner_id), int(r.version)): Terms(
            name=r.name,
            currency=r.currency,
            issue_price=r.issue_price,
            redemption_price=r.redemption_price,
            fee_rate=r.fee_rate,
            funding_model=r.funding_model,
        )
        for r in rows
    }


def _priced(terms: dict[tuple[int, int], Terms], partner_id: int, version: int | None) -> Terms:
    if version is None or (partner_id, version) not in terms:
        raise NoContractInForce(
            "partner {partner} has points booked in the period before any contract was in"
            " force; add a contract that covers them",
            field=["from"],
            refs={"partner": Ref(Kind.PARTNER, partner_id)},
        )
    return terms[(partner_id, version)]


def _priced_lines(
    issued: list[Row],
    redeemed: list[Row],
    terms: dict[tuple[int, int], Terms],
    rates: dict[str, Decimal],
) -> list[PricedLine]:
    """Exact obligations in the settlement currency, each with the points and prices it
    comes from: each price is converted from its contract's currency with the period's
    rate (1 unit = rate units of settlement)."""
    lines: list[PricedLine] = []
    for row in issued:
        contract = _priced(terms, row.partner_id, row.version)
        if contract.funding_model == "PREFUNDED" and row.points:
            priced = (int(row.points), contract.issue_price, contract.currency)
            rate = rates[contract.currency]
            debtor = party(row.partner_id)
            lines.append(PricedLine(debtor, COALITION, "issuance", *priced, rate, "PREFUNDED"))
    for row in redeemed:
        if row.points:
            lines += _redemption_lines(row, terms, rates)
    return lines


def _redemption_lines(
    row: Row, terms: dict[tuple[int, int], Terms], rates: dict[str, Decimal]
) -> list[PricedLine]:
    redeemer = _priced(terms, row.redeemer_id, row.redeemer_version)
    issuer = None if row.issuer_id is None else _priced(terms, row.issuer_id, row.issuer_version)
    priced = (int(row.points), redeemer.redemption_price, redeemer.currency)
    rate = rates[redeemer.currency]
    if issuer is None or issuer.funding_model == "PREFUNDED":
        return [
            PricedLine(COALITION, party(row.redeemer_id), "redemption", *priced, rate, "PREFUNDED")
        ]
    if row.issuer_id == row.redeemer_id:
        return []
    debtor = party(row.issuer_id)
    return [
        PricedLine(debtor, party(row.redeemer_id), "redemption", *priced, rate, "ON_REDEMPTION"),
        PricedLine(debtor, COALITION, "fee", *priced, rate, "ON_REDEMPTION", issuer.fee_rate),
    ]


def _plain(value: Decimal) -> str:
    """0.01000000 as 0.01, 100 as 100 (not 1E+2)."""
    return str(plain(value))


def _exact(amount: Decimal, currency: str) -> str:
    """An exact amount with at least the currency's minor digits: 15.00, 0.036."""
    unit = minor_unit(currency)
    return format(
        amount.quantize(unit) if amount == amount.quantize(unit) else amount.normalize(), "f"
    )


def _breakdown(lines: list[PricedLine], currency: str) -> list[dict[str, Any]]:
    """Priced lines summed per obligation and price: the numbers behind each obligation."""
    grouped: dict[tuple[str, ...], tuple[int, Decimal]] = {}
    for line in lines:
        fee_rate = "" if line.fee_rate is None else _plain(line.fee_rate)
        key = (
            *(line.reason, line.debtor, line.creditor, line.funding_model),
            *(_plain(line.price), line.currency, _plain(line.rate), fee_rate),
        )
        points, amount = grouped.get(key, (0, Decimal(0)))
        grouped[key] = (points + line.points, amount + line.amount)
    rows = []
    for group, (points, amount) in sorted(grouped.items()):
        reason, debtor, creditor, funding_model, price, price_currency, rate, fee_rate = group
        row: dict[str, Any] = {
            "reason": reason,
            "debtor": debtor,
            "creditor": creditor,
            "fundingModel": funding_model,
            "points": points,
            "price": price,
            "priceCurrency": price_currency,
            "rate": rate,
            "exact": _exact(amount, currency),
        }
        if fee_rate:
            row["feeRate"] = fee_rate
        rows.append(row)
    return rows


def _rounded(exact: list[Obligation], currency: str) -> list[Obligation]:
    """Sum per (debtor, creditor, reason), then round all together (largest remainder)."""
    grouped: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for o in exact:
        grouped[(o.debtor, o.creditor, o.reason)] += o.amount
    rounded = allocate(grouped, currency)
    return [Obligation(d, c, r, amount) for (d, c, r), amount in sorted(rounded.items()) if amount]


def _currency(
    terms: dict[tuple[int, int], Terms], currency: str | None, rates: dict[str, Decimal]
) -> tuple[str, dict[str, Decimal]]:
    """The settlement currency and a rate for every currency involved (its own is 1)."""
    involved = sorted({t.currency for t in terms.values()})
    chosen = currency or (involved[0] if len(involved) == 1 else None) or "USD"
    if currency is None and len(involved) > 1:
        raise RatesIncomplete(
            f"the partners settle in {', '.join(involved)}; choose a settlement currency"
            " and give an exchange-rate table for the period",
            field=["currency"],
        )
    table = {chosen: Decimal(1), **{k: v for k, v in rates.items() if k != chosen}}
    missing = [c for c in involved if c not in table]
    if missing:
        raise RatesIncomplete(
            f"no exchange rate for {', '.join(missing)} into {chosen} for the period;"
            " the exchange-rate table must cover every currency involved",
            field=["rates"],
        )
    bad = [c for c, rate in table.items() if not rate.is_finite() or rate <= 0]
    if bad:
        raise RatesIncomplete(f"exchange rates must be positive: {', '.join(bad)}", field=["rates"])
    return chosen, table


def checked_currency(currency: str | None) -> str | None:
    return None if currency is None else check_currency(currency, "currency")


def checked_rates(rates: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
    """An exchange-rate table as a caller gives it: at most MAX_RATES ISO 4217 codes,
    each with a positive rate within the decimal limits (kit.limits)."""
    if rates is None:
        return None
    if len(rates) > limits.MAX_RATES:
        raise InvalidInput(f"give at most {limits.MAX_RATES} exchange rates", field=["rates"])
    return {
        check_currency(code, "rates"): limits.decimal(rate, "rates") for code, rate in rates.items()
    }


def _points(issued: list[Row], redeemed: list[Row], expired: list[Row]) -> dict[str, Any]:
    per: dict[str, dict[str, int]] = defaultdict(
        lambda: {"issued": 0, "redeemedAt": 0, "redeemedFrom": 0, "expired": 0}
    )
    for row in issued:
        per[party(row.partner_id)]["issued"] += int(row.points)
    matrix: dict[tuple[str, str], int] = defaultdict(int)
    for row in redeemed:
        per[party(row.redeemer_id)]["redeemedAt"] += int(row.points)
        per[party(row.issuer_id)]["redeemedFrom"] += int(row.points)
        matrix[(party(row.issuer_id), party(row.redeemer_id))] += int(row.points)
    for row in expired:
        per[party(row.partner_id)]["expired"] += int(row.points)
    return {
        "byParty": {key: per[key] for key in sorted(per)},
        "matrix": [
            {"issuer": i, "redeemer": r, "points": p} for (i, r), p in sorted(matrix.items()) if p
        ],
    }


def _money(amount: Decimal) -> str:
    return format(amount, "f")


def build_document(
    *,
    start: datetime,
    end: datetime,
    currency: str,
    names: dict[str, str],
    points: dict[str, Any],
    obligations: list[Obligation],
) -> dict[str, Any]:
    net = netting.net_positions(obligations)
    legs = journal.postings(obligations, net)
    margin = -net.get(COALITION, Decimal(0))
    partners_net = sum((amount for key, amount in net.items() if key != COALITION), Decimal(0))
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "currency": currency,
        "parties": dict(sorted(names.items())),
        "points": points,
        "obligations": [
            {
                "debtor": o.debtor,
                "creditor": o.creditor,
                "reason": o.reason,
                "amount": _money(o.amount),
            }
            for o in obligations
        ],
        "netPositions": {key: _money(amount) for key, amount in net.items()},
        "bilateral": [
            {"a": a, "b": b, "aOwesB": _money(amount)}
            for (a, b), amount in netting.bilateral(obligations).items()
        ],
        "instructions": [
            {"payer": i.payer, "payee": i.payee, "amount": _money(i.amount)}
            for i in netting.instructions(net)
        ],
        "journal": [{"account": account, "amount": _money(amount)} for account, amount in legs],
        "reconciliation": {
            "journalBalanced": sum((amount for _, amount in legs), Decimal(0)) == 0,
            "coalitionMargin": _money(round_total(margin, currency)),
            "partnersNetEqualsMargin": partners_net == margin,
        },
    }


def digest_of(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _campaign_costs(
    rows: list[Row],
    terms: dict[tuple[int, int], Terms],
    rates: dict[str, Decimal],
    currency: str,
) -> list[dict[str, Any]]:
    """What each campaign's funders issued in the period: points, and their money at the
    funder's issue price (the coalition's own points: no price, nothing to settle)."""
    costs = []
    for row in rows:
        amount = Decimal(0)
        if row.partner_id is not None:
            contract = _priced(terms, row.partner_id, row.version)
            amount = row.points * contract.issue_price * rates[contract.currency]
        costs.append(
            {
                "campaign": str(row.campaign_id),
                "name": row.campaign_name or "",
                "funder": party(row.partner_id),
                "points": int(row.points),
                "amount": _money(round_total(amount, currency)),
            }
        )
    return costs


def _late(lines: list[PricedLine]) -> list[PricedLine]:
    return [replace(line, reason=f"{line.reason} (prior-period adjustment)") for line in lines]


async def _facts(
    conn: Connection, params: dict[str, Any], *, late: bool
) -> tuple[list[Row], list[Row], list[Row]]:
    return (
        await repository.issued(conn, params=params, late=late),
        await repository.redeemed(conn, params=params, late=late),
        await repository.expired(conn, params=params, late=late),
    )


async def compute(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    currency: str | None = None,
    rates: dict[str, Decimal] | None = None,
) -> tuple[str, dict[str, Any], list[tuple[str, Decimal]]]:
    await repository.room_for_aggregates(conn)
    since = await repository.previous_cutoff(conn, start=start)
    params = {"start": start, "end": end, "cutoff": cutoff, "since": since}
    regular = await _facts(conn, params, late=False)
    late = await _facts(conn, params, late=True)
    ids: set[int] = set()
    for issued, redeemed, expired in (regular, late):
        ids |= {r.partner_id for r in issued} | {r.partner_id for r in expired}
        ids |= {r.issuer_id for r in redeemed} | {r.redeemer_id for r in redeemed}
    terms = await _terms(conn, {int(i) for i in ids if i is not None})
    currency, table = _currency(terms, currency, rates or {})
    lines = _priced_lines(regular[0], regular[1], terms, table)
    lines += _late(_priced_lines(late[0], late[1], terms, table))
    obligations = _rounded([line.obligation() for line in lines], currency)
    names = {party(pid): t.name for (pid, _), t in terms.items()} | {COALITION: "Coalition"}
    document = build_document(
        start=start,
        end=end,
        currency=currency,
        names=names,
        points=_points(*regular),
        obligations=obligations,
    )
    document["priorPeriodAdjustments"] = _points(*late)
    document["breakdown"] = _breakdown(lines, currency)
    campaigns = await repository.campaign_issuance(conn, params=params)
    if campaigns:  # only then: runs from before campaigns keep their digests
        document["campaigns"] = _campaign_costs(campaigns, terms, table, currency)
    if len(table) > 1:
        document["exchangeRates"] = {k: format(v, "f") for k, v in sorted(table.items())}
    net = netting.net_positions(obligations)
    return currency, document, journal.postings(obligations, net)


async def run_settlement(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    currency: str | None = None,
    rates: dict[str, Decimal] | None = None,
) -> SettlementRun:
    """Compute and store a DRAFT run for [start, end) with entries created by ``now``; an
    earlier draft of exactly that period is superseded."""
    start, end = require_aware(start, "from"), require_aware(end, "to")
    currency, rates = checked_currency(currency), checked_rates(rates)
    if start >= end:
        raise InvalidInput("the period must end after it starts", field=["to"])
    if end > now:
        raise InvalidInput("the period has not ended yet; settle it after it ends", field=["to"])
    closed = await repository.overlapping_finalized(conn, start=start, end=end)
    if closed is not None:
        raise PeriodClosed(
            f"run {{run}} already finalized [{closed.period_start.isoformat()},"
            f" {closed.period_end.isoformat()}); late entries into it are settled by the"
            " next period's run",
            field=["from"],
            refs={"run": Ref(Kind.SETTLEMENT_RUN, int(closed.id))},
        )
    currency, document, legs = await compute(
        conn, start=start, end=end, cutoff=now, currency=currency, rates=rates
    )
    digest = digest_of(document)
    run_id = await repository.insert_run(
        conn,
        start=start,
        end=end,
        currency=currency,
        document=document,
        digest=digest,
        now=now,
        cutoff=now,
    )
    await repository.supersede_drafts(conn, start=start, end=end, by_run_id=run_id)
    if legs:
        await repository.insert_postings(conn, run_id=run_id, legs=legs)
    return SettlementRun(id=run_id, status=RunStatus.DRAFT, digest=digest, document=document)


async def finalize(conn: Connection, *, run_id: int, now: datetime) -> SettlementRun:
    """Close the run's period: the run becomes immutable; later entries booked into the
    period go to the next run as prior-period adjustments."""
    await repository.lock_runs(conn)
    run = await get_run(conn, run_id=run_id)
    if run.status != RunStatus.DRAFT:
        raise PeriodClosed(
            "run {run} is " + run.status.lower() + ", not a draft",
            field=["run"],
            refs={"run": Ref(Kind.SETTLEMENT_RUN, run_id)},
        )
    row = present(await repository.run_by_id(conn, run_id=run_id), "get_run found the run")
    closed = await repository.overlapping_finalized(
        conn, start=row.period_start, end=row.period_end
    )
    if closed is not None:
        raise PeriodClosed(
            "run {run} already closed an overlapping period",
            field=["run"],
            refs={"run": Ref(Kind.SETTLEMENT_RUN, int(closed.id))},
        )
    await repository.set_status(conn, run_id=run_id, status="FINALIZED", at=now)
    return await get_run(conn, run_id=run_id)


async def record_payment(
    conn: Connection, *, run_id: int, instruction: int, reference: str, now: datetime
) -> SettlementRun:
    """Record that instruction number ``instruction`` (from 1) was paid; the run is PAID
    once every instruction is."""
    run = await get_run(conn, run_id=run_id)
    if run.status not in (RunStatus.FINALIZED, RunStatus.PAID):
        raise RunNotFinalized("only a finalized run's instructions can be paid", field=["run"])
    count = len(run.document["instructions"])
    if not 1 <= instruction <= count:
        raise InvalidInput(f"the run has instructions 1 to {count}", field=["instruction"])
    if not reference or len(reference) > 200:
        raise InvalidInput(
            "give the payment's reference (1 to 200 characters)", field=["reference"]
        )
    if not await repository.record_payment(
        conn, run_id=run_id, instruction=instruction, reference=reference, at=now
    ):
        raise InstructionPaid(f"instruction {instruction} is already paid", field=["instruction"])
    paid = await repository.payments_of_run(conn, run_id=run_id)
    if len(paid) == count and run.status == RunStatus.FINALIZED:
        await repository.set_status(conn, run_id=run_id, status="PAID", at=now)
    return await get_run(conn, run_id=run_id)


def _payments(rows: list[Row]) -> tuple[Payment, ...]:
    return tuple(Payment(int(r.instruction), r.reference, r.paid_at) for r in rows)


async def get_run(conn: Connection, *, run_id: int) -> SettlementRun:
    """A run with the payments recorded against its instructions."""
    row = await repository.run_by_id(conn, run_id=run_id)
    if row is None:
        raise NotFound(
            "settlement run {run} does not exist",
            field=["run"],
            refs={"run": Ref(Kind.SETTLEMENT_RUN, run_id)},
        )
    return SettlementRun(
        id=int(row.id),
        status=RunStatus(row.status),
        digest=row.digest,
        document=dict(row.document),
        payments=_payments(await repository.payments_of_run(conn, run_id=run_id)),
    )


MAX_LISTED_RUNS = 1000


async def list_runs(conn: Connection, *, limit: int = 100) -> list[RunSummary]:
    """Runs newest first, superseded drafts included (they stay, as decision 0005 says),
    each with its paid instructions and which run supersedes which."""
    if not 1 <= limit <= MAX_LISTED_RUNS:
        raise InvalidInput(f"limit must be 1 to {MAX_LISTED_RUNS}", field=["limit"])
    rows = await repository.runs_listing(conn, limit=limit)
    paid = await repository.payments_of_runs(conn, run_ids=[int(r.id) for r in rows])
    return [
        RunSummary(
            id=int(r.id),
            period_start=r.period_start,
            period_end=r.period_end,
            status=RunStatus(r.status),
            currency=r.currency,
            digest=r.digest,
            created_at=r.created_at,
            finalized_at=r.finalized_at,
            paid_at=r.paid_at,
            instruction_count=int(r.instruction_count or 0),
            payments=_payments([p for p in paid if p.run_id == r.id]),
            supersedes=tuple(int(i) for i in r.supersedes),
            superseded_by=None if r.superseded_by is None else int(r.superseded_by),
        )
        for r in rows
    ]
