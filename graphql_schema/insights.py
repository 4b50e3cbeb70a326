"""Member insights in the API: a member's profile and segments, segments, consent,
offers, KPIs and a targeted campaign's report (decision 0018)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from exchange.insights import kpis
from exchange.insights.models import Audience as AudienceModel
from exchange.insights.models import CampaignReport as CampaignReportModel
from exchange.insights.models import GroupOutcome as GroupOutcomeModel
from exchange.insights.models import Offer as OfferModel
from exchange.insights.models import OfferStatus as OfferStatusModel
from exchange.insights.models import Profile, Target
from exchange.insights.models import Segment as SegmentModel
from exchange.kit.clock import require_aware
from exchange.kit.errors import NotFound
from exchange.kit.limits import DEFAULT_PAGE
from exchange.usecases import insights as cases
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.cost import list_size
from graphql_schema.enums import describe_enum
from graphql_schema.errors import ask, mutate
from graphql_schema.scalars import BigInt
from graphql_schema.types import (
    AfterArgument,
    FirstArgument,
    InputArgument,
    Node,
    PageInfo,
    UserError,
)

if TYPE_CHECKING:
    from graphql_schema.loyalty import Campaign


@strawberry.type(
    description="RFM scores: quintiles 1 to 5 (5: most recent, most frequent,"
    " highest spend), recomputed by the periodic refresh."
)
class RfmScore:
    recency: int = strawberry.field(description="1 to 5: how recently the member bought.")
    frequency: int = strawberry.field(description="1 to 5: how often the member bought.")
    monetary: int = strawberry.field(description="1 to 5: how much the member spent.")


@strawberry.type(
    description="What purchases tell of a member: a partner reads its own purchases with"
    " the member; the operator the coalition's."
)
class MemberProfile:
    first_purchase_at: datetime | None = strawberry.field(description="The first purchase.")
    last_purchase_at: datetime | None = strawberry.field(description="The latest purchase.")
    purchases_here: int = strawberry.field(description="Purchases recorded (refunds included).")
    spend_here: Decimal = strawberry.field(
        description="Spend in the contract's currency, less refunds."
    )
    mean_days_between_purchases: Decimal | None = strawberry.field(
        description="The mean interval between purchases, in days; null below two purchases."
    )
    rfm: RfmScore | None = strawberry.field(
        description="RFM quintiles among the partner's members (the operator: the"
        " coalition's); null until the next refresh."
    )
    consent_cross_partner: bool = strawberry.field(
        description="Whether the member consented to cross-partner use of its data."
    )

    @classmethod
    def of(cls, profile: Profile) -> MemberProfile:
        rfm = profile.rfm
        return cls(
            first_purchase_at=profile.first_purchase_at,
            last_purchase_at=profile.last_purchase_at,
            purchases_here=profile.purchases,
            spend_here=profile.spend,
            mean_days_between_purchases=profile.mean_days_between_purchases,
            rfm=RfmScore(recency=rfm.recency, frequency=rfm.frequency, monetary=rfm.monetary)
            if rfm is not None
            else None,
            consent_cross_partner=profile.consent_cross_partner,
        )


async def load_profile(info: Info[Context, None], member_id: int) -> Profile:
    """A member's profile, read once per request however many fields ask for it."""
    if "profiles" not in info.context.loaders:

        async def load(member_ids: list[int]) -> list[Profile]:
            return [
                await ask(info, cases.member_profile, lambda m=member_id: m)  # type: ignore[misc]
                for member_id in member_ids
            ]

        info.context.loaders["profiles"] = DataLoader(load_fn=load)
    loader: DataLoader[int, Profile] = info.context.loaders["profiles"]
    return await loader.load(member_id)


@strawberry.type(
    description="A group of members: a built-in one (rules in docs/api.md, Insights) or"
    " a custom one, CEL over the profile."
)
class Segment(Node):
    name: str = strawberry.field(description="NEW, ACTIVE, ... or your own name.")
    built_in: bool = strawberry.field(description="Whether it is one of the built-in six.")
    condition: str | None = strawberry.field(description="A custom segment's CEL condition.")
    size: int = strawberry.field(
        description="Your linked members in it now, judged on your own purchases (the"
        " operator: every member with a purchase, judged on the coalition's profile)."
    )

    @classmethod
    def of(cls, segment: SegmentModel) -> Segment:
        return cls(
            id=strawberry.ID(ids.encode("Segment", segment.id)),
            name=segment.name,
            built_in=segment.built_in,
            condition=segment.condition,
            size=segment.size,
        )


@strawberry.type(description="One segment in a page of them.")
class SegmentEdge:
    cursor: str = strawberry.field(description="Pass as `after` for the next page.")
    node: Segment = strawberry.field(description="The segment.")


@strawberry.type(description="A page of segments: the built-in ones first, then yours.")
class SegmentConnection:
    edges: list[SegmentEdge] = strawberry.field(description="The segments of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow.")


@strawberry.input(description="A custom segment: CEL over a member's profile.")
class CreateSegmentInput:
    name: str = strawberry.field(description="Capital letters, digits and _ (e.g. BIG_SPENDERS).")
    condition: str = strawberry.field(
        description="CEL over `profile` (purchases, spend_minor, days_since_first,"
        " days_since_last, mean_days_between, recency, frequency, monetary, consent,"
        " segments); see docs/api.md, Insights."
    )


@strawberry.type(description="The segment created, or why not.")
class SegmentPayload:
    segment: Segment | None = strawberry.field(default=None, description="The new segment.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was created."
    )


def _segment_page(first: int | None, after: str | None) -> cases.SegmentPage:
    size, after_id = ids.page(first, after, "Segment")
    return cases.SegmentPage(first=size + 1, after_id=after_id or 0)


@strawberry.type
class InsightsQuery:
    @strawberry.field(
        description="Segments with their sizes among your members: the built-in ones,"
        " then your own (needs insights:read)."
    )
    async def segments(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
    ) -> SegmentConnection:
        found = await ask(info, cases.segments_page, lambda: _segment_page(first, after))
        size = DEFAULT_PAGE if first is None else first
        edges = [SegmentEdge(cursor=s.id, node=s) for s in map(Segment.of, found[:size])]
        return SegmentConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(found) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )


@strawberry.type
class InsightsMutation:
    @strawberry.mutation(description="A custom segment of yours (needs insights:read).")
    async def create_segment(
        self, info: Info[Context, None], input: InputArgument[CreateSegmentInput]
    ) -> SegmentPayload:
        return await mutate(
            info,
            cases.create_segment,
            lambda: cases.NewSegment(name=input.name, condition=input.condition),
            lambda segment: SegmentPayload(segment=Segment.of(segment)),
            lambda errors: SegmentPayload(user_errors=errors),
        )


@strawberry.input(description="A member's consent to cross-partner use of its data.")
class SetMemberConsentInput:
    consent_cross_partner: bool = strawberry.field(description="On or off.")
    member_id: strawberry.ID | None = strawberry.field(
        default=None, description="The member (an operator's call only; a member: itself)."
    )


@strawberry.type(description="The consent recorded, or why not.")
class SetMemberConsentPayload:
    consent_cross_partner: bool | None = strawberry.field(
        default=None, description="The consent now recorded."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was recorded."
    )


def _consent(input: SetMemberConsentInput) -> cases.SetConsent:
    member_id = None
    if input.member_id is not None:
        member_id = ids.decode_as(input.member_id, "Member")
        if member_id is None:
            raise NotFound("no member has that id", field=["memberId"])
    return cases.SetConsent(input.consent_cross_partner, member_id)


@strawberry.type
class ConsentMutation:
    @strawberry.mutation(
        description="Record a member's consent to cross-partner use: a member token with"
        " consent:write (never delegable by a partner), or an operator (partners:admin)"
        " with memberId."
    )
    async def set_member_consent(
        self, info: Info[Context, None], input: InputArgument[SetMemberConsentInput]
    ) -> SetMemberConsentPayload:
        return await mutate(
            info,
            cases.set_member_consent,
            lambda: _consent(input),
            lambda given: SetMemberConsentPayload(consent_cross_partner=given),
            lambda errors: SetMemberConsentPayload(user_errors=errors),
        )


@strawberry.type(description="Members who first bought in a month, and who came back.")
class CohortRetention:
    cohort: str = strawberry.field(description="The month of the first purchase, YYYY-MM.")
    members: int = strawberry.field(description="Members in the cohort.")
    retained: list[Decimal] = strawberry.field(
        description="The share of them who bought in each later month, to the window's end."
    )


@strawberry.type(
    description="Your members who also bought a category elsewhere: present only at k"
    " members or more (EXCHANGE_K_ANONYMITY), never a small number."
)
class CategoryShare:
    category: str = strawberry.field(description="The item category.")
    share: Decimal = strawberry.field(
        description="Of your members who consented to cross-partner use, the share."
    )
    members: int = strawberry.field(description="How many (at least k).")


@strawberry.type(description="KPIs over a window: a partner's own, the operator's of all.")
class Insights:
    liability_points: BigInt = strawberry.field(description="Points issued still in wallets.")
    liability_amount: Decimal = strawberry.field(
        description="Their worth at the issuers' issue prices in force."
    )
    currency: str = strawberry.field(description="The currency of the amounts.")
    issued: BigInt = strawberry.field(description="Points earned in the window.")
    redeemed: BigInt = strawberry.field(description="Of the issuer's points, redeemed.")
    expired: BigInt = strawberry.field(description="Of the issuer's points, expired.")
    breakage_rate: Decimal = strawberry.field(description="expired / issued.")
    redemption_rate: Decimal = strawberry.field(description="redeemed / issued.")
    active_members30: int = strawberry.field(
        name="activeMembers30", description="Members who bought in the 30 days before `to`."
    )
    active_members90: int = strawberry.field(
        name="activeMembers90", description="Members who bought in the 90 days before `to`."
    )
    repeat_rate: Decimal = strawberry.field(description="Of buying members, those with 2+.")
    spend_per_member: Decimal = strawberry.field(
        description="Spend in the window per member who bought."
    )
    retention: list[CohortRetention] = strawberry.field(
        description="Monthly cohorts of first purchases in the window (the operator's"
        " coalition-wide cohorts: only at k members or more).",
        metadata=list_size(24),
    )
    cross_shopping: list[CategoryShare] = strawberry.field(
        description="Categories your consenting members bought elsewhere; k or more each.",
        metadata=list_size(50),
    )

    @classmethod
    def of(cls, found: kpis.Insights) -> Insights:
        return cls(
            liability_points=BigInt(found.liability_points),
            liability_amount=found.liability_amount, currency=found.currency,
            issued=BigInt(found.issued), redeemed=BigInt(found.redeemed),
            expired=BigInt(found.expired), breakage_rate=found.breakage_rate,
            redemption_rate=found.redemption_rate,
            active_members30=found.active_members_30, active_members90=found.active_members_90,
            repeat_rate=found.repeat_rate, spend_per_member=found.spend_per_member,
            retention=[CohortRetention(cohort=c.month, members=c.members, retained=c.retained)
                       for c in found.retention],
            cross_shopping=[CategoryShare(category=c.category, share=c.share, members=c.members)
                            for c in found.cross_shopping],
        )  # fmt: skip


def _window(
    start: datetime, end: datetime, partner_id: strawberry.ID | None
) -> cases.InsightsWindow:
    chosen = None
    if partner_id is not None:
        chosen = ids.decode_as(partner_id, "Partner")
        if chosen is None:
            raise NotFound("no partner has that id", field=["partnerId"])
    return cases.InsightsWindow(
        start=require_aware(start, "from"), end=require_aware(end, "to"), partner_id=chosen
    )


@strawberry.type
class KpiQuery:
    @strawberry.field(
        description="KPIs over [from, to) (needs insights:read): a partner's own"
        " (partnerId ignored); the operator's of every partner, or of partnerId."
    )
    async def insights(
        self,
        info: Info[Context, None],
        from_: Annotated[
            datetime, strawberry.argument(name="from", description="The window's start.")
        ],
        to: Annotated[datetime, strawberry.argument(description="The window's end (excluded).")],
        partner_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The operator's choice of one partner."),
        ] = None,
    ) -> Insights:
        found = await ask(info, cases.insights, lambda: _window(from_, to, partner_id))
        return Insights.of(found)


describe_enum(
    AudienceModel,
    name="CampaignAudience",
    description="Whose members a targeted campaign reaches.",
    values={
        AudienceModel.OWN_MEMBERS: "Your own linked members in the segment.",
        AudienceModel.COALITION: "Members who consented to cross-partner use and never bought"
        " from you (you learn counts only, until one buys from you).",
    },
)
describe_enum(
    OfferStatusModel,
    name="OfferStatus",
    description="Where a member's offer stands.",
    values={
        OfferStatusModel.AVAILABLE: "In the wallet, not activated yet.",
        OfferStatusModel.ACTIVATED: "Activated by the member (or its partner for it).",
        OfferStatusModel.USED: "Used by a purchase where it applies.",
        OfferStatusModel.EXPIRED: "Not used before its campaign ended.",
    },
)
CampaignAudience = AudienceModel
OfferStatus = OfferStatusModel


@strawberry.input(description="Who a targeted campaign reaches; its offers are made at once.")
class CampaignTargetInput:
    segment: str = strawberry.field(description="A built-in segment (NEW, ACTIVE, ...).")
    audience: CampaignAudience = strawberry.field(
        default=AudienceModel.OWN_MEMBERS, description="Whose members (default your own)."
    )
    control_share: Decimal = strawberry.field(
        default=Decimal("0.1"),
        description="Held out at random per member, recorded, no offer (0 to below 1).",
    )
    offer_title: str = strawberry.field(description="What members read in their wallet.")
    offer_description: str | None = strawberry.field(default=None, description="More of it.")

    def target(self) -> Target:
        return Target(
            segment=self.segment,
            offer_title=self.offer_title,
            audience=self.audience,
            control_share=self.control_share,
            offer_description=self.offer_description,
        )


@strawberry.type(description="An offer made to a member by a targeted campaign.")
class Offer(Node):
    title: str = strawberry.field(description="The offer.")
    description: str | None = strawberry.field(description="More of it.")
    status: OfferStatus = strawberry.field(description="Where it stands.")
    expires_at: datetime | None = strawberry.field(description="When it lapses unused.")
    campaign_id: strawberry.Private[int]

    @strawberry.field(
        description="The campaign: null unless you own or fund it, or are the operator."
    )
    async def campaign(
        self, info: Info[Context, None]
    ) -> Annotated[Campaign, strawberry.lazy("graphql_schema.loyalty")] | None:
        from graphql_schema.loyalty import Campaign as CampaignType

        campaign_id = self.campaign_id
        found = await ask(info, cases.offer_campaign, lambda: campaign_id)
        return CampaignType.of(found) if found is not None else None

    @classmethod
    def of(cls, offer: OfferModel) -> Offer:
        return cls(
            id=strawberry.ID(ids.encode("Offer", offer.id)),
            title=offer.title,
            description=offer.description,
            status=offer.status,
            expires_at=offer.expires_at,
            campaign_id=offer.campaign_id,
        )


@strawberry.input(description="Activate an offer.")
class ActivateOfferInput:
    offer_id: strawberry.ID = strawberry.field(description="The offer.")
    member_ref: str | None = strawberry.field(
        default=None, description="A partner acting for its member: the member's ref."
    )


@strawberry.type(description="The offer activated, or why not.")
class ActivateOfferPayload:
    offer: Offer | None = strawberry.field(default=None, description="The offer, ACTIVATED.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing changed."
    )


def _activation(input: ActivateOfferInput) -> cases.ActivateOffer:
    offer_id = ids.decode_as(input.offer_id, "Offer")
    if offer_id is None:
        raise NotFound("no offer has that id", field=["offerId"])
    return cases.ActivateOffer(offer_id=offer_id, member_ref=input.member_ref)


@strawberry.type
class OfferMutation:
    @strawberry.mutation(
        description="Activate an offer: a member token with offers:write, or a partner"
        " (offers:write) for its member by memberRef."
    )
    async def activate_offer(
        self, info: Info[Context, None], input: InputArgument[ActivateOfferInput]
    ) -> ActivateOfferPayload:
        return await mutate(
            info,
            cases.activate_offer,
            lambda: _activation(input),
            lambda offer: ActivateOfferPayload(offer=Offer.of(offer)),
            lambda errors: ActivateOfferPayload(user_errors=errors),
        )


@strawberry.type(description="One group of a targeted campaign over its window.")
class GroupOutcome:
    members: int = strawberry.field(description="Members in the group.")
    purchasers: int = strawberry.field(description="Of them, those who bought from you.")
    spend: Decimal = strawberry.field(description="What they spent with you.")


@strawberry.type(description="A targeted campaign: treated against control.")
class CampaignReport:
    reach: int = strawberry.field(description="Offers made.")
    activated: int = strawberry.field(description="Offers activated (or used).")
    treated: GroupOutcome | None = strawberry.field(
        description="Members who got an offer; null below k members."
    )
    control: GroupOutcome | None = strawberry.field(
        description="Members held out; null below k members."
    )
    uplift: Decimal | None = strawberry.field(
        description="Treated conversion minus control conversion (purchasers / members);"
        " null when a group is hidden."
    )
    points_cost: BigInt = strawberry.field(description="Points the campaign awarded.")
    money_cost: Decimal = strawberry.field(description="Their cost at contract prices.")
    currency: str = strawberry.field(description="The currency of the cost.")

    @classmethod
    def of(cls, report: CampaignReportModel) -> CampaignReport:
        def group(found: GroupOutcomeModel | None) -> GroupOutcome | None:
            if found is None:
                return None
            return GroupOutcome(
                members=found.members, purchasers=found.purchasers, spend=found.spend
            )

        return cls(
            reach=report.reach, activated=report.activated, treated=group(report.treated),
            control=group(report.control), uplift=report.uplift,
            points_cost=BigInt(report.points_cost), money_cost=report.money_cost,
            currency=report.currency,
        )  # fmt: skip


def _campaign_id(given: strawberry.ID) -> int:
    found = ids.decode_as(given, "Campaign")
    if found is None:
        raise NotFound("no campaign has that id", field=["campaignId"])
    return found


@strawberry.type
class ReportQuery:
    @strawberry.field(
        description="A targeted campaign's report, for its owner, a funder or the operator"
        " (needs insights:read); null for a campaign without a target."
    )
    async def campaign_report(
        self,
        info: Info[Context, None],
        campaign_id: Annotated[strawberry.ID, strawberry.argument(description="The campaign.")],
    ) -> CampaignReport | None:
        found = await ask(info, cases.campaign_report, lambda: _campaign_id(campaign_id))
        return CampaignReport.of(found) if found is not None else None


async def load_offers(info: Info[Context, None], member_id: int) -> list[Offer]:
    return [Offer.of(o) for o in await ask(info, cases.member_offers, lambda: member_id)]
