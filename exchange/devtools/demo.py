"""A small demo coalition for ``exchange serve --demo``: three partners with contracts,
four linked members with a history over the previous calendar month and this one, and
OAuth clients whose credentials are printed.

The history is backdated (each entry booked and taking effect on its day), so last
month is a whole period that has ended: ``exchange settle --from <first of last month>
--to <first of this month>`` settles it, with both funding models and every kind of
obligation in it (issuance, redemption, fee). The partners' contracts are in force
from the first of last month. This month's entries fall between its first day and now.

Seeding twice does not duplicate the coalition. Client secrets are shown once, so each
run replaces the previous run's demo clients (their ids are kept in EXCHANGE_HOME) with
new ones and prints the new credentials.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange import ledger
from exchange.kit.errors import DomainError
from partners import clients, identity, registry
from partners.identity import IdentityKeys
from partners.models import ContractTerms, FundingModel

DEMO_CLIENT = "demo-seed"
CLIENTS_FILE = "demo-clients.json"

PARTNERS = {
    "Bean There Coffee": ContractTerms(
        currency="USD",
        issue_price=Decimal("0.010"),
        redemption_price=Decimal("0.008"),
        fee_rate=Decimal("0.02"),
        funding_model=FundingModel.PREFUNDED,
    ),
    "Reel Cinemas": ContractTerms(
        currency="USD",
        issue_price=Decimal("0.012"),
        redemption_price=Decimal("0.009"),
        fee_rate=Decimal("0.015"),
        funding_model=FundingModel.ON_REDEMPTION,
        points_lifetime_days=540,
    ),
    "Fresh Basket Grocers": ContractTerms(
        currency="USD",
        issue_price=Decimal("0.008"),
        redemption_price=Decimal("0.007"),
        fee_rate=Decimal("0.02"),
        credit_limit_points=50_000_000,
    ),
}
MEMBERS = [  # (partner, member ref, e-mail)
    ("Bean There Coffee", "alice", "alice@example.com"),
    ("Reel Cinemas", "alice-r", "alice@example.com"),
    ("Bean There Coffee", "bob", "bob@example.com"),
    ("Fresh Basket Grocers", "carol", "carol@example.com"),
    ("Fresh Basket Grocers", "dan", "dan@example.com"),
]
#: (month, step, operation, partner, member ref, points). Last month's steps are days of
#: the month; this month's are spread evenly between its first day and now.
HISTORY = [
    ("last", 2, "earn", "Bean There Coffee", "alice", 1_200),
    ("last", 3, "earn", "Reel Cinemas", "alice-r", 800),
    ("last", 5, "earn", "Fresh Basket Grocers", "carol", 5_000),
    ("last", 8, "earn", "Bean There Coffee", "bob", 300),
    # Alice's coffee points expire first: 1,000 of them are redeemed at the cinema, so
    # the coalition (coffee is PREFUNDED) pays the cinema.
    ("last", 12, "redeem", "Reel Cinemas", "alice-r", 1_000),
    ("last", 15, "redeem", "Bean There Coffee", "bob", 100),
    ("last", 18, "earn", "Fresh Basket Grocers", "dan", 2_000),
    # 200 coffee points and 300 cinema points at the coffee chain: the cinema
    # (ON_REDEMPTION) owes the coffee chain for its 300, and the coalition its fee.
    ("last", 20, "redeem", "Bean There Coffee", "alice", 500),
    ("last", 25, "redeem", "Fresh Basket Grocers", "carol", 1_500),
    ("this", 1, "earn", "Bean There Coffee", "alice", 400),
    ("this", 2, "earn", "Reel Cinemas", "alice-r", 600),
    ("this", 3, "redeem", "Reel Cinemas", "alice-r", 300),
    ("this", 4, "redeem", "Fresh Basket Grocers", "dan", 700),
]
_THIS_MONTH_STEPS = 4
PARTNER_SCOPES = [
    "points:earn",
    "points:redeem",
    "points:reverse",
    "members:link",
    "members:read",
    "transactions:read",
    "settlement:read",
    "wallet:read",
]
OPERATOR_SCOPES = ["partners:admin", "settlement:run", "settlement:read:all", "ledger:read:all"]


@dataclass
class DemoSummary:
    seeded: bool
    partners: dict[str, int]
    #: The whole month of history that has ended: settle it with --from/--to these days.
    last_month: tuple[date, date]
    credentials: list[dict[str, str | None]] = field(default_factory=list)


def months(now: datetime) -> tuple[datetime, datetime]:
    """Midnight UTC on the first of last month and on the first of this month."""
    this_month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = (this_month - timedelta(days=1)).replace(day=1)
    return previous, this_month


def _moment(now: datetime, month: str, step: int) -> datetime:
    """When a history step happened: last month's day ``step`` at noon, or this month's
    ``step``-th of evenly spaced moments between its first day and now."""
    last_month, this_month = months(now)
    if month == "last":
        return last_month + timedelta(days=step - 1, hours=12)
    return this_month + (now - this_month) * step // (_THIS_MONTH_STEPS + 1)


async def _partner_ids(conn: AsyncConnection, now: datetime) -> tuple[dict[str, int], bool]:
    """The demo partners, added (contracts in force from the first of last month) when
    missing."""
    ids, created = {}, False
    joined = months(now)[0]
    for name, terms in PARTNERS.items():
        try:
            ids[name] = (await registry.get_partner(conn, name=name, now=now)).id
        except DomainError:
            ids[name] = (await registry.add_partner(conn, name=name, terms=terms, now=joined)).id
            created = True
    return ids, created


async def _history(
    conn: AsyncConnection, ids: dict[str, int], keys: IdentityKeys, now: datetime
) -> None:
    members, joined = {}, months(now)[0]
    for partner, ref, email in MEMBERS:
        linked = await identity.link_member(
            conn, keys=keys, partner_id=ids[partner], member_ref=ref, email=email, now=joined
        )
        members[ref] = linked.member_id
    for number, (month, step, operation, partner, ref, points) in enumerate(HISTORY, start=1):
        key, member_id, at = f"demo-{number}", members[ref], _moment(now, month, step)
        if operation == "earn":
            await ledger.earn(
                conn,
                client_id=DEMO_CLIENT,
                partner_id=ids[partner],
                request=ledger.EarnRequest(key, member_id, points, effective_at=at),
                now=at,
            )
        else:
            await ledger.redeem(
                conn,
                client_id=DEMO_CLIENT,
                partner_id=ids[partner],
                request=ledger.RedeemRequest(key, member_id, points, effective_at=at),
                now=at,
            )


async def _fresh_clients(
    conn: AsyncConnection, ids: dict[str, int], home: Path
) -> list[dict[str, str | None]]:
    path = home / CLIENTS_FILE
    if path.exists():
        for client_id in json.loads(path.read_text()):
            with contextlib.suppress(DomainError):
                await clients.revoke_client(conn, client_id=client_id)
    coffee = await clients.create_client(
        conn, scopes=PARTNER_SCOPES, partner_id=ids["Bean There Coffee"]
    )
    operator = await clients.create_client(conn, scopes=OPERATOR_SCOPES)
    path.write_text(json.dumps([coffee.client_id, operator.client_id]))
    return [
        {
            "who": "partner Bean There Coffee",
            "client_id": coffee.client_id,
            "client_secret": coffee.client_secret,
            "scope": " ".join(coffee.scopes),
        },
        {
            "who": "operator",
            "client_id": operator.client_id,
            "client_secret": operator.client_secret,
            "scope": " ".join(operator.scopes),
        },
    ]


async def seed(
    conn: AsyncConnection, *, now: datetime, keys: IdentityKeys, home: Path
) -> DemoSummary:
    ids, created = await _partner_ids(conn, now)
    if created:
        await _history(conn, ids, keys, now)
    credentials = await _fresh_clients(conn, ids, home)
    last_month, this_month = months(now)
    return DemoSummary(
        seeded=created,
        partners=ids,
        credentials=credentials,
        last_month=(last_month.date(), this_month.date()),
    )
