"""The loyalty engine as the API offers it: purchases (record, preview, refund, list),
campaigns (create, move through their lifecycle, co-fund, simulate, list), contract
changes, and a member's tier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from exchange import audit
from exchange.insights import targets
from exchange.insights.models import Target
from exchange.kit.clock import require_aware
from exchange.kit.errors import DomainError, Forbidden, InvalidInput, NotFound
from exchange.loyalty import campaigns as campaign_rules
from exchange.loyalty import purchases, repository, tiers
from exchange.loyalty.campaigns import CampaignDraft
from exchange.loyalty.models import (
    Award,
    Campaign,
    CampaignStatus,
    Channel,
    Item,
    MemberTier,
    Purchase,
)
from exchange.loyalty.purchases import Recorded, Simulation
from exchange.loyalty.requests import PurchaseRequest, RefundRequest
from exchange.usecases.addressed import for_members
from exchange.usecases.core import Call, use_case
from exchange.usecases.members import check_window_and_reference, may_read_member
from partners import identity, registry
from partners.models import ContractChanges, PartnerListing, PartnerStatus
from partners.principal import PrincipalKind


@dataclass(frozen=True)
class ReportedPurchase:
    """A purchase as the partner reports it, naming the member by its own ref."""

    member_ref: str
    amount: Decimal
    currency: str
    occurred_at: datetime | None = None
    channel: Channel | None = None
    store_ref: str | None = None
    items: tuple[Item, ...] = ()
    reference: str | None = None
    idempotency_key: str | None = None


async def _request(call: Call, reported: ReportedPurchase) -> PurchaseRequest:
    member_id = await identity.resolve(
        call.conn, partner_id=call.partner_id, member_ref=reported.member_ref
    )
    return _purchase_request(reported, member_id)


def _purchase_request(reported: ReportedPurchase, member_id: int) -> PurchaseRequest:
    return PurchaseRequest(
        member_id=member_id,
        amount=reported.amount,
        currency=reported.currency,
        occurred_at=reported.occurred_at,
        channel=reported.channel,
        store_ref=reported.store_ref,
        items=reported.items,
        reference=reported.reference,
        idempotency_key=reported.idempotency_key,
    )


async def _record_purchases(
    call: Call, reported: Sequence[ReportedPurchase]
) -> list[Recorded | DomainError]:
    """Purchases of one partner in one unit of work (micro-batched): refs resolved in one
    query, the purchases recorded together, each its own outcome."""

    async def record(requests: list[PurchaseRequest]) -> list[Recorded | DomainError]:
        return await purchases.record_many(
            call.conn, client_id=call.principal.client_id, partner_id=call.partner_id,
            requests=requests, now=call.now, tunables=call.tunables,
        )  # fmt: skip

    return await for_members(call, reported, _purchase_request, record, check=_require_key)


def _require_key(reported: ReportedPurchase) -> None:
    if reported.idempotency_key is None:
        raise InvalidInput("idempotencyKey is required", field=["idempotencyKey"])


@use_case(partner="points:earn", many=_record_purchases, batch_from=2)
async def record_purchase(call: Call, reported: ReportedPurchase) -> Recorded:
    """Record a purchase; the coalition's rules decide its points."""
    _require_key(reported)
    return await purchases.record(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=await _request(call, reported),
        now=call.now,
        tunables=call.tunables,
    )


@use_case(partner="points:earn")
async def preview_purchase(call: Call, reported: ReportedPurchase) -> list[Award]:
    """What recording a purchase would award; writes nothing."""
    request = await _request(call, replace(reported, idempotency_key=None))
    return await purchases.preview(
        call.conn, partner_id=call.partner_id, request=request, now=call.now,
        tunables=call.tunables,
    )  # fmt: skip


@use_case(partner="points:reverse")
async def refund_purchase(call: Call, request: RefundRequest) -> Recorded:
    """Take back a purchase's points in proportion to the amount refunded."""
    return await purchases.refund(
        call.conn,
        client_id=call.principal.client_id,
        partner_id=call.partner_id,
        request=request,
        now=call.now,
    )


@dataclass(frozen=True)
class PurchasePage:
    """``first`` purchases older than ``before_id``, narrowed as a transaction filter is
    (checked when made: the reference a client sent, aware times; the ref when resolved)."""

    first: int
    before_id: int | None = None
    member_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        check_window_and_reference(self)


@use_case(partner="transactions:read", operator="ledger:read:all")
async def purchases_page(call: Call, page: PurchasePage) -> list[Purchase]:
    """The caller's own purchases, newest first (an operator's: everyone's)."""
    partner_id = member_id = None
    if call.principal.kind == PrincipalKind.PARTNER:
        partner_id = call.partner_id
        if page.member_ref is not None:
            member_id = await identity.resolve(
                call.conn, partner_id=partner_id, member_ref=page.member_ref
            )
    rows = await repository.purchases_page(
        call.conn,
        partner_id=partner_id,
        member_id=member_id,
        since=page.since,
        until=page.until,
        reference=page.reference,
        before_id=page.before_id,
        limit=page.first,
    )
    return await purchases.load_many(call.conn, rows)


@use_case(partner="", operator="", member="")
async def purchase_by_id(call: Call, purchase_id: int) -> Purchase | None:
    """A purchase, if the caller may see it (row-level security decides)."""
    rows = await repository.purchases_by_ids(call.conn, purchase_ids=[purchase_id])
    return (await purchases.load_many(call.conn, rows))[0] if rows else None


# --- campaigns ------------------------------------------------------------------------


def _owner(call: Call) -> int | None:
    """A partner's campaigns are its own; an operator's are the coalition's."""
    return call.partner_id if call.principal.kind == PrincipalKind.PARTNER else None


@dataclass(frozen=True)
class NewCampaign:
    """A campaign's terms and, for a targeted one, who it reaches (its offers are made
    when it is created)."""

    draft: CampaignDraft
    target: Target | None = None


@use_case(partner="campaigns:write", operator="partners:admin")
async def create_campaign(call: Call, request: NewCampaign) -> Campaign:
    """A campaign of the caller (an operator's applies to purchases at every partner); a
    targeted one selects its audience and makes its offers in the same transaction."""
    draft = request.draft
    named = [funder for funder, _ in draft.funders if funder is not None]
    found = {p.id: p for p in await registry.listing(call.conn, now=call.now, partner_ids=named)}
    for index, (funder, _) in enumerate(draft.funders):
        if funder is not None and (
            funder not in found or found[funder].status != PartnerStatus.ACTIVE
        ):
            raise NotFound(
                "no active partner has that id", field=["funding", str(index), "partnerId"]
            )
    created = await campaign_rules.create(
        call.conn,
        owner=_owner(call),
        draft=draft,
        created_by=call.principal.client_id,
        now=call.now,
    )
    if request.target is not None:
        await targets.select(call.conn, campaign=created, target=request.target, now=call.now)
    return created


async def _move(call: Call, campaign_id: int, to: CampaignStatus) -> Campaign:
    return await campaign_rules.move(
        call.conn, campaign_id=campaign_id, to=to, owner=_owner(call), now=call.now
    )


@use_case(partner="campaigns:write", operator="partners:admin")
async def activate_campaign(call: Call, campaign_id: int) -> Campaign:
    """Start applying a campaign (every funder must have accepted)."""
    return await _move(call, campaign_id, CampaignStatus.ACTIVE)


@use_case(partner="campaigns:write", operator="partners:admin")
async def pause_campaign(call: Call, campaign_id: int) -> Campaign:
    """Stop applying a campaign for now."""
    return await _move(call, campaign_id, CampaignStatus.PAUSED)


@use_case(partner="campaigns:write", operator="partners:admin")
async def end_campaign(call: Call, campaign_id: int) -> Campaign:
    """End a campaign for good."""
    return await _move(call, campaign_id, CampaignStatus.ENDED)


@use_case(partner="campaigns:write")
async def accept_campaign_funding(call: Call, campaign_id: int) -> Campaign:
    """Agree to fund your share of a campaign."""
    return await campaign_rules.answer(
        call.conn, campaign_id=campaign_id, partner_id=call.partner_id, accept=True, now=call.now
    )


@use_case(partner="campaigns:write")
async def decline_campaign_funding(call: Call, campaign_id: int) -> Campaign:
    """Refuse to fund a campaign (it ends)."""
    return await campaign_rules.answer(
        call.conn, campaign_id=campaign_id, partner_id=call.partner_id, accept=False, now=call.now
    )


@dataclass(frozen=True)
class SimulateCampaign:
    """A replay's window, each end with a UTC offset and within the years we accept."""

    campaign_id: int
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start, "from"))
        object.__setattr__(self, "end", require_aware(self.end, "to"))


@use_case(partner="campaigns:write", operator="partners:admin")
async def simulate_campaign(call: Call, request: SimulateCampaign) -> Simulation:
    """Replay recorded purchases through a campaign: matches, points, cost per funder."""
    if request.end <= request.start:
        raise InvalidInput("to must be after from", field=["to"])
    campaign = await campaign_rules.get(call.conn, campaign_id=request.campaign_id)
    _may_manage(call, campaign)
    return await purchases.simulate(
        call.conn, campaign=campaign, start=request.start, end=request.end
    )


def _may_manage(call: Call, campaign: Campaign) -> None:
    principal = call.principal
    if principal.kind == PrincipalKind.OPERATOR:
        return
    funders = {f.partner_id for f in campaign.funding}
    if campaign.owner_partner_id != principal.partner_id and principal.partner_id not in funders:
        raise Forbidden("only the campaign's owner and funders may do that")


@dataclass(frozen=True)
class CampaignPage:
    first: int
    before_id: int | None = None
    status: CampaignStatus | None = None


@use_case(partner="campaigns:read", operator="campaigns:read")
async def campaigns_page(call: Call, page: CampaignPage) -> list[Campaign]:
    """Campaigns the caller owns or funds, and the operator's (which apply to every
    partner's purchases); an operator sees all."""
    rows = await repository.campaigns(
        call.conn,
        status=str(page.status) if page.status else None,
        before_id=page.before_id,
        limit=page.first,
    )
    return [campaign_rules.campaign_of(row) for row in rows]


@use_case(partner="", operator="", member="")
async def campaign_by_id(call: Call, campaign_id: int) -> Campaign | None:
    """A campaign, if the caller may see it."""
    if call.principal.kind == PrincipalKind.MEMBER:
        return None
    if not call.principal.has("campaigns:read") and call.principal.kind == PrincipalKind.PARTNER:
        return None
    rows = await repository.campaigns(call.conn, campaign_ids=[campaign_id])
    return campaign_rules.campaign_of(rows[0]) if rows else None


# --- contracts and tiers --------------------------------------------------------------


@dataclass(frozen=True)
class ChangeContract:
    """New terms for a partner from ``effective_from``; a term left None stays."""

    partner_id: int
    effective_from: datetime
    changes: ContractChanges


@use_case(operator="partners:admin")
async def change_contract(call: Call, change: ChangeContract) -> PartnerListing:
    """A new version of a partner's contract, in force from a date (an operator's change,
    recorded in the audit log in the same transaction)."""
    changed = {name: value for name, value in vars(change.changes).items() if value is not None}
    await registry.amend_contract(
        call.conn,
        partner_id=change.partner_id,
        changes=change.changes,
        effective_from=change.effective_from,
        now=call.now,
    )
    await audit.record(
        call.conn,
        actor=call.actor,
        action=audit.Action.CONTRACT_CHANGED,
        subject=f"partner:{change.partner_id}",
        details={
            "effectiveFrom": change.effective_from.isoformat(),
            **{name: str(value) for name, value in changed.items()},
        },
        at=call.now,
    )
    found = await registry.listing(call.conn, now=call.now, partner_ids=[change.partner_id])
    if not found:
        raise NotFound("no partner has that id", field=["partnerId"])
    return found[0]


@use_case(partner="members:read", member="wallet:read", operator="ledger:read:all")
async def member_tier(call: Call, member_id: int) -> MemberTier | None:
    """A member's tier, with the progress to the next one."""
    await may_read_member(call, member_id)
    return await tiers.member_tier(
        call.conn, member_id=member_id, now=call.now, tunables=call.tunables
    )
