"""The money journal: balanced double-entry postings in the settlement currency.

Accounts: ``Partner:<id>`` (positive: the partner owes), ``Coalition:Clearing`` (the
coalition as counterparty) and ``Coalition:Revenue`` (its margin: spread, fees,
breakage of prefunded points). Each obligation debtor -> creditor of X posts +X to the
debtor and -X to the creditor; a closing posting moves the coalition's net position
from clearing to revenue. Every posting sums to zero, and so does the journal (the
database checks it too).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from settlement.models import COALITION, Obligation

CLEARING = "Coalition:Clearing"
REVENUE = "Coalition:Revenue"


def account_of(party: str) -> str:
    if party == COALITION:
        return CLEARING
    return "Partner:" + party.split(":", 1)[1]


def postings(obligations: list[Obligation], net: dict[str, Decimal]) -> list[tuple[str, Decimal]]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for obligation in obligations:
        totals[account_of(obligation.debtor)] += obligation.amount
        totals[account_of(obligation.creditor)] -= obligation.amount
    coalition = net.get(COALITION, Decimal(0))
    if coalition:
        totals[CLEARING] -= coalition
        totals[REVENUE] += coalition
    return [(account, amount) for account, amount in sorted(totals.items()) if amount]
