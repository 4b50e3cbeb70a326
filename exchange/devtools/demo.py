"""A small demo coalition for ``exchange serve --demo``: three partners with contracts,
four linked members with a history over the previous calendar month and this one, and
OAuth clients whose credentials are printed.

The history is backdated (each entry booked and taking effect on its day), so last
month is a whole period that has ended: ``exchange settle --from <first of last month>
--to <first of this month>`` settles it, with both funding models and every kind of
obligation in it (issuance, redemption, fee). The partners' contracts are in force
from the first of last month. This month's entries fall between its first day and now.

The loyalty engine has something to show too: a tier ladder, a running campaign at the
cinema ("2x points at the weekend") and one the cinema and the coffee chain co-fund (100
bonus points with popcorn, half each, accepted by both), and two purchases this month
that they rewarded. None of it falls into last month, so its settlement stays as above.
Insights too: a custom segment of the coffee chain (REGULARS), Alice's consent to
cross-partner use, and a targeted campaign of the coffee chain whose ACTIVE members get
an offer in their wallet ("A free pastry with your next coffee"; 10 % held out).

Seeding twice does not duplicate the coalition, nor its OAuth clients. The first run
makes a partner client (Bean There Coffee) and an operator client and writes their ids
and secrets to ``demo-credentials.json`` in EXCHANGE_HOME, readable by its owner only
(0600): the database keeps only the secrets' hashes, so that file is the only place the
plaintext lives. Later runs keep those clients and read the file, as long as each of its
clients still authenticates here as the demo's (active, its secret, the demo's scopes).
When the file is missing, or names clients that no longer do (revoked, another database,
other scopes), the demo gets new clients and a new file, and says why
(:class:`CredentialsState`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from exchange import ledger
from exchange.insights import profiles, segments, targets
from exchange.insights.models import Target
from exchange.kit.db import Connection
from exchange.kit.errors import DomainError
from exchange.kit.settings import Tunables
from exchange.loyalty import campaigns, purchases, tiers
from exchange.loyalty.campaigns import CampaignDraft
from exchange.loyalty.models import CampaignStatus, Channel, Effect, EffectKind, Item
from exchange.loyalty.requests import PurchaseRequest
from partners import clients, identity, registry
from partners.identity import IdentityKeys
from partners.models import ContractTerms, FundingModel

DEMO_CLIENT = "demo-seed"
CREDENTIALS_FILE = "demo-credentials.json"
#: Before the credentials file, the demo kept only its clients' ids here and made new
#: clients on every run; the clients it names are revoked and the file removed.
OLD_CLIENTS_FILE = "demo-clients.json"
PARTNER = "Bean There Coffee"

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
    # Delegated to a member token by token exchange (docs/api.md section 7): a wallet
    # reads with wallet:read, gifts points with wallet:transfer.
    "wallet:read",
    "wallet:transfer",
    "campaigns:read",
    "campaigns:write",
    "webhooks:write",
    "insights:read",
    "offers:write",
]
OPERATOR_SCOPES = [
    "partners:admin",
    "settlement:run",
    "settlement:read:all",
    "ledger:read:all",
    "insights:read",
]


class CredentialsState(StrEnum):
    """What became of the demo's OAuth clients on this run."""

    NEW = "new"  # a new coalition: new clients, a new credentials file
    KEPT = "kept"  # the clients of the credentials file, as they were
    MISSING = "missing"  # the coalition was there, its file was not: new clients and file
    REPLACED = "replaced"  # the file's clients no longer work here: new clients and file


Credential = dict[str, str | None]


@dataclass
class DemoSummary:
    seeded: bool
    partners: dict[str, int]
    #: The whole month of history that has ended: settle it with --from/--to these days.
    last_month: tuple[date, date]
    credentials: list[Credential] = field(default_factory=list)
    #: Where the credentials are kept (0600), and whether they are the file's or new.
    credentials_file: Path | None = None
    credentials_state: CredentialsState = CredentialsState.NEW


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


async def _partner_ids(conn: Connection, now: datetime) -> tuple[dict[str, int], bool]:
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
    conn: Connection, ids: dict[str, int], keys: IdentityKeys, now: datetime
) -> dict[str, int]:
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
    return members


TIERS = [("Silver", 0, "1"), ("Gold", 2_000, "1.25"), ("Platinum", 10_000, "1.5")]
#: (partner, member ref, amount, items (category, amount)), this month
PURCHASES = [
    ("Reel Cinemas", "alice-r", "24.00", [("tickets", "18.00"), ("popcorn", "6.00")]),
    ("Bean There Coffee", "bob", "7.40", [("coffee", "7.40")]),
]


async def _loyalty(
    conn: Connection, ids: dict[str, int], members: dict[str, int], now: datetime
) -> None:
    """Tiers, a running campaign, a co-funded one, and purchases they rewarded."""
    for name, threshold, multiplier in TIERS:
        await tiers.set_tier(conn, name=name, qualifying_points=threshold,
                             earn_multiplier=Decimal(multiplier), now=now)  # fmt: skip
    cinema, coffee = ids["Reel Cinemas"], ids["Bean There Coffee"]
    start = months(now)[1]
    weekend = await campaigns.create(conn, owner=cinema, created_by=DEMO_CLIENT, now=now,
                                     draft=CampaignDraft(
        name="Double points at the weekend", starts_at=start, condition="purchase.weekday >= 6",
        effect=Effect(EffectKind.MULTIPLIER, Decimal(2)), budget_points=50_000,
    ))  # fmt: skip
    popcorn = await campaigns.create(conn, owner=cinema, created_by=DEMO_CLIENT, now=now,
                                     draft=CampaignDraft(
        name="Coffee and a movie: 100 points with popcorn", starts_at=start,
        condition='"popcorn" in purchase.categories', per_member_limit=3,
        effect=Effect(EffectKind.FIXED, Decimal(100)), budget_points=20_000,
        funders=((cinema, Decimal("0.5")), (coffee, Decimal("0.5"))),
    ))  # fmt: skip
    await campaigns.answer(conn, campaign_id=popcorn.id, partner_id=coffee, accept=True, now=now)
    for campaign in (weekend, popcorn):
        await campaigns.move(conn, campaign_id=campaign.id, to=CampaignStatus.ACTIVE,
                             owner=cinema, now=now)  # fmt: skip
    for number, (partner, ref, amount, items) in enumerate(PURCHASES, start=1):
        request = PurchaseRequest(
            member_id=members[ref], amount=Decimal(amount), currency="USD",
            occurred_at=start + (now - start) * number // (len(PURCHASES) + 1),
            items=tuple(Item(category, Decimal(total)) for category, total in items),
            idempotency_key=f"demo-purchase-{number}", channel=Channel.IN_STORE,
        )  # fmt: skip
        await purchases.record(conn, client_id=DEMO_CLIENT, partner_id=ids[partner],
                               request=request, now=now, tunables=Tunables())  # fmt: skip


async def _insights(
    conn: Connection, ids: dict[str, int], members: dict[str, int], now: datetime
) -> None:
    """A custom segment of the coffee chain, Alice's consent to cross-partner use, and a
    targeted campaign: the coffee chain's ACTIVE members get an offer (10 % held out)."""
    coffee = ids["Bean There Coffee"]
    await segments.create(conn, owner=coffee, name="REGULARS", created_by=DEMO_CLIENT,
                          condition="profile.purchases >= 2 || profile.frequency >= 4",
                          now=now)  # fmt: skip
    await profiles.set_consent(conn, member_id=members["alice"], consent=True, now=now)
    comeback = await campaigns.create(conn, owner=coffee, created_by=DEMO_CLIENT, now=now,
                                      draft=CampaignDraft(
        name="A pastry on us", starts_at=months(now)[1], ends_at=now + timedelta(days=30),
        effect=Effect(EffectKind.FIXED, Decimal(50)), per_member_limit=1,
    ))  # fmt: skip
    await targets.select(conn, campaign=comeback, now=now, target=Target(
        segment="ACTIVE", offer_title="A free pastry with your next coffee",
        offer_description="Activate it, then buy a coffee: 50 bonus points.",
    ))  # fmt: skip
    await campaigns.move(conn, campaign_id=comeback.id, to=CampaignStatus.ACTIVE,
                         owner=coffee, now=now)  # fmt: skip


#: role -> (the scopes its client has, who it is in the printed credentials)
ROLES = {
    "partner": (PARTNER_SCOPES, f"partner {PARTNER}"),
    "operator": (OPERATOR_SCOPES, "operator"),
}


CREDENTIAL_KEYS = ("role", "who", "client_id", "client_secret", "scope")


def _read_credentials(path: Path) -> list[Credential] | None:
    """The credentials in the file, one per role; None if it is missing or not ours."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
        credentials: list[Credential] = [
            {key: str(credential[key]) for key in CREDENTIAL_KEYS}
            for credential in document["credentials"]
        ]
    except (OSError, ValueError, LookupError, TypeError):
        return None
    if sorted(str(c["role"]) for c in credentials) != sorted(ROLES):
        return None
    return credentials


async def _still_working(conn: Connection, credentials: list[Credential], partner_id: int) -> bool:
    """Whether each client authenticates here as the demo's: active, with its secret,
    the demo's scopes and (the partner's) the demo partner."""
    for credential in credentials:
        scopes, _ = ROLES[str(credential["role"])]
        record = await clients.get_client(conn, client_id=str(credential["client_id"]))
        if (
            record is None
            or not record.active
            or not record.check_secret(str(credential["client_secret"]))
            or record.scopes != frozenset(scopes)
            or record.partner_id != (partner_id if credential["role"] == "partner" else None)
        ):
            return False
    return True


async def _revoke(conn: Connection, client_ids: list[str]) -> None:
    for client_id in client_ids:
        with contextlib.suppress(DomainError):  # gone already, or never in this database
            await clients.revoke_client(conn, client_id=client_id)


def _write_owner_only(path: Path, credentials: list[Credential]) -> None:
    """The credentials, in a file only its owner may read or write (0600), replaced at
    once (never half written)."""
    document = {
        "about": "OAuth clients of the demo coalition (exchange serve --demo); keep private",
        "credentials": credentials,
    }
    draft = path.with_name(f".{path.name}.new")
    draft.unlink(missing_ok=True)
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    os.replace(draft, path)


async def _new_clients(conn: Connection, partner_id: int) -> list[Credential]:
    credentials = []
    for role, (scopes, who) in ROLES.items():
        created = await clients.create_client(
            conn, scopes=scopes, partner_id=partner_id if role == "partner" else None
        )
        credentials.append(
            {
                "role": role,
                "who": who,
                "client_id": created.client_id,
                "client_secret": created.client_secret,
                "scope": " ".join(created.scopes),
            }
        )
    return credentials


async def _demo_clients(
    conn: Connection, partner_id: int, home: Path, *, seeded: bool
) -> tuple[list[Credential], CredentialsState]:
    """The clients of the credentials file when they still work here; new ones (and a
    new file) otherwise."""
    path = home / CREDENTIALS_FILE
    old = home / OLD_CLIENTS_FILE
    if old.exists():
        with contextlib.suppress(OSError, ValueError, TypeError):
            await _revoke(conn, [str(client_id) for client_id in json.loads(old.read_text())])
        old.unlink()
    kept = _read_credentials(path)
    if kept is not None and await _still_working(conn, kept, partner_id):
        path.chmod(0o600)
        return kept, CredentialsState.KEPT
    if kept is not None:
        await _revoke(conn, [str(credential["client_id"]) for credential in kept])
    if path.exists():
        state = CredentialsState.REPLACED
    else:
        state = CredentialsState.NEW if seeded else CredentialsState.MISSING
    credentials = await _new_clients(conn, partner_id)
    _write_owner_only(path, credentials)
    return credentials, state


async def seed(conn: Connection, *, now: datetime, keys: IdentityKeys, home: Path) -> DemoSummary:
    ids, created = await _partner_ids(conn, now)
    if created:
        members = await _history(conn, ids, keys, now)
        await _loyalty(conn, ids, members, now)
        await _insights(conn, ids, members, now)
    credentials, state = await _demo_clients(conn, ids[PARTNER], home, seeded=created)
    last_month, this_month = months(now)
    return DemoSummary(
        seeded=created,
        partners=ids,
        credentials=credentials,
        last_month=(last_month.date(), this_month.date()),
        credentials_file=home / CREDENTIALS_FILE,
        credentials_state=state,
    )
