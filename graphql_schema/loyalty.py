"""The loyalty engine in the API: purchases and their awards ("why 230 points?"),
campaigns and their funding, contract changes, a member's tier."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from exchange.kit.errors import InvalidInput, NotFound
from exchange.loyalty.campaigns import CampaignDraft
from exchange.loyalty.models import Award as AwardModel
from exchange.loyalty.models import Campaign as CampaignModel
from exchange.loyalty.models import CampaignStatus as CampaignStatusModel
from exchange.loyalty.models import Channel, Effect, EffectKind, Item
from exchange.loyalty.models import Purchase as PurchaseModel
from exchange.loyalty.purchases import Cost, Recorded, Simulation
from exchange.loyalty.requests import RefundRequest
from exchange.usecases import loyalty as cases
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.cost import list_size
from graphql_schema.enums import describe_enum
from graphql_schema.errors import ask, mutate, perform
from graphql_schema.insights import CampaignTargetInput
from graphql_schema.scalars import BigInt
from graphql_schema.types import (
    AfterArgument,
    FirstArgument,
    InputArgument,
    Node,
    PageInfo,
    Partner,
    Transaction,
    UserError,
    load_partner,
)
from graphql_schema.wallets import Wallet, load_wallet
from partners.models import ContractChanges, FundingModel

describe_enum(
    Channel,
    name="PurchaseChannel",
    description="Where a purchase happened.",
    values={
        Channel.IN_STORE: "At a till in a store.",
        Channel.ONLINE: "On a website.",
        Channel.APP: "In the partner's app.",
    },
)
describe_enum(
    CampaignStatusModel,
    name="CampaignStatus",
    description="A campaign's lifecycle.",
    values={
        CampaignStatusModel.DRAFT: "Made, not applying yet: activate it.",
        CampaignStatusModel.AWAITING_FUNDING: "Waiting for every co-funder to accept.",
        CampaignStatusModel.ACTIVE: "Applying to purchases in its window.",
        CampaignStatusModel.PAUSED: "Not applying for now; it can be activated again.",
        CampaignStatusModel.ENDED: "Ended for good (or a funder declined).",
    },
)
describe_enum(
    EffectKind,
    name="CampaignEffectKind",
    description='MULTIPLIER m: (m - 1) x base points ("2x points"); FIXED v: v points;'
    " POINTS_PER_AMOUNT v: v points per currency unit of the matching items.",
    values={
        EffectKind.MULTIPLIER: 'A bonus of (value - 1) x the base points ("2x points": 2).',
        EffectKind.FIXED: "A bonus of value points.",
        EffectKind.POINTS_PER_AMOUNT: "value points per currency unit of the matching items.",
    },
)
PurchaseChannel = Channel
CampaignStatus = CampaignStatusModel
CampaignEffectKind = EffectKind


def _id(global_id: str, type_name: str, field: str) -> int:
    key = ids.decode_as(global_id, type_name)
    if key is None:
        raise NotFound(f"no {type_name.lower()} has that id", field=[field])
    return key


# --- types ----------------------------------------------------------------------------


@strawberry.type(description="The points one rule gave a purchase.")
class Award:
    points: BigInt = strawberry.field(description="Points this rule awarded.")
    rule: str = strawberry.field(description="BASE (the earn rate), TIER or CAMPAIGN.")
    campaign_id: strawberry.Private[int | None]
    funder_id: strawberry.Private[int | None]

    @strawberry.field(description="The campaign that gave them (CAMPAIGN), if you may see it.")
    async def campaign(self, info: Info[Context, None]) -> Campaign | None:
        if self.campaign_id is None:
            return None
        campaign_id = self.campaign_id
        found = await ask(info, cases.campaign_by_id, lambda: campaign_id)
        return Campaign.of(found) if found is not None else None

    @strawberry.field(description="The partner who issued them; null: the coalition.")
    async def funded_by(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.funder_id)

    @classmethod
    def of(cls, award: AwardModel) -> Award:
        return cls(
            points=BigInt(award.points),
            rule=str(award.rule),
            campaign_id=award.campaign_id,
            funder_id=award.funder,
        )


@strawberry.type(description="A purchase a partner reported, and the points it earned.")
class Purchase(Node):
    amount: Decimal = strawberry.field(description="In currency units (e.g. 12.50).")
    refunded_amount: Decimal = strawberry.field(description="Refunded so far.")
    currency: str = strawberry.field(description="ISO 4217, the partner's contract currency.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    channel: PurchaseChannel | None = strawberry.field(description="Where it happened.")
    store_ref: str | None = strawberry.field(description="The partner's store reference.")
    reference: str | None = strawberry.field(description="The partner's own reference.")
    points: BigInt = strawberry.field(description="All points it earned, every rule together.")
    awards: list[Award] = strawberry.field(
        description="Which rule gave how many points.", metadata=list_size(1)
    )

    @classmethod
    def of(cls, purchase: PurchaseModel) -> Purchase:
        return cls(
            id=strawberry.ID(ids.encode("Purchase", purchase.id)),
            amount=purchase.amount,
            refunded_amount=purchase.refunded_amount,
            currency=purchase.currency,
            occurred_at=purchase.occurred_at,
            channel=purchase.channel,
            store_ref=purchase.store_ref,
            reference=purchase.reference,
            points=BigInt(purchase.points),
            awards=[Award.of(a) for a in purchase.awards],
        )


@strawberry.type(description="A funder's share of a campaign's awards.")
class CampaignFunding:
    share: Decimal = strawberry.field(description="The fraction of each award it issues.")
    accepted: bool = strawberry.field(description="Whether it agreed to fund it.")
    partner_id: strawberry.Private[int]

    @strawberry.field(description="The funding partner.")
    async def partner(self, info: Info[Context, None]) -> Partner:
        found = await load_partner(info, self.partner_id)
        if found is None:
            raise NotFound("the funder is not visible", field=["partner"])
        return found


@strawberry.type(description="What a campaign gives when its condition holds.")
class CampaignEffect:
    kind: CampaignEffectKind = strawberry.field(description="How the bonus is computed.")
    value: Decimal = strawberry.field(description="The multiplier, points or points per unit.")
    category: str | None = strawberry.field(description="Only items of this category count.")
    max_points_per_purchase: BigInt | None = strawberry.field(description="The cap per purchase.")


@strawberry.type(description="A rule that adds points to matching purchases.")
class Campaign(Node):
    name: str = strawberry.field(description="Its name.")
    status: CampaignStatus = strawberry.field(description="Where it is in its lifecycle.")
    starts_at: datetime = strawberry.field(description="The window's start (included).")
    ends_at: datetime | None = strawberry.field(
        description="The window's end (excluded); null: open-ended."
    )
    condition: str = strawberry.field(
        description="A CEL expression over purchase, member, partner."
    )
    effect: CampaignEffect = strawberry.field(description="What it gives.")
    budget_points: BigInt | None = strawberry.field(description="Points it may award in all.")
    spent_points: BigInt = strawberry.field(description="Points it awarded so far.")
    per_member_limit: int | None = strawberry.field(
        description="Purchases of one member it may reward over its window."
    )
    funding: list[CampaignFunding] = strawberry.field(
        description="The partners who pay for it (empty for an operator's campaign the"
        " coalition pays).",
        metadata=list_size(1),
    )
    owner_id: strawberry.Private[int | None]

    @strawberry.field(
        description="The partner whose purchases it applies to; null: every partner's"
        " (an operator's campaign)."
    )
    async def owner(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.owner_id)

    @classmethod
    def of(cls, campaign: CampaignModel) -> Campaign:
        effect = campaign.effect
        return cls(
            id=strawberry.ID(ids.encode("Campaign", campaign.id)),
            name=campaign.name,
            status=campaign.status,
            starts_at=campaign.starts_at,
            ends_at=campaign.ends_at,
            condition=campaign.condition,
            effect=CampaignEffect(
                kind=effect.kind,
                value=effect.value,
                category=effect.category,
                max_points_per_purchase=BigInt(effect.max_points_per_purchase)
                if effect.max_points_per_purchase is not None
                else None,
            ),
            budget_points=BigInt(campaign.budget_points) if campaign.budget_points else None,
            spent_points=BigInt(campaign.spent_points),
            per_member_limit=campaign.per_member_limit,
            funding=[
                CampaignFunding(share=f.share, accepted=f.accepted, partner_id=f.partner_id)
                for f in campaign.funding
                if f.partner_id is not None
            ],
            owner_id=campaign.owner_partner_id,
        )


@strawberry.type(description="What a campaign would cost one funder.")
class CampaignCost:
    points: BigInt = strawberry.field(description="The points this funder would issue.")
    amount: Decimal = strawberry.field(description="At contract prices.")
    currency: str = strawberry.field(description="The funder's contract currency.")
    partner_id: strawberry.Private[int | None]

    @strawberry.field(description="The funder; null: the coalition.")
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.partner_id)

    @classmethod
    def of(cls, cost: Cost) -> CampaignCost:
        return cls(
            points=BigInt(cost.points),
            amount=cost.amount,
            currency=cost.currency,
            partner_id=cost.funder,
        )


# --- inputs ---------------------------------------------------------------------------


@strawberry.input(description="One line of a purchase.")
class PurchaseItemInput:
    sku: str | None = strawberry.field(default=None, description="The product code.")
    category: str = strawberry.field(description="The product category (campaigns match it).")
    amount: Decimal = strawberry.field(description="The line total, in currency units.")
    quantity: int = strawberry.field(default=1, description="How many.")


def _items(items: list[PurchaseItemInput] | None) -> tuple[Item, ...]:
    return tuple(Item(i.category, i.amount, i.quantity, i.sku) for i in items or [])


@strawberry.input(description="A purchase to record; the rules decide its points.")
class RecordPurchaseInput:
    idempotency_key: str = strawberry.field(description="Unique per client; a retry replays.")
    member_ref: str = strawberry.field(description="Your customer reference of the member.")
    amount: Decimal = strawberry.field(description="The purchase total, in currency units.")
    currency: str = strawberry.field(description="Your contract's currency (ISO 4217).")
    occurred_at: datetime | None = strawberry.field(default=None, description="Default: now.")
    channel: PurchaseChannel | None = strawberry.field(default=None, description="Where.")
    store_ref: str | None = strawberry.field(default=None, description="Your store reference.")
    items: list[PurchaseItemInput] | None = strawberry.field(default=None, description="Lines.")
    reference: str | None = strawberry.field(default=None, description="Your own reference.")

    def request(self) -> cases.ReportedPurchase:
        return cases.ReportedPurchase(
            member_ref=self.member_ref,
            amount=self.amount,
            currency=self.currency,
            occurred_at=self.occurred_at,
            channel=self.channel,
            store_ref=self.store_ref,
            items=_items(self.items),
            reference=self.reference,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input(description="A purchase to price without recording it.")
class PreviewPurchaseInput:
    member_ref: str = strawberry.field(description="Your customer reference of the member.")
    amount: Decimal = strawberry.field(description="The purchase total, in currency units.")
    currency: str = strawberry.field(description="Your contract's currency (ISO 4217).")
    occurred_at: datetime | None = strawberry.field(default=None, description="Default: now.")
    channel: PurchaseChannel | None = strawberry.field(default=None, description="Where.")
    store_ref: str | None = strawberry.field(default=None, description="Your store reference.")
    items: list[PurchaseItemInput] | None = strawberry.field(default=None, description="Lines.")
    reference: str | None = strawberry.field(default=None, description="Your own reference.")

    def request(self) -> cases.ReportedPurchase:
        return cases.ReportedPurchase(
            member_ref=self.member_ref,
            amount=self.amount,
            currency=self.currency,
            occurred_at=self.occurred_at,
            channel=self.channel,
            store_ref=self.store_ref,
            items=_items(self.items),
            reference=self.reference,
        )


@strawberry.input(description="Take back a purchase's points for a refunded amount.")
class RefundPurchaseInput:
    idempotency_key: str = strawberry.field(description="Unique per client; a retry replays.")
    purchase_id: strawberry.ID = strawberry.field(description="The purchase's id.")
    amount: Decimal | None = strawberry.field(
        default=None, description="Refunded amount; default: all that is left."
    )


@strawberry.input(description="A campaign, by its id.")
class CampaignIdInput:
    campaign_id: strawberry.ID = strawberry.field(description="The campaign's global ID.")


@strawberry.input(description="What a campaign gives.")
class CampaignEffectInput:
    kind: CampaignEffectKind = strawberry.field(description="How the bonus is computed.")
    value: Decimal = strawberry.field(description="The multiplier, points or points per unit.")
    category: str | None = strawberry.field(default=None, description="Only these items count.")
    max_points_per_purchase: int | None = strawberry.field(default=None, description="A cap.")


@strawberry.input(description="A funder and its share (shares sum to 1).")
class CampaignFundingInput:
    partner_id: strawberry.ID = strawberry.field(description="The funder's global ID.")
    share: Decimal = strawberry.field(
        description="Its fraction of each award: above 0, at most 1, 6 decimals at most."
    )


@strawberry.input(description="A new campaign; it starts as DRAFT (or AWAITING_FUNDING).")
class CreateCampaignInput:
    name: str = strawberry.field(description="Its name (1 to 100 characters).")
    starts_at: datetime = strawberry.field(description="The window's start (included).")
    ends_at: datetime | None = strawberry.field(
        default=None, description="The window's end (excluded); default: open-ended."
    )
    condition: str = strawberry.field(default="true", description="CEL; see docs/api.md.")
    effect: CampaignEffectInput = strawberry.field(description="What it gives.")
    budget_points: int | None = strawberry.field(default=None, description="Points in all.")
    per_member_limit: int | None = strawberry.field(
        default=None, description="Purchases of one member it may reward."
    )
    funding: list[CampaignFundingInput] | None = strawberry.field(
        default=None, description="Default: the owner pays all (an operator: the coalition)."
    )
    target: CampaignTargetInput | None = strawberry.field(
        default=None,
        description="Make it targeted: select a segment's members at once, hold a random"
        " control share out and make the others an offer (docs/api.md, Insights).",
    )

    def request(self) -> cases.NewCampaign:
        return cases.NewCampaign(
            draft=self.draft(), target=self.target.target() if self.target else None
        )

    def draft(self) -> CampaignDraft:
        funders = tuple(
            (_id(f.partner_id, "Partner", "partnerId"), f.share) for f in self.funding or []
        )
        effect = self.effect
        return CampaignDraft(
            name=self.name,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            condition=self.condition,
            effect=Effect(
                effect.kind, effect.value, effect.category, effect.max_points_per_purchase
            ),
            budget_points=self.budget_points,
            per_member_limit=self.per_member_limit,
            funders=funders,
        )


@strawberry.input(description="Replay recorded purchases through a campaign.")
class SimulateCampaignInput:
    campaign_id: strawberry.ID = strawberry.field(description="The campaign's global ID.")
    from_: datetime = strawberry.field(name="from", description="Replay purchases from (included).")
    to: datetime = strawberry.field(description="Replay purchases until (excluded).")


@strawberry.input(description="A new contract version; an omitted term stays as it is.")
class ChangeContractInput:
    partner_id: strawberry.ID = strawberry.field(description="The partner's global ID.")
    effective_from: datetime = strawberry.field(
        description="When the new version takes effect: now or later."
    )
    earn_rate: Decimal | None = strawberry.field(
        default=None, description="Base points per currency unit spent."
    )
    issue_price: Decimal | None = strawberry.field(
        default=None, description="What the partner pays per point it issues."
    )
    redemption_price: Decimal | None = strawberry.field(
        default=None, description="What the partner is paid per point redeemed with it."
    )
    fee_rate: Decimal | None = strawberry.field(
        default=None, description="The coalition's fee, a fraction below 1."
    )
    funding_model: str | None = strawberry.field(
        default=None, description="PREFUNDED or ON_REDEMPTION."
    )
    points_lifetime_days: int | None = strawberry.field(
        default=None, description="How long earned points live (1 to 3,650 days)."
    )
    credit_limit_points: BigInt | None = strawberry.field(
        default=None, description="The most points the partner may have outstanding."
    )
    max_points_per_operation: BigInt | None = strawberry.field(
        default=None, description="The most points one operation moves."
    )

    def request(self) -> cases.ChangeContract:
        model = self.funding_model
        if model is not None and model not in FundingModel.__members__:
            raise InvalidInput("fundingModel is PREFUNDED or ON_REDEMPTION", field=["fundingModel"])
        changes = ContractChanges(
            earn_rate=self.earn_rate,
            issue_price=self.issue_price,
            redemption_price=self.redemption_price,
            fee_rate=self.fee_rate,
            funding_model=FundingModel(model) if model else None,
            points_lifetime_days=self.points_lifetime_days,
            credit_limit_points=self.credit_limit_points,
            max_points_per_operation=self.max_points_per_operation,
        )
        partner_id = _id(self.partner_id, "Partner", "partnerId")
        return cases.ChangeContract(partner_id, self.effective_from, changes)


@strawberry.input(description="Narrow a purchase listing.")
class PurchaseFilter:
    member_ref: str | None = strawberry.field(
        default=None, description="Only this member of yours, by your ref."
    )
    since: datetime | None = strawberry.field(default=None, description="Happened at or after.")
    until: datetime | None = strawberry.field(default=None, description="Happened before.")
    reference: str | None = strawberry.field(
        default=None, description="Only those with this reference."
    )


# --- payloads -------------------------------------------------------------------------


@strawberry.type(description="The outcome of recordPurchase.")
class RecordPurchasePayload:
    purchase: Purchase | None = strawberry.field(
        default=None, description="The purchase and its awards; null when refused."
    )
    transactions: list[Transaction] = strawberry.field(
        default_factory=list,
        description="The EARN entries that booked the awards.",
        metadata=list_size(1),
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused; then nothing moved."
    )
    member_id: strawberry.Private[int | None] = None

    @strawberry.field(description="The member's wallet after the purchase (read if asked).")
    async def wallet(self, info: Info[Context, None]) -> Wallet | None:
        return await load_wallet(info, self.member_id) if self.member_id is not None else None

    @classmethod
    def of(cls, recorded: Recorded) -> RecordPurchasePayload:
        return cls(
            purchase=Purchase.of(recorded.purchase),
            transactions=[Transaction.of(e) for e in recorded.entries],
            member_id=recorded.purchase.member_id,
        )


@strawberry.type(description="The outcome of refundPurchase: the purchase after the refund.")
class RefundPurchasePayload(RecordPurchasePayload):
    @classmethod
    def of(cls, recorded: Recorded) -> RefundPurchasePayload:
        return cls(
            purchase=Purchase.of(recorded.purchase),
            transactions=[Transaction.of(e) for e in recorded.entries],
            member_id=recorded.purchase.member_id,
        )


@strawberry.type(description="The outcome of previewPurchase.")
class PreviewPurchasePayload:
    points: BigInt | None = strawberry.field(default=None, description="The points it would earn.")
    awards: list[Award] = strawberry.field(
        default_factory=list,
        description="Which rule would give how many points.",
        metadata=list_size(1),
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it could not be priced."
    )


@strawberry.type(description="The outcome of a campaign mutation.")
class CampaignPayload:
    campaign: Campaign | None = strawberry.field(
        default=None, description="The campaign after the call; null when refused."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused; then nothing changed."
    )


@strawberry.type(description="The outcome of simulateCampaign.")
class SimulateCampaignPayload:
    matched_purchases: int | None = strawberry.field(default=None, description="Would match.")
    points: BigInt | None = strawberry.field(default=None, description="Would be awarded.")
    costs: list[CampaignCost] = strawberry.field(
        default_factory=list,
        description="The cost of each funder whose prices you may see.",
        metadata=list_size(1),
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it could not be simulated."
    )


@strawberry.type(description="The outcome of changeContract.")
class ChangeContractPayload:
    partner: Partner | None = strawberry.field(
        default=None, description="The partner with its contract in force; null when refused."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused; then nothing changed."
    )


def _preview(awards: list[AwardModel]) -> PreviewPurchasePayload:
    return PreviewPurchasePayload(
        points=BigInt(sum(a.points for a in awards)), awards=[Award.of(a) for a in awards]
    )


def _simulated(simulation: Simulation) -> SimulateCampaignPayload:
    return SimulateCampaignPayload(
        matched_purchases=simulation.matched,
        points=BigInt(simulation.points),
        costs=[CampaignCost.of(c) for c in simulation.costs],
    )


def _campaign(campaign: CampaignModel) -> CampaignPayload:
    return CampaignPayload(campaign=Campaign.of(campaign))


def _campaign_failed(errors: list[UserError]) -> CampaignPayload:
    return CampaignPayload(user_errors=errors)


# --- connections ----------------------------------------------------------------------


@strawberry.type(description="A purchase in a list, with its cursor.")
class PurchaseEdge:
    cursor: str = strawberry.field(description="Where the list can continue after it.")
    node: Purchase = strawberry.field(description="The purchase.")


@strawberry.type(description="A page of purchases, newest first.")
class PurchaseConnection:
    edges: list[PurchaseEdge] = strawberry.field(description="The page's purchases.")
    page_info: PageInfo = strawberry.field(description="Where the page ends.")


@strawberry.type(description="A campaign in a list, with its cursor.")
class CampaignEdge:
    cursor: str = strawberry.field(description="Where the list can continue after it.")
    node: Campaign = strawberry.field(description="The campaign.")


@strawberry.type(description="A page of campaigns, newest first.")
class CampaignConnection:
    edges: list[CampaignEdge] = strawberry.field(description="The page's campaigns.")
    page_info: PageInfo = strawberry.field(description="Where the page ends.")


def _size(first: int | None) -> int:
    size = 20 if first is None else first
    if not 1 <= size <= 100:
        raise InvalidInput("first must be between 1 and 100", field=["first"])
    return size


def _before(after: str | None, type_name: str) -> int | None:
    if after is None:
        return None
    before = ids.decode_as(after, type_name)
    if before is None:
        raise InvalidInput("after is not a cursor from here", field=["after"])
    return before


def _page_info(found: int, size: int, last: str | None) -> PageInfo:
    return PageInfo(has_next_page=found > size, end_cursor=last)


@strawberry.type
class LoyaltyQuery:
    @strawberry.field(
        description="Campaigns you own or fund, and the operator's (needs campaigns:read)."
    )
    async def campaigns(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
        status: Annotated[
            CampaignStatus | None, strawberry.argument(description="Only campaigns in it.")
        ] = None,
    ) -> CampaignConnection:
        found = await ask(
            info,
            cases.campaigns_page,
            lambda: cases.CampaignPage(_size(first) + 1, _before(after, "Campaign"), status),
        )
        size = _size(first)
        edges = [CampaignEdge(cursor=c.id, node=c) for c in map(Campaign.of, found[:size])]
        return CampaignConnection(
            edges=edges, page_info=_page_info(len(found), size, edges[-1].cursor if edges else None)
        )

    @strawberry.field(description="Your own purchases, newest first (needs transactions:read).")
    async def purchases(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
        filter: Annotated[
            PurchaseFilter | None, strawberry.argument(description="Narrow the list.")
        ] = None,
    ) -> PurchaseConnection:
        wanted = filter or PurchaseFilter()
        found = await ask(
            info,
            cases.purchases_page,
            lambda: cases.PurchasePage(
                first=_size(first) + 1,
                before_id=_before(after, "Purchase"),
                member_ref=wanted.member_ref,
                since=wanted.since,
                until=wanted.until,
                reference=wanted.reference,
            ),
        )
        size = _size(first)
        edges = [PurchaseEdge(cursor=p.id, node=p) for p in map(Purchase.of, found[:size])]
        return PurchaseConnection(
            edges=edges, page_info=_page_info(len(found), size, edges[-1].cursor if edges else None)
        )


async def record(context: Context, input: RecordPurchaseInput) -> RecordPurchasePayload:
    """recordPurchase, for its resolver and for the direct lane (graphql_schema.direct)."""
    return await perform(
        context,
        cases.record_purchase,
        input.request,
        RecordPurchasePayload.of,
        lambda errors: RecordPurchasePayload(user_errors=errors),
    )


@strawberry.type
class LoyaltyMutation:
    @strawberry.mutation(
        description="Record a purchase; the rules decide its points (points:earn)."
    )
    async def record_purchase(
        self, info: Info[Context, None], input: InputArgument[RecordPurchaseInput]
    ) -> RecordPurchasePayload:
        return await record(info.context, input)

    @strawberry.mutation(description="What a purchase would earn; writes nothing (points:earn).")
    async def preview_purchase(
        self, info: Info[Context, None], input: InputArgument[PreviewPurchaseInput]
    ) -> PreviewPurchasePayload:
        return await mutate(
            info,
            cases.preview_purchase,
            input.request,
            _preview,
            lambda errors: PreviewPurchasePayload(user_errors=errors),
        )

    @strawberry.mutation(
        description="Take back a purchase's points in proportion (points:reverse)."
    )
    async def refund_purchase(
        self, info: Info[Context, None], input: InputArgument[RefundPurchaseInput]
    ) -> RefundPurchasePayload:
        return await mutate(
            info,
            cases.refund_purchase,
            lambda: RefundRequest(
                input.idempotency_key,
                _id(input.purchase_id, "Purchase", "purchaseId"),
                input.amount,
            ),
            RefundPurchasePayload.of,
            lambda errors: RefundPurchasePayload(user_errors=errors),
        )

    @strawberry.mutation(
        description="A campaign of yours (campaigns:write; operators: partners:admin)."
    )
    async def create_campaign(
        self, info: Info[Context, None], input: InputArgument[CreateCampaignInput]
    ) -> CampaignPayload:
        return await mutate(info, cases.create_campaign, input.request, _campaign, _campaign_failed)

    @strawberry.mutation(description="Start applying a campaign.")
    async def activate_campaign(
        self, info: Info[Context, None], input: InputArgument[CampaignIdInput]
    ) -> CampaignPayload:
        return await mutate(
            info, cases.activate_campaign, lambda: _campaign_id(input), _campaign, _campaign_failed
        )

    @strawberry.mutation(description="Stop applying a campaign for now.")
    async def pause_campaign(
        self, info: Info[Context, None], input: InputArgument[CampaignIdInput]
    ) -> CampaignPayload:
        return await mutate(
            info, cases.pause_campaign, lambda: _campaign_id(input), _campaign, _campaign_failed
        )

    @strawberry.mutation(description="End a campaign for good.")
    async def end_campaign(
        self, info: Info[Context, None], input: InputArgument[CampaignIdInput]
    ) -> CampaignPayload:
        return await mutate(
            info, cases.end_campaign, lambda: _campaign_id(input), _campaign, _campaign_failed
        )

    @strawberry.mutation(description="A co-funder agrees to pay its share.")
    async def accept_campaign_funding(
        self, info: Info[Context, None], input: InputArgument[CampaignIdInput]
    ) -> CampaignPayload:
        return await mutate(
            info,
            cases.accept_campaign_funding,
            lambda: _campaign_id(input),
            _campaign,
            _campaign_failed,
        )

    @strawberry.mutation(description="A co-funder refuses (the campaign ends).")
    async def decline_campaign_funding(
        self, info: Info[Context, None], input: InputArgument[CampaignIdInput]
    ) -> CampaignPayload:
        return await mutate(
            info,
            cases.decline_campaign_funding,
            lambda: _campaign_id(input),
            _campaign,
            _campaign_failed,
        )

    @strawberry.mutation(description="Replay recorded purchases through a campaign.")
    async def simulate_campaign(
        self, info: Info[Context, None], input: InputArgument[SimulateCampaignInput]
    ) -> SimulateCampaignPayload:
        return await mutate(
            info,
            cases.simulate_campaign,
            lambda: cases.SimulateCampaign(
                _id(input.campaign_id, "Campaign", "campaignId"), input.from_, input.to
            ),
            _simulated,
            lambda errors: SimulateCampaignPayload(user_errors=errors),
        )

    @strawberry.mutation(description="A new contract version (partners:admin).")
    async def change_contract(
        self, info: Info[Context, None], input: InputArgument[ChangeContractInput]
    ) -> ChangeContractPayload:
        return await mutate(
            info,
            cases.change_contract,
            input.request,
            lambda partner: ChangeContractPayload(partner=Partner.of(partner)),
            lambda errors: ChangeContractPayload(user_errors=errors),
        )


def _campaign_id(input: InputArgument[CampaignIdInput]) -> int:
    return _id(input.campaign_id, "Campaign", "campaignId")
