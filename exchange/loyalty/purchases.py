"""Purchases: a partner reports what happened, the coalition's rules decide the points.

:func:`record` does it all in the caller's one transaction, under the purchase's one
idempotency key: it stores the purchase (behaviour data, kept for insights), evaluates the
rules in force at ``occurredAt`` (the contract's earn rate, the member's tier, the
campaigns that can apply and whose condition holds), takes campaign budgets and
per-member uses, books every award as an EARN entry through the ledger (one statement for
all of them: each funder's part is a lot issued by that funder, the tier's by the
coalition), and updates the member's aggregates and tier. A replay returns the original
purchase. :func:`preview` runs the same rules and writes nothing. :func:`refund` takes
back base and bonus points in proportion to the amount refunded, through the ledger's
reversals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from exchange import ledger
from exchange.kit.batching import SplitBatch
from exchange.kit.currency import minor_digits
from exchange.kit.db import Connection, Row, grant
from exchange.kit.errors import DomainError, InvalidInput, Kind, NotFound, Ref
from exchange.kit.invariant import present
from exchange.kit.limits import MAX_SIMULATED
from exchange.kit.settings import Tunables
from exchange.ledger.errors import LimitExceeded
from exchange.ledger.execution import single
from exchange.ledger.idempotency import request_hash, reused
from exchange.ledger.models import EntryKind
from exchange.ledger.requests import Issuer
from exchange.loyalty import campaigns, conditions, repository, rules, tiers
from exchange.loyalty.models import Award, AwardRule, Campaign, Channel, Item, Purchase, Tier
from exchange.loyalty.requests import PurchaseRequest, RefundRequest, check_minor_digits
from partners import registry
from settlement.money import minor_unit, round_total

RECENT_DAYS = 30
#: How far ahead of our clock a partner's occurredAt may be (its till's clock drifts).
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Recorded:
    """A purchase and the ledger entries that booked its awards (a replay: the first
    request's)."""

    purchase: Purchase
    entries: list[ledger.EntryView]
    replayed: bool = False


@dataclass(frozen=True)
class _Terms:
    currency: str
    earn_rate: Decimal
    max_points: int
    partner_name: str
    lifetime_days: int
    #: The contract is in force from then until at least the time it was read for.
    effective_from: datetime


@dataclass(frozen=True)
class _Evaluation:
    planned: list[rules.Planned]
    occurred_at: datetime
    terms: _Terms
    tiers: list[Tier]
    #: The member's tier, and its qualifying points in the window, before this purchase.
    held: str | None
    qualifying: int


async def _contract(conn: Connection, partner_id: int, at: datetime) -> _Terms:
    """The contract in force when a purchase happened."""
    try:
        partner = await registry.get_partner(conn, partner_id=partner_id, now=at)
    except NotFound:  # the caller is this partner: it had no contract yet at occurredAt
        raise InvalidInput(
            "occurredAt is before the partner's first contract", field=["occurredAt"]
        ) from None
    contract = partner.contract
    terms = contract.terms
    return _Terms(
        terms.currency, terms.earn_rate, terms.max_points_per_operation, partner.name,
        terms.points_lifetime_days, contract.effective_from,
    )  # fmt: skip


def _in_force(known: Sequence[tuple[datetime, _Terms]], at: datetime) -> _Terms | None:
    """A contract read for a time at or after ``at`` that was already in force at ``at``
    is the one in force at ``at`` (no contract starts between the two)."""
    return next((terms for read, terms in known if terms.effective_from <= at <= read), None)


def _checked(request: PurchaseRequest, terms: _Terms) -> None:
    """The purchase's money checked against its contract: its currency, at most its
    minor digits."""
    if request.currency != terms.currency:
        raise InvalidInput(f"currency must be the contract's {terms.currency}", field=["currency"])
    digits = minor_digits(terms.currency)
    check_minor_digits(request.amount, digits, ["amount"])
    for index, item in enumerate(request.items):
        check_minor_digits(item.amount, digits, ["items", str(index), "amount"])


def _minor(amount: Decimal, currency: str) -> int:
    return int(amount / minor_unit(currency))


def _purchase_variables(request: PurchaseRequest, at: datetime, currency: str) -> dict[str, Any]:
    local = request.occurred_at or at
    return {
        "amount_minor": _minor(request.amount, currency),
        "currency": currency,
        "channel": str(request.channel) if request.channel else "",
        "categories": sorted({item.category for item in request.items}),
        "items": [
            {
                "sku": item.sku or "",
                "category": item.category,
                "amount_minor": _minor(item.amount, currency),
                "quantity": item.quantity,
            }
            for item in request.items
        ],
        "store": request.store_ref or "",
        "weekday": local.isoweekday(),
        "hour": local.hour,
    }


async def _facts(
    conn: Connection, member_id: int, partner_id: int, at: datetime, window: date
) -> Row:
    rows = await repository.member_facts(
        conn, partner_id=partner_id, window=window,
        members=[(member_id, at, at - timedelta(days=RECENT_DAYS))],
    )  # fmt: skip
    return rows[0]


def _member_variables(facts: Row, partner_id: int, at: datetime, currency: str) -> dict[str, Any]:
    """What conditions know of the member. Where and what it bought in the last 30 days
    is coalition-wide only for a member who consented to cross-partner use; otherwise
    this partner's own."""
    own = f"{partner_id}:"
    partners = [p for p in facts.partners_recent if facts.consent or p.startswith(own)]
    categories = [c for c in facts.categories_recent if facts.consent or c.startswith(own)]
    last_here = facts.last_here
    return {
        "tier": facts.tier or "",
        "segments": list(facts.segments or []),
        "purchases_here": int(facts.purchases_here or 0),
        "spend_here_minor": _minor(Decimal(facts.spend_here or 0), currency),
        "purchases_coalition": int(facts.purchases_coalition),
        "days_since_last_here": (at - last_here).days if last_here is not None else -1,
        "partners_30d": sorted({p.split(":", 1)[1] for p in partners}),
        "categories_30d": sorted({c.split(":", 1)[1] for c in categories}),
    }


async def _evaluate(
    conn: Connection,
    *,
    partner_id: int,
    request: PurchaseRequest,
    now: datetime,
    tunables: Tunables,
) -> _Evaluation:
    """The rules in force at occurredAt, applied to one purchase (no budgets yet)."""
    [evaluation] = await _evaluate_many(
        conn, partner_id=partner_id, requests=[request], now=now, tunables=tunables
    )
    if isinstance(evaluation, DomainError):
        raise evaluation
    return evaluation


async def _timed_terms(
    conn: Connection, partner_id: int, requests: Sequence[PurchaseRequest], now: datetime
) -> list[tuple[datetime, _Terms] | DomainError]:
    """Each purchase's time and the contract in force then, its money checked against
    it; or the purchase's error. Contracts are read latest time first, so one read
    serves every earlier time the same contract covers."""
    known: list[tuple[datetime, _Terms]] = []
    for at in sorted({r.occurred_at or now for r in requests}, reverse=True):
        if at <= now + CLOCK_SKEW and _in_force(known, at) is None:
            try:
                known.append((at, await _contract(conn, partner_id, at)))
            except DomainError:  # no contract yet then, nor earlier: the error below
                break
    timed: list[tuple[datetime, _Terms] | DomainError] = []
    for request in requests:
        at = request.occurred_at or now
        try:
            timed.append((at, _terms_at(request, at, known, now)))
        except DomainError as error:
            timed.append(error)
    return timed


def _terms_at(
    request: PurchaseRequest, at: datetime, known: Sequence[tuple[datetime, _Terms]], now: datetime
) -> _Terms:
    if at > now + CLOCK_SKEW:
        raise InvalidInput("occurredAt is in the future", field=["occurredAt"])
    terms = _in_force(known, at)
    if terms is None:
        raise InvalidInput(
            "occurredAt is before the partner's first contract", field=["occurredAt"]
        )
    if at + timedelta(days=terms.lifetime_days) <= now:
        raise InvalidInput(
            f"occurredAt is more than the {terms.lifetime_days} days points live ago:"
            " its points would already have expired",
            field=["occurredAt"],
        )
    _checked(request, terms)
    return terms


async def _evaluate_many(
    conn: Connection,
    *,
    partner_id: int,
    requests: Sequence[PurchaseRequest],
    now: datetime,
    tunables: Tunables,
) -> list[_Evaluation | DomainError]:
    """The rules in force at each purchase's occurredAt, applied to it (no budgets yet):
    the members' facts in one statement, the partner's live campaigns once."""
    timed = await _timed_terms(conn, partner_id, requests, now)
    valid = [(r, t) for r, t in zip(requests, timed, strict=True) if isinstance(t, tuple)]
    facts = await repository.member_facts(
        conn, partner_id=partner_id, window=tiers.window_start(now, tunables),
        members=[(r.member_id, at, at - timedelta(days=RECENT_DAYS)) for r, (at, _) in valid],
    ) if valid else []  # fmt: skip
    live = await campaigns.live(conn, partner_id=partner_id) if valid else []
    evaluated = iter(
        _apply(request, at, terms, row, live, partner_id)
        for (request, (at, terms)), row in zip(valid, facts, strict=True)
    )
    return [t if isinstance(t, DomainError) else next(evaluated) for t in timed]


def _apply(
    request: PurchaseRequest,
    at: datetime,
    terms: _Terms,
    facts: Row,
    live: Sequence[rules.Live],
    partner_id: int,
) -> _Evaluation:
    """The rules applied to one purchase, its member's facts known."""
    member = _member_variables(facts, partner_id, at, terms.currency)
    ladder = tiers.ladder_of(facts.ladder)
    held = next((t for t in ladder if t.name == member["tier"]), None)
    offered = set(facts.offers or [])
    candidates = [
        each
        for each in live
        if each.campaign.applies_at(partner_id, at)
        and (not each.campaign.targeted or each.campaign.id in offered)
    ]
    variables = conditions.context(
        {
            "purchase": _purchase_variables(request, at, terms.currency),
            "member": member,
            "partner": {"id": partner_id, "name": terms.partner_name},
        }
    ) if candidates else None  # fmt: skip
    matching = [
        each.campaign
        for each in candidates
        if each.condition.holds(variables, campaign_id=each.campaign.id)
    ]
    planned = rules.plan_awards(
        amount=request.amount,
        items=request.items,
        earn_rate=terms.earn_rate,
        tier_multiplier=held.earn_multiplier if held else None,
        matching=matching,
        max_points=terms.max_points,
    )
    return _Evaluation(planned, at, terms, ladder, facts.tier, int(facts.qualifying))


def _funders(campaign: Campaign) -> list[tuple[int | None, Decimal]]:
    return [(f.partner_id, f.share) for f in campaign.funding]


def _shares(planned: rules.Planned, partner_id: int) -> list[Award]:
    """An award as the lots that book it: a campaign's split between its funders."""
    if planned.rule == AwardRule.BASE:
        return [Award(AwardRule.BASE, planned.points, partner_id)]
    if planned.rule == AwardRule.TIER:
        return [Award(AwardRule.TIER, planned.points, None)]
    campaign = present(planned.campaign, "a campaign award names its campaign")
    return [
        Award(AwardRule.CAMPAIGN, points, funder, campaign.id, campaign_name=campaign.name)
        for funder, points in rules.split(planned.points, _funders(campaign))
    ]


async def preview(
    conn: Connection,
    *,
    partner_id: int,
    request: PurchaseRequest,
    now: datetime,
    tunables: Tunables,
) -> list[Award]:
    """What recording the purchase now would award (budgets and per-member limits as they
    stand); writes nothing."""
    evaluation = await _evaluate(
        conn, partner_id=partner_id, request=request, now=now, tunables=tunables
    )
    limited = await _as_they_stand(conn, evaluation.planned, request.member_id)
    return [award for planned in limited for award in _shares(planned, partner_id)]


async def _as_they_stand(
    conn: Connection, planned: list[rules.Planned], member_id: int
) -> list[rules.Planned]:
    """Campaign awards after each campaign's per-member limit and what is left of its
    budget now, read and not taken (a preview)."""
    ids = [a.campaign.id for a in planned if a.campaign is not None]
    if not ids:
        return planned
    left = await repository.budgets_left(conn, campaign_ids=ids)
    uses = await repository.member_uses(conn, campaign_ids=ids, member_id=member_id)
    shown = []
    for award in planned:
        campaign = award.campaign
        points = award.points
        if campaign is not None:
            limit = campaign.per_member_limit
            if limit is not None and uses.get(campaign.id, 0) >= limit:
                continue
            if campaign.id in left:
                points = min(points, left[campaign.id])
                left[campaign.id] -= points
        if points > 0:
            shown.append(rules.Planned(award.rule, points, campaign))
    return shown


def _earn_requests(
    awards: list[Award], *, key: str, request: PurchaseRequest, partner_id: int, at: datetime
) -> list[ledger.EarnRequest]:
    """One EARN entry per award, keyed under the purchase's key; a lot issued by its
    funder (another partner, or the coalition), the entry the purchasing partner's."""
    return [
        ledger.EarnRequest(
            idempotency_key=f"{key}#{position}",
            member_id=request.member_id,
            points=award.points,
            reference=request.reference,
            effective_at=at,
            metadata={
                "purchase": key,
                "rule": str(award.rule),
                "campaign": award.campaign_id,
                "campaign_name": award.campaign_name,
            },
            issuer=Issuer(award.funder) if award.funder != partner_id else None,
        )
        for position, award in enumerate(awards, start=1)
    ]


async def _limited(conn: Connection, claimed: Sequence[_Claim]) -> list[list[rules.Planned]]:
    """Each purchase's campaign awards after each campaign's per-member limit and budget
    (a budget is never overspent: each shard refuses to exceed its allotment; near its
    end an award gets what is left, purchases served in order). One statement takes
    every per-member use, one every budget. No member appears twice in ``claimed``."""
    limits = {
        (a.campaign.id, c.request.member_id): a.campaign.per_member_limit
        for c in claimed
        for a in c.evaluation.planned
        if a.campaign is not None and a.campaign.per_member_limit is not None
    }
    used = await repository.take_member_uses(conn, limits=limits)
    allowed = [
        [a for a in c.evaluation.planned if a.campaign is None
         or (a.campaign.id, c.request.member_id) not in limits
         or (a.campaign.id, c.request.member_id) in used]
        for c in claimed
    ]  # fmt: skip
    wants: dict[int, int] = defaultdict(int)
    for awards in allowed:
        for a in awards:
            if a.campaign is not None and a.campaign.budget_points is not None:
                wants[a.campaign.id] += a.points
    left = await repository.take_budgets(conn, wants=dict(wants))
    limited: list[list[rules.Planned]] = []
    unused: list[tuple[int, int]] = []
    for c, awards in zip(claimed, allowed, strict=True):
        kept = []
        for award in awards:
            campaign, points = award.campaign, award.points
            if campaign is not None and campaign.id in wants:
                points = min(points, left.get(campaign.id, 0))
                left[campaign.id] = left.get(campaign.id, 0) - points
            if points > 0:
                kept.append(rules.Planned(award.rule, points, campaign))
            elif campaign is not None and (campaign.id, c.request.member_id) in limits:
                unused.append((campaign.id, c.request.member_id))  # not a use of the limit
        limited.append(kept)
    await repository.give_back_member_uses(conn, pairs=unused)
    return limited


@dataclass(frozen=True)
class _Claim:
    """A purchase of a batch whose key this transaction took."""

    index: int
    key: str
    request: PurchaseRequest
    evaluation: _Evaluation
    purchase_id: int


async def record(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    request: PurchaseRequest,
    now: datetime,
    tunables: Tunables,
) -> Recorded:
    """Record one purchase (a business error raised)."""
    [outcome] = await record_many(
        conn, client_id=client_id, partner_id=partner_id, requests=[request], now=now,
        tunables=tunables,
    )  # fmt: skip
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


async def record_many(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    requests: Sequence[PurchaseRequest],
    now: datetime,
    tunables: Tunables,
) -> list[Recorded | DomainError]:
    """Record purchases of one partner in the caller's transaction, one statement per
    step for all of them; each its own outcome. A purchase refused before anything of it
    is written (its time, contract, money) fails alone. One refused after its rows were
    written (a co-funder past its credit limit) raises: its error when it is the only
    one, else :class:`SplitBatch` (nothing of the batch may commit; the runner records
    each on its own). A member's second purchase in a batch is evaluated after its first
    is recorded (rounds); a key already taken is replayed after the batch."""
    outcomes: dict[int, Recorded | DomainError] = {}
    replays: list[int] = []
    for indexes in _rounds(requests):
        replays += await _record_round(
            conn, client_id=client_id, partner_id=partner_id, now=now, tunables=tunables,
            batch=[(i, requests[i]) for i in indexes], outcomes=outcomes,
            alone=len(requests) == 1,
        )  # fmt: skip
    for index in replays:
        request = requests[index]
        try:
            outcomes[index] = await _replay(
                conn, client_id=client_id, key=present(request.idempotency_key, "keyed"),
                digest=_digest(request, partner_id),
            )  # fmt: skip
        except DomainError as error:
            outcomes[index] = error
    return [outcomes[index] for index in range(len(requests))]


def _rounds(requests: Sequence[PurchaseRequest]) -> list[list[int]]:
    """The batch's indexes in rounds in which no member appears twice, each member's
    purchases in order."""
    rounds: list[list[int]] = []
    seen: dict[int, int] = defaultdict(int)
    for index, request in enumerate(requests):
        number = seen[request.member_id]
        seen[request.member_id] += 1
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(index)
    return rounds


def _digest(request: PurchaseRequest, partner_id: int) -> bytes:
    return request_hash(EntryKind.EARN, {"purchase": request.fingerprint(partner_id)})


async def _claim(
    conn: Connection,
    client_id: str,
    partner_id: int,
    pending: Sequence[tuple[int, PurchaseRequest, _Evaluation]],
    now: datetime,
) -> tuple[list[_Claim], list[int]]:
    """Take the purchases' keys in one statement: the claimed, and the indexes of the
    ones whose key was taken (to replay)."""
    keys = [present(r.idempotency_key, "a recorded purchase has a key") for _, r, _ in pending]
    ids = await repository.claim_purchases(conn, rows=[
        {"partner_id": partner_id, "member_id": r.member_id, "client_id": client_id,
         "idempotency_key": key, "request_hash": _digest(r, partner_id), "amount": r.amount,
         "currency": r.currency, "occurred_at": e.occurred_at,
         "channel": str(r.channel) if r.channel else None, "store_ref": r.store_ref,
         "reference": r.reference, "items": [_item_json(item) for item in r.items],
         "points": 0, "created_at": now}
        for (_, r, e), key in zip(pending, keys, strict=True)
    ])  # fmt: skip
    claimed = [
        _Claim(index, key, request, evaluation, purchase_id)
        for (index, request, evaluation), key, purchase_id in zip(pending, keys, ids, strict=True)
        if purchase_id is not None
    ]
    taken = [
        index
        for (index, _, _), purchase_id in zip(pending, ids, strict=True)
        if purchase_id is None
    ]
    return claimed, taken


async def _record_round(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    batch: Sequence[tuple[int, PurchaseRequest]],
    now: datetime,
    tunables: Tunables,
    outcomes: dict[int, Recorded | DomainError],
    alone: bool,
) -> list[int]:
    """One round of a batch (no member twice); the indexes to replay."""
    evaluations = await _evaluate_many(
        conn, partner_id=partner_id, requests=[r for _, r in batch], now=now, tunables=tunables
    )
    pending = []
    for (index, request), evaluation in zip(batch, evaluations, strict=True):
        if isinstance(evaluation, DomainError):
            outcomes[index] = evaluation
        else:
            pending.append((index, request, evaluation))
    claimed, taken = await _claim(conn, client_id, partner_id, pending, now)
    if not claimed:
        return taken
    awards = [
        [award for planned in kept for award in _shares(planned, partner_id)]
        for kept in await _limited(conn, claimed)
    ]
    await _grant_funders(conn, [a for group in awards for a in group], partner_id)
    entries = await _book(conn, client_id, partner_id, claimed, awards, now, alone=alone)
    await repository.record_outcomes(
        conn,
        partner_id=partner_id,
        outcomes=[_outcome(*each) for each in zip(claimed, awards, entries, strict=True)],
    )
    for c, group, booked in zip(claimed, awards, entries, strict=True):
        outcomes[c.index] = await _recorded(conn, c, group, booked, partner_id, now, tunables)
    return taken


def _outcome(
    claim: _Claim, awards: list[Award], entries: list[ledger.EntryView]
) -> repository.Outcome:
    at = claim.evaluation.occurred_at
    return repository.Outcome(
        purchase_id=claim.purchase_id,
        awards=[(a.rule, a.campaign_id, a.funder, a.points, e.id)
                for a, e in zip(awards, entries, strict=True)],
        points=sum(a.points for a in awards),
        member_id=claim.request.member_id,
        amount=claim.request.amount,
        occurred_at=at,
        categories=_category_spend(claim.request.items),
        month=tiers.month_of(at),
    )  # fmt: skip


async def _book(
    conn: Connection,
    client_id: str,
    partner_id: int,
    claimed: Sequence[_Claim],
    awards: Sequence[list[Award]],
    now: datetime,
    *,
    alone: bool,
) -> list[list[ledger.EntryView]]:
    """Every award of the round as an EARN entry, through the ledger's one writer (in
    statements of up to MAX_BATCH entries); each purchase's entries."""
    requests = [
        request
        for c, group in zip(claimed, awards, strict=True)
        for request in _earn_requests(
            group, key=c.key, request=c.request, partner_id=partner_id,
            at=c.evaluation.occurred_at,
        )
    ]  # fmt: skip
    # In member order across statements too: each statement locks its members' wallets,
    # so two transactions taking wallets in one order never wait on each other in a cycle.
    order = sorted(range(len(requests)), key=lambda n: requests[n].member_id)
    outcomes: list[ledger.Outcome | None] = [None] * len(requests)
    for first in range(0, len(order), ledger.MAX_BATCH):
        chunk = order[first : first + ledger.MAX_BATCH]
        written = await ledger.earn_many(
            conn, client_id=client_id, partner_id=partner_id, now=now,
            requests=[requests[n] for n in chunk],
        )  # fmt: skip
        for n, outcome in zip(chunk, written, strict=True):
            outcomes[n] = outcome
    flat = [award for group in awards for award in group]
    if not alone and any(not isinstance(o, ledger.EntryResult) for o in outcomes):
        raise SplitBatch("an award of a batched purchase was refused")
    entries = iter(
        _booked(award, outcome, partner_id).entry
        for award, outcome in zip(flat, outcomes, strict=True)
    )
    return [[next(entries) for _ in group] for group in awards]


async def _recorded(
    conn: Connection,
    claim: _Claim,
    awards: list[Award],
    entries: list[ledger.EntryView],
    partner_id: int,
    now: datetime,
    tunables: Tunables,
) -> Recorded:
    """A recorded purchase; its member goes up a tier if its points now reach one."""
    request, evaluation = claim.request, claim.evaluation
    at = evaluation.occurred_at
    total = sum(a.points for a in awards)
    counted = tiers.month_of(at) >= tiers.window_start(now, tunables)
    await tiers.upgrade_if_earned(
        conn, member_id=request.member_id, tiers=evaluation.tiers, held=evaluation.held,
        qualifying=evaluation.qualifying + (total if counted else 0), now=now,
    )  # fmt: skip
    purchase = Purchase(
        id=claim.purchase_id, partner_id=partner_id, member_id=request.member_id,
        amount=request.amount.quantize(minor_unit(request.currency)),
        refunded_amount=Decimal(0).quantize(minor_unit(request.currency)),
        currency=request.currency, occurred_at=at, channel=request.channel,
        store_ref=request.store_ref, reference=request.reference, points=total,
        awards=[replace(a, entry_id=e.id) for a, e in zip(awards, entries, strict=True)],
        created_at=now,
    )  # fmt: skip
    return Recorded(purchase, entries)


async def _grant_funders(conn: Connection, awards: Sequence[Award], partner_id: int) -> None:
    """Let this transaction issue from (or take back into) the accounts of the campaigns'
    other funders: each accepted its share, which is all row-level security admits."""
    funders = {a.funder for a in awards if a.funder is not None and a.funder != partner_id}
    await grant(conn, partners=sorted(funders))


def _booked(award: Award, outcome: Any, partner_id: int) -> ledger.EntryResult:
    """An award's entry, or its error; a co-funder past its credit limit fails the
    purchase with a message that says whose limit (nothing is written)."""
    if isinstance(outcome, LimitExceeded) and award.funder not in (None, partner_id):
        raise LimitExceeded(
            "partner {funder}, a funder of campaign " + repr(award.campaign_name) + ", has"
            " reached its credit limit; the campaign's owner can pause the campaign",
            field=None,
            refs={"funder": Ref(Kind.PARTNER, award.funder)},
        )
    return single([outcome])


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "sku": item.sku,
        "category": item.category,
        "amount": str(item.amount),
        "quantity": item.quantity,
    }


def _category_spend(items: Sequence[Item]) -> list[tuple[str, Decimal]]:
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for item in items:
        spend[item.category] += item.amount
    return sorted(spend.items())


async def _replay(conn: Connection, *, client_id: str, key: str, digest: bytes) -> Recorded:
    row = present(
        await repository.purchase_by_key(conn, client_id=client_id, idempotency_key=key),
        "a purchase key that was taken names a purchase",
    )
    if bytes(row.request_hash) != digest:
        raise reused()
    purchase = await load(conn, int(row.id))
    views = await ledger.entries_by_ids(
        conn, entry_ids=[a.entry_id for a in purchase.awards if a.entry_id is not None]
    )
    entries = [views[a.entry_id] for a in purchase.awards if a.entry_id in views]
    return Recorded(purchase, entries, replayed=True)


def purchase_of(row: Row, awards: Sequence[Row]) -> Purchase:
    return Purchase(
        id=int(row.id),
        partner_id=int(row.partner_id),
        member_id=int(row.member_id),
        amount=Decimal(row.amount).quantize(minor_unit(row.currency)),
        refunded_amount=Decimal(row.refunded_amount).quantize(minor_unit(row.currency)),
        currency=row.currency,
        occurred_at=row.occurred_at,
        channel=Channel(row.channel) if row.channel else None,
        store_ref=row.store_ref,
        reference=row.reference,
        points=int(row.points),
        awards=[
            Award(AwardRule(a.rule), int(a.points), a.funder_partner_id, a.campaign_id, a.entry_id)
            for a in awards
        ],
        created_at=row.created_at,
    )


async def load_many(conn: Connection, rows: Sequence[Row]) -> list[Purchase]:
    awards: dict[int, list[Row]] = defaultdict(list)
    for award in await repository.awards_of(conn, purchase_ids=[int(r.id) for r in rows]):
        awards[int(award.purchase_id)].append(award)
    return [purchase_of(row, awards[int(row.id)]) for row in rows]


async def load(conn: Connection, purchase_id: int) -> Purchase:
    rows = await repository.purchases_by_ids(conn, purchase_ids=[purchase_id])
    if not rows:
        raise NotFound("no purchase has that id", field=["purchaseId"])
    return (await load_many(conn, rows))[0]


async def refund(
    conn: Connection, *, client_id: str, partner_id: int, request: RefundRequest, now: datetime
) -> Recorded:
    """Take back points for ``amount`` of a purchase: each award reversed down to
    floor(points x refunded so far / amount), so the total never exceeds what was awarded
    and a full refund takes back everything; the ledger's reversal rules apply (points
    already spent: INSUFFICIENT_POINTS unless the issuer's contract allows a debt)."""
    digest = request_hash(EntryKind.REVERSAL, {"refund": request.fingerprint(partner_id)})
    row = await repository.lock_purchase(conn, purchase_id=request.purchase_id)
    if row is None or row.partner_id != partner_id:
        raise NotFound("no purchase has that id", field=["purchaseId"])
    earlier = await repository.refund_by_key(
        conn, client_id=client_id, idempotency_key=request.idempotency_key
    )
    if earlier is not None:
        if bytes(earlier.request_hash) != digest:
            raise reused()
        return await _refunded(
            conn, int(earlier.purchase_id), client_id, request.idempotency_key, True
        )
    amount = Decimal(row.amount)
    left = amount - Decimal(row.refunded_amount)
    refunded = request.amount if request.amount is not None else left
    if left <= 0 or refunded > left:
        raise InvalidInput(
            f"amount must be at most the {left.quantize(minor_unit(row.currency))} left to refund",
            field=["amount"],
        )
    check_minor_digits(refunded, minor_digits(row.currency), ["amount"])
    purchase = purchase_of(row, await repository.awards_of(conn, purchase_ids=[int(row.id)]))
    points = await _reverse_awards(
        conn, purchase, client_id=client_id, partner_id=partner_id, key=request.idempotency_key,
        refunded=Decimal(row.refunded_amount) + refunded, now=now,
    )  # fmt: skip
    await repository.claim_refund(
        conn, purchase_id=purchase.id, amount=refunded, points=points, client_id=client_id,
        idempotency_key=request.idempotency_key, request_hash=digest, created_at=now,
    )  # fmt: skip
    await repository.take_back_spend(
        conn, member_id=purchase.member_id, partner_id=partner_id, amount=refunded
    )
    await repository.add_qualifying(
        conn,
        member_id=purchase.member_id,
        month=tiers.month_of(purchase.occurred_at),
        points=-points,
    )
    return await _refunded(conn, purchase.id, client_id, request.idempotency_key, False)


async def _reverse_awards(
    conn: Connection,
    purchase: Purchase,
    *,
    client_id: str,
    partner_id: int,
    key: str,
    refunded: Decimal,
    now: datetime,
) -> int:
    """Reverse each award down to its proportional share of what is refunded so far."""
    entry_ids = [present(a.entry_id, "an award was booked") for a in purchase.awards]
    await _grant_funders(conn, purchase.awards, partner_id)
    done = await repository.reversed_of(conn, entry_ids=entry_ids)
    requests = []
    for award, entry_id in zip(purchase.awards, entry_ids, strict=True):
        owed = rules.proportional(award.points, refunded, purchase.amount) - done.get(entry_id, 0)
        if owed > 0:
            requests.append(ledger.ReverseRequest(f"{key}#{entry_id}", entry_id, owed))
    if not requests:
        return 0
    outcomes = await ledger.reverse_many(
        conn, client_id=client_id, partner_id=partner_id, requests=requests, now=now
    )
    return sum(single([outcome]).points for outcome in outcomes)


async def _refunded(
    conn: Connection, purchase_id: int, client_id: str, key: str, replayed: bool
) -> Recorded:
    purchase = await load(conn, purchase_id)
    entries = await ledger.entries_by_keys(
        conn, client_id=client_id, keys=[f"{key}#{a.entry_id}" for a in purchase.awards]
    )
    return Recorded(purchase, entries, replayed=replayed)


@dataclass(frozen=True)
class Cost:
    """What a campaign would cost one funder (None: the coalition): points, and money at
    contract prices (a partner's issue price; the coalition's points at the redemption
    price of the partner where they were earned)."""

    funder: int | None
    points: int
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Simulation:
    matched: int
    points: int
    costs: list[Cost]


async def simulate(
    conn: Connection, *, campaign: Campaign, start: datetime, end: datetime
) -> Simulation:
    """Replay the purchases recorded in [start, end) at the campaign's owner (an operator's
    campaign: at every partner the caller sees), up to MAX_SIMULATED of them: how many
    would match, the points awarded (per-member limit and budget applied in order) and
    the money cost per funder. Members are judged on what is known of them now."""
    rows = await repository.purchases_between(
        conn, partner_id=campaign.owner_partner_id, start=start, end=end, limit=MAX_SIMULATED
    )
    condition = campaigns.condition_of(campaign.condition)
    tally = _Tally(budget_left=campaign.budget_points, limit=campaign.per_member_limit)
    for row in rows:
        if not _in_window(campaign, row.occurred_at):
            continue
        request = _stored(row)
        partner = await registry.get_partner(
            conn, partner_id=int(row.partner_id), now=row.occurred_at
        )
        terms = partner.contract.terms
        facts = await _facts(conn, request.member_id, int(row.partner_id), row.occurred_at,
                             tiers.month_of(row.occurred_at))  # fmt: skip
        member = _member_variables(facts, int(row.partner_id), row.occurred_at, terms.currency)
        variables = conditions.context({
            "purchase": _purchase_variables(request, row.occurred_at, terms.currency),
            "member": member,
            "partner": {"id": partner.id, "name": partner.name},
        })  # fmt: skip
        if not condition.holds(variables, campaign_id=campaign.id):
            continue
        tally.matched += 1
        base = rules.base_points(request.amount, terms.earn_rate)
        points = tally.award(
            request.member_id, rules.campaign_points(campaign, base, request.amount, request.items)
        )
        for funder, part in rules.split(points, _funders(campaign)):
            priced = await _price(conn, funder, partner, row.occurred_at)
            if priced is not None:
                tally.cost(funder, priced[1], part, priced[0])
    return tally.simulation()


def _in_window(campaign: Campaign, moment: datetime) -> bool:
    """A simulation tries a campaign before it is active: only its window counts."""
    return campaign.starts_at <= moment and (campaign.ends_at is None or moment < campaign.ends_at)


def _stored(row: Row) -> PurchaseRequest:
    items = row["items"] if isinstance(row["items"], list) else []
    return PurchaseRequest(
        member_id=int(row.member_id),
        amount=Decimal(row.amount),
        currency=row.currency,
        occurred_at=row.occurred_at,
        channel=Channel(row.channel) if row.channel else None,
        store_ref=row.store_ref,
        items=tuple(
            Item(i["category"], Decimal(i["amount"]), int(i["quantity"]), i.get("sku"))
            for i in items
        ),
    )


async def _price(
    conn: Connection, funder: int | None, partner: Any, at: datetime
) -> tuple[Decimal, str] | None:
    """The price of a funder's points: the coalition's at the purchasing partner's
    redemption price, a partner's at its issue price; None for a co-funder whose contract
    the caller may not see (its cost is its own and the operator's to know)."""
    if funder is None:
        terms = partner.contract.terms
        return terms.redemption_price, terms.currency
    try:
        funded = await registry.get_partner(conn, partner_id=funder, now=at)
    except NotFound:
        return None
    return funded.contract.terms.issue_price, funded.contract.terms.currency


@dataclass
class _Tally:
    budget_left: int | None
    limit: int | None
    matched: int = 0
    points: int = 0

    def __post_init__(self) -> None:
        self.uses: dict[int, int] = defaultdict(int)
        self.costs: dict[tuple[int | None, str], list[Decimal]] = defaultdict(
            lambda: [Decimal(0), Decimal(0)]
        )

    def award(self, member_id: int, points: int) -> int:
        if self.limit is not None and self.uses[member_id] >= self.limit:
            return 0
        if self.budget_left is not None:
            points = min(points, self.budget_left)
            self.budget_left -= points
        if points > 0:
            self.uses[member_id] += 1
            self.points += points
        return points

    def cost(self, funder: int | None, currency: str, points: int, price: Decimal) -> None:
        entry = self.costs[(funder, currency)]
        entry[0] += points
        entry[1] += points * price

    def simulation(self) -> Simulation:
        return Simulation(
            matched=self.matched,
            points=self.points,
            costs=[
                Cost(funder, int(points), round_total(amount, currency), currency)
                for (funder, currency), (points, amount) in sorted(
                    self.costs.items(), key=lambda item: (item[0][0] or 0, item[0][1])
                )
            ],
        )
