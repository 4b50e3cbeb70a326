"""Netting: net positions per party, bilateral positions per pair, and a short list of
payment instructions.

Instructions are found greedily — the largest debtor pays the largest creditor as much as
both allow, repeated — which settles n parties in at most n - 1 payments, and each
party's payments add up exactly to its net position. Ties break on the party key, so
the list is deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from settlement.models import Instruction, Obligation


def net_positions(obligations: list[Obligation]) -> dict[str, Decimal]:
    """Positive: the party owes that much net; negative: it is owed."""
    net: dict[str, Decimal] = defaultdict(Decimal)
    for obligation in obligations:
        net[obligation.debtor] += obligation.amount
        net[obligation.creditor] -= obligation.amount
    return dict(sorted(net.items()))


def bilateral(obligations: list[Obligation]) -> dict[tuple[str, str], Decimal]:
    """Per pair (a, b) with a < b: what a owes b net (negative: b owes a)."""
    pairs: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for obligation in obligations:
        a, b = sorted((obligation.debtor, obligation.creditor))
        sign = 1 if obligation.debtor == a else -1
        pairs[(a, b)] += sign * obligation.amount
    return {pair: amount for pair, amount in sorted(pairs.items()) if amount != 0}


def instructions(net: dict[str, Decimal]) -> list[Instruction]:
    debtors = {p: amount for p, amount in net.items() if amount > 0}
    creditors = {p: -amount for p, amount in net.items() if amount < 0}
    payments: list[Instruction] = []
    while debtors and creditors:
        payer = max(debtors, key=lambda p: (debtors[p], p))
        payee = max(creditors, key=lambda p: (creditors[p], p))
        amount = min(debtors[payer], creditors[payee])
        payments.append(Instruction(payer=payer, payee=payee, amount=amount))
        for book, key in ((debtors, payer), (creditors, payee)):
            book[key] -= amount
            if book[key] == 0:
                del book[key]
    return payments
