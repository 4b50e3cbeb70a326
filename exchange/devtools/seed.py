"""`exchange bench seed`: fill the database with a coalition at benchmark scale (DESIGN.md
section 9: a settlement run over 1,000,000 entries, the wallet query at 1,000,000
members).

The history is made by the ledger's own operations: members are opened by
``ledger.open_members``, and entries are ``ledger.earn_many`` and ``ledger.redeem_many``
requests (backdated ``effective_at``) written by the one ledger writer, in batches of up
to a thousand per partner. So what lands is what live requests would have written
(entries with keys and request digests, postings, lots consumed oldest expiry first,
balances) by construction, and ``exchange verify`` checks it. Links and identities go
through the partners package's repository, set-based.

Entry ``i`` of the history: 3 in 10 are redemptions (``i % 10`` in 2, 5, 8), each by the
member of the earn just before it, for at most that earn's points, at the member's second
partner, so no wallet ever runs short; an earn is booked at the member's home partner 4
times in 5, else at its second partner. A hash of ``i`` chooses member and points, so
the same counts always give the same coalition.

``--purchases N`` adds N purchases after the history, recorded by the loyalty engine
(``purchases.record_many``: the purchase, its awards, the member's profile), for insights.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from exchange import delivery, ledger
from exchange.kit.db import Connection, Database
from exchange.kit.errors import DomainError, InvalidInput
from exchange.kit.settings import Tunables
from exchange.kit.system import SYSTEM
from exchange.loyalty import purchases
from exchange.loyalty import repository as loyalty_repository
from exchange.loyalty.models import Item
from exchange.loyalty.requests import PurchaseRequest
from partners import crypto, registry, repository
from partners.identity import IdentityKeys
from partners.models import ContractTerms, FundingModel

SEED_CLIENT = "seed"
PARTNER_NAME = "seed-{}"
MEMBER_REF = "seed-{}"
WINDOW_DAYS = 60
POINTS_LIFETIME_DAYS = 365
MEMBERS_PER_TRANSACTION = 20_000
ENTRIES_PER_TRANSACTION = 20_000
MAX_MEMBERS = 50_000_000
MAX_ENTRIES = 50_000_000
MAX_PARTNERS = 500
#: Purchases planned at a time; each partner's share of them is one transaction, and
#: PURCHASE_WRITERS of those run at once (different partners: a transaction locks its
#: members' wallets before any other shared row, so they wait but never deadlock).
PURCHASES_PER_ROUND = 10_000
PURCHASE_WRITERS = 2
#: A seed partner's trade, by slot: what its purchases' items are.
CATEGORIES = ("coffee", "cinema", "books", "groceries", "fuel", "fashion", "travel")

T = TypeVar("T")


@dataclass(frozen=True)
class SeedSummary:
    partners: list[str]
    members: int
    entries: int
    redemptions: int
    purchases: int
    period_start: datetime
    period_end: datetime
    seconds: float


@dataclass(frozen=True)
class Planned:
    """Entry ``number`` of the history: who, how many points, at which partner slot."""

    number: int
    member: int
    points: int
    partner: int
    redeem: bool


def check_counts(*, members: int, entries: int, partners: int, purchases: int = 0) -> None:
    if not 0 <= purchases <= MAX_ENTRIES:
        raise InvalidInput(f"--purchases must be 0 to {MAX_ENTRIES:,}", field=["purchases"])
    if not 1 <= members <= MAX_MEMBERS:
        raise InvalidInput(f"--members must be 1 to {MAX_MEMBERS:,}", field=["members"])
    if not 1 <= entries <= MAX_ENTRIES:
        raise InvalidInput(f"--entries must be 1 to {MAX_ENTRIES:,}", field=["entries"])
    if not 1 <= partners <= MAX_PARTNERS:
        raise InvalidInput(f"--partners must be 1 to {MAX_PARTNERS}", field=["partners"])


def _terms(number: int) -> ContractTerms:
    """Half the partners prefund their points, half pay on redemption: settlement sees both."""
    return ContractTerms(
        currency="USD",
        issue_price=Decimal("0.010"),
        redemption_price=Decimal("0.008"),
        fee_rate=Decimal("0.02"),
        funding_model=FundingModel.PREFUNDED if number % 2 == 0 else FundingModel.ON_REDEMPTION,
        points_lifetime_days=POINTS_LIFETIME_DAYS,
    )


def _hash(*parts: int) -> int:
    digest = hashlib.blake2b(b":".join(str(p).encode() for p in parts), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def partners_of(member: int, partners: int) -> tuple[int, int]:
    """A member's home partner slot and a second one (another, when there are two or more)."""
    home = member % partners
    second = (home + 1 + (member // partners) % max(partners - 1, 1)) % partners
    return home, second


def plan(members: int, entries: int, partners: int) -> Iterator[Planned]:
    """The history, in time order."""
    previous: Planned | None = None
    for number in range(entries):
        if number % 10 in (2, 5, 8) and previous is not None and not previous.redeem:
            points = 1 + _hash(number, 2) % previous.points
            slot = partners_of(previous.member, partners)[1]
            entry = Planned(number, previous.member, points, slot, redeem=True)
        else:
            member = _hash(number, 0) % members
            home, second = partners_of(member, partners)
            slot = second if _hash(number, 3) % 5 == 0 else home
            entry = Planned(number, member, 50 + _hash(number, 1) % 951, slot, redeem=False)
        previous = entry
        yield entry


async def seed(
    database: Database,
    *,
    members: int,
    entries: int,
    partners: int,
    secret: bytes,
    now: datetime,
    progress: Callable[[str], None],
    purchases: int = 0,
    resume: bool = False,
) -> SeedSummary:
    """Seed partners ``seed-0``..., members with refs ``seed-<n>``, and ``entries`` entries
    spread over the last WINDOW_DAYS whole days (so settlement can take them as a period).
    ``resume``: go on with the purchases of a seed stopped the same day, with the same
    counts (its partners, members and entries are kept)."""
    check_counts(members=members, entries=entries, partners=partners, purchases=purchases)
    started = time.monotonic()
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=WINDOW_DAYS)
    names = [PARTNER_NAME.format(number) for number in range(partners)]
    if resume:
        await _resume(database, members, purchases, (start, end), now, progress)
        await _fan_out(database, now, progress)
        return SeedSummary(
            partners=names, members=members, entries=entries, redemptions=0,
            purchases=purchases, period_start=start, period_end=end,
            seconds=round(time.monotonic() - started, 1),
        )  # fmt: skip
    async with database.transaction(SYSTEM) as conn:
        if await seed_partners(conn):
            raise InvalidInput(
                "this database is already seeded (it has seed partners); seed a fresh one"
                " (another EXCHANGE_HOME or DATABASE_URL)"
            )
        partner_ids = [
            (await registry.add_partner(conn, name=name, terms=_terms(number), now=start)).id
            for number, name in enumerate(names)
        ]
    member_ids = await _members(database, members, partner_ids, secret, start, progress)
    step = (end - start) / entries
    history = plan(members, entries, partners)
    written = redemptions = 0
    while written < entries:
        chunk = [next(history) for _ in range(min(ENTRIES_PER_TRANSACTION, entries - written))]
        async with database.transaction(SYSTEM) as conn:
            await _entries(conn, chunk, member_ids, partner_ids, start, step, now)
        written += len(chunk)
        redemptions += sum(entry.redeem for entry in chunk)
        rate = written / (time.monotonic() - started)
        progress(f"… {written:,}/{entries:,} entries ({rate:,.0f} entries/s)")
    await _purchases(database, purchases, member_ids, partner_ids, (start, end), now, progress)
    await _fan_out(database, now, progress)
    return SeedSummary(
        partners=names,
        members=members,
        entries=entries,
        redemptions=redemptions,
        purchases=purchases,
        period_start=start,
        period_end=end,
        seconds=round(time.monotonic() - started, 1),
    )


async def _fan_out(database: Database, now: datetime, progress: Callable[[str], None]) -> None:
    """The events the seed wrote, fanned out as the deliverer would: a server started on
    the database then has no backlog to work through (10,404,118 events after a seed of
    5,000,000 purchases) beside whatever it is measured with."""
    started = time.monotonic()

    def report(total: int) -> None:
        rate = total / max(time.monotonic() - started, 1e-9)
        progress(f"… {total:,} events fanned out ({rate:,.0f} events/s)")

    await delivery.fan_out_backlog(database, now=now, progress=report)


async def _members(
    database: Database,
    count: int,
    partner_ids: list[int],
    secret: bytes,
    at: datetime,
    progress: Callable[[str], None],
) -> list[int]:
    """Open the members, link each to its home and second partner as ``seed-<n>``, and
    seal each one's e-mail as partners.identity does (blind index and ciphertext)."""
    keys = IdentityKeys.from_secret(secret)
    member_ids: list[int] = []
    for first in range(0, count, MEMBERS_PER_TRANSACTION):
        numbers = range(first, min(count, first + MEMBERS_PER_TRANSACTION))
        async with database.transaction(SYSTEM) as conn:
            opened = await ledger.open_members(conn, count=len(numbers))
            pairs = list(zip(numbers, opened, strict=True))
            identities = [_identity(keys, n, member_id, at) for n, member_id in pairs]
            await repository.copy_identities(conn, records=identities)
            links = [
                (partner_ids[slot], MEMBER_REF.format(n), member_id)
                for n, member_id in pairs
                for slot in sorted(set(partners_of(n, len(partner_ids))))
            ]
            await repository.insert_links_many(conn, links=links, now=at)
        member_ids.extend(opened)
        progress(f"… {len(member_ids):,}/{count:,} members")
    return member_ids


def _identity(keys: IdentityKeys, number: int, member_id: int, at: datetime) -> tuple[object, ...]:
    email = f"{MEMBER_REF.format(number)}@seed.invalid"
    return (
        member_id,
        crypto.blind_index(keys.index_key, "email", email),
        crypto.encrypt(keys.encryption_key, email, associated=b"email"),
        at,
    )


async def _entries(
    conn: Connection,
    chunk: list[Planned],
    member_ids: list[int],
    partner_ids: list[int],
    start: datetime,
    step: timedelta,
    now: datetime,
) -> None:
    """One chunk of the history: its earns, then its redemptions (each follows its earn),
    per partner, through the ledger's batch operations."""
    earns: dict[int, list[ledger.EarnRequest]] = defaultdict(list)
    redeems: dict[int, list[ledger.RedeemRequest]] = defaultdict(list)
    for entry in chunk:
        key, member_id = f"{SEED_CLIENT}-{entry.number}", member_ids[entry.member]
        at = start + step * entry.number
        if entry.redeem:
            redeems[entry.partner].append(
                ledger.RedeemRequest(key, member_id, entry.points, effective_at=at)
            )
        else:
            earns[entry.partner].append(
                ledger.EarnRequest(key, member_id, entry.points, effective_at=at)
            )
    for slot, requests in sorted(earns.items()):
        for batch in _batches(requests):
            _check(
                await ledger.earn_many(
                    conn,
                    client_id=SEED_CLIENT,
                    partner_id=partner_ids[slot],
                    requests=batch,
                    now=now,
                )
            )
    for slot, redemptions in sorted(redeems.items()):
        for group in _batches(redemptions):
            _check(
                await ledger.redeem_many(
                    conn,
                    client_id=SEED_CLIENT,
                    partner_id=partner_ids[slot],
                    requests=group,
                    now=now,
                )
            )


async def _resume(
    database: Database,
    members: int,
    purchases: int,
    window: tuple[datetime, datetime],
    now: datetime,
    progress: Callable[[str], None],
) -> None:
    """The purchases of a stopped seed from the first round it may not have finished: a
    round commits a transaction per partner, so its recorded part replays (the same
    idempotency keys and requests) and the rest is recorded."""
    async with database.transaction(SYSTEM) as conn:
        partner_ids = await seed_partners(conn)
        member_ids = await repository.members_by_numbered_ref(
            conn, partner_ids=partner_ids, prefix=MEMBER_REF.format("")
        )
        recorded = await loyalty_repository.purchases_of_client(conn, client_id=SEED_CLIENT)
    seeded = len(member_ids)
    if not partner_ids or seeded != members:
        raise InvalidInput(
            f"nothing to resume: this database has {seeded:,} seed members, not {members:,}"
        )
    first = recorded - recorded % PURCHASES_PER_ROUND
    progress(f"… resuming at purchase {first:,} ({recorded:,} recorded)")
    await _purchases(database, purchases, member_ids, partner_ids, window, now, progress, first)


async def _purchases(
    database: Database,
    count: int,
    member_ids: list[int],
    partner_ids: list[int],
    window: tuple[datetime, datetime],
    now: datetime,
    progress: Callable[[str], None],
    first_round: int = 0,
) -> None:
    """``count`` purchases over the window, recorded by the loyalty engine itself
    (``purchases.record_many``, as batched ``recordPurchase`` calls are: the purchase,
    its awards as earn entries, the member's profile), in time order per partner, a
    transaction per partner and round, two partners' at a time."""
    started = time.monotonic()
    writers = asyncio.Semaphore(PURCHASE_WRITERS)

    async def record(slot: int, requests: list[PurchaseRequest]) -> None:
        async with writers, database.transaction(SYSTEM) as conn:
            _check(await purchases.record_many(
                conn, client_id=SEED_CLIENT, partner_id=partner_ids[slot], requests=requests,
                now=now, tunables=Tunables(),
            ))  # fmt: skip

    for first in range(first_round, count, PURCHASES_PER_ROUND):
        numbers = range(first, min(count, first + PURCHASES_PER_ROUND))
        by_partner: dict[int, list[PurchaseRequest]] = defaultdict(list)
        for number in numbers:
            slot, request = _purchase(number, count, member_ids, len(partner_ids), window)
            by_partner[slot].append(request)
        await asyncio.gather(*(record(slot, batch) for slot, batch in by_partner.items()))
        rate = (numbers.stop - first_round) / (time.monotonic() - started)
        progress(f"… {numbers.stop:,}/{count:,} purchases ({rate:,.0f} purchases/s)")


def _purchase(
    number: int, count: int, member_ids: list[int], partners: int, window: tuple[datetime, datetime]
) -> tuple[int, PurchaseRequest]:
    """Purchase ``number``: by a member a hash chooses, at its home partner 4 times in 5,
    of 5 to 104 USD in the partner's category; its partner's slot and the request."""
    start, end = window
    member = _hash(number, 5) % len(member_ids)
    home, second = partners_of(member, partners)
    slot = second if _hash(number, 6) % 5 == 0 else home
    amount = Decimal(5 + _hash(number, 7) % 100)
    return slot, PurchaseRequest(
        member_id=member_ids[member], amount=amount, currency="USD",
        occurred_at=start + (end - start) * number / count,
        items=(Item(CATEGORIES[slot % len(CATEGORIES)], amount),),
        idempotency_key=f"{SEED_CLIENT}-purchase-{number}",
    )  # fmt: skip


def _batches(requests: list[T]) -> Iterator[list[T]]:
    for first in range(0, len(requests), ledger.MAX_BATCH):
        yield requests[first : first + ledger.MAX_BATCH]


def _check(outcomes: Sequence[object]) -> None:
    """A seeded request that fails is a bug in the plan: stop, write nothing more."""
    for outcome in outcomes:
        if isinstance(outcome, DomainError) or outcome is None:
            raise InvalidInput(f"the seed plan produced a request the ledger refused: {outcome!r}")


async def seed_partners(conn: Connection) -> list[int]:
    """The ids of the seed partners, in seed order."""
    return await repository.partners_named_like(conn, pattern="^seed-[0-9]+$")


async def share_members(conn: Connection, *, partner_ids: list[int], count: int) -> list[str]:
    """Refs of up to ``count`` random seeded members, each now linked under the same ref to
    every seed partner, as a partner linking a known customer would, so that a load
    generator may ask any seed partner about any of them."""
    return await repository.link_sample_to_partners(conn, partner_ids=partner_ids, count=count)
