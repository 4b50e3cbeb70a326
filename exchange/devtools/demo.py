"""A small demo coalition for ``exchange serve --demo``: three partners with contracts,
four linked members with some history, and OAuth clients whose credentials are printed.

Seeding twice does not duplicate the coalition. Client secrets are shown once, so each
run replaces the previous run's demo clients (their ids are kept in EXCHANGE_HOME) with
new ones and prints the new credentials.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime
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
HISTORY = [  # (operation, partner, member ref, points)
    ("earn", "Bean There Coffee", "alice", 1_200),
    ("earn", "Reel Cinemas", "alice-r", 800),
    ("earn", "Fresh Basket Grocers", "carol", 5_000),
    ("earn", "Bean There Coffee", "bob", 300),
    ("redeem", "Reel Cinemas", "alice-r", 1_000),
    ("redeem", "Bean There Coffee", "bob", 100),
]
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
    credentials: list[dict[str, str | None]] = field(default_factory=list)


async def _partner_ids(conn: AsyncConnection, now: datetime) -> tuple[dict[str, int], bool]:
    ids, created = {}, False
    for name, terms in PARTNERS.items():
        try:
            ids[name] = (await registry.get_partner(conn, name=name, now=now)).id
        except DomainError:
            ids[name] = (await registry.add_partner(conn, name=name, terms=terms, now=now)).id
            created = True
    return ids, created


async def _history(
    conn: AsyncConnection, ids: dict[str, int], keys: IdentityKeys, now: datetime
) -> None:
    members = {}
    for partner, ref, email in MEMBERS:
        linked = await identity.link_member(
            conn, keys=keys, partner_id=ids[partner], member_ref=ref, email=email, now=now
        )
        members[ref] = linked.member_id
    for number, (operation, partner, ref, points) in enumerate(HISTORY, start=1):
        key, member_id = f"demo-{number}", members[ref]
        if operation == "earn":
            await ledger.earn(
                conn,
                client_id=DEMO_CLIENT,
                partner_id=ids[partner],
                request=ledger.EarnRequest(key, member_id, points),
                now=now,
            )
        else:
            await ledger.redeem(
                conn,
                client_id=DEMO_CLIENT,
                partner_id=ids[partner],
                request=ledger.RedeemRequest(key, member_id, points),
                now=now,
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
    return DemoSummary(seeded=created, partners=ids, credentials=credentials)
