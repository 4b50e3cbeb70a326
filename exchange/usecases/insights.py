"""Member insights as the API offers them: a member's profile and segments, segments and
their sizes, custom segments, consent to cross-partner use, KPIs, targeted campaigns'
offers and reports.

Who reads what: a partner reads profiles, segments and offers only of members it linked,
built from its own purchases (decision 0018); an operator the coalition's. Row-level
security enforces the same again underneath.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from exchange import audit
from exchange.insights import kpis, profiles, segments, targets
from exchange.insights.models import CampaignReport, Offer, Profile, Segment
from exchange.kit.errors import Forbidden, InvalidInput, NotFound
from exchange.kit.limits import MAX_WALLET_OFFERS
from exchange.loyalty import repository as loyalty_repository
from exchange.loyalty.campaigns import campaign_of
from exchange.loyalty.models import Campaign
from exchange.usecases.core import Call, use_case
from exchange.usecases.members import FoundMember, MemberByRef, may_read_member, member_by_ref
from partners import identity
from partners import repository as partner_repository
from partners.principal import PrincipalKind


def _partner_or_operator(call: Call) -> int | None:
    """The calling partner; None for the operator (who reads the coalition's)."""
    return call.partner_id if call.principal.kind == PrincipalKind.PARTNER else None


@use_case(partner="insights:read", operator="insights:read")
async def member_profile(call: Call, member_id: int) -> Profile:
    """A member's profile and segments (built-in, then the caller's own): a partner's
    own linked member only."""
    await may_read_member(call, member_id)
    return await _read_profile(call, member_id)


@dataclass(frozen=True)
class FoundWithProfile:
    member: FoundMember
    #: The member's profile; or why the caller may not read it (the member is still
    #: found: the profile's fields carry the refusal).
    profile: Profile | Forbidden


@use_case(partner="members:read")
async def member_by_ref_with_profile(call: Call, request: MemberByRef) -> FoundWithProfile | None:
    """``member_by_ref`` and the member's profile in one unit of work, for a query that
    asks for both: resolving the ref proves the link the profile needs, and reading the
    profile still needs what ``member_profile`` declares."""
    found = await member_by_ref.run(call, request)
    if found is None:
        return None
    try:
        member_profile.permit(call.principal)
    except Forbidden as refused:
        return FoundWithProfile(found, refused)
    return FoundWithProfile(found, await _read_profile(call, found.member_id))


async def _read_profile(call: Call, member_id: int) -> Profile:
    """The profile as the caller reads it (a partner's own purchases with the member, or
    the coalition's), with its segments: built-in, then the caller's own."""
    owner = _partner_or_operator(call)
    profile = await profiles.profile(call.conn, member_id=member_id, partner_id=owner, now=call.now)
    return await _with_customs(call, profile, owner)


async def _with_customs(call: Call, profile: Profile, owner: int | None) -> Profile:
    """The profile's segments, the caller's custom ones after the built-in ones."""
    own = await segments.customs(call.conn, owner=owner)
    if not own:
        return profile
    digits = await segments.digits_of(call.conn, partner_id=owner, now=call.now)
    compiled = [(name, segments.condition_of(condition)) for _, name, condition in own]
    extra = segments.matching(profile, compiled, now=call.now, digits=digits)
    return replace(profile, segments=[*profile.segments, *extra])


@dataclass(frozen=True)
class SegmentPage:
    first: int
    after_id: int = 0


@use_case(partner="insights:read", operator="insights:read")
async def segments_page(call: Call, page: SegmentPage) -> list[Segment]:
    """The built-in segments, then the caller's own, with their sizes among its members."""
    return await segments.listing(
        call.conn,
        owner=_partner_or_operator(call),
        now=call.now,
        after_id=page.after_id,
        first=page.first,
    )


@use_case(partner="insights:read", operator="insights:read")
async def segment_by_id(call: Call, segment_id: int) -> Segment | None:
    """A segment by its id, as ``segments_page`` would list it for the caller: a built-in
    one, or the caller's own custom one, with its size; None for any other (another
    partner's custom segment is as absent as one that never existed)."""
    return await segments.by_id(
        call.conn, owner=_partner_or_operator(call), segment_id=segment_id, now=call.now
    )


@dataclass(frozen=True)
class NewSegment:
    name: str
    condition: str


@use_case(partner="insights:read", operator="insights:read")
async def create_segment(call: Call, request: NewSegment) -> Segment:
    """A custom segment of the caller: CEL over a member's profile."""
    return await segments.create(
        call.conn,
        owner=_partner_or_operator(call),
        name=request.name,
        condition=request.condition,
        created_by=call.principal.client_id,
        now=call.now,
    )


@dataclass(frozen=True)
class SetConsent:
    consent_cross_partner: bool
    #: The operator names the member; a member token is its own member.
    member_id: int | None = None


@use_case(member="consent:write", operator="partners:admin")
async def set_member_consent(call: Call, request: SetConsent) -> bool:
    """Record a member's consent to cross-partner use: the member's own (a scope no
    partner can delegate), or an operator's record of it (in the audit log)."""
    if call.principal.kind == PrincipalKind.MEMBER:
        if request.member_id is not None:
            raise Forbidden("memberId is an operator's; a member sets its own consent")
        member_id = call.principal.require_member()
    else:
        if request.member_id is None:
            raise InvalidInput("memberId is required", field=["memberId"])
        member_id = request.member_id
        if await partner_repository.identity(call.conn, member_id=member_id) is None:
            raise NotFound("no member has that id", field=["memberId"])
    changed = await profiles.set_consent(
        call.conn, member_id=member_id, consent=request.consent_cross_partner, now=call.now
    )
    if changed and call.principal.kind == PrincipalKind.OPERATOR:
        await audit.record(
            call.conn,
            actor=call.actor,
            action=audit.Action.MEMBER_CONSENT_CHANGED,
            subject=f"member:{member_id}",
            details={"crossPartner": request.consent_cross_partner},
            at=call.now,
        )
    return request.consent_cross_partner


@dataclass(frozen=True)
class InsightsWindow:
    start: datetime
    end: datetime
    #: The operator's choice of one partner (a partner always reads its own).
    partner_id: int | None = None


@use_case(partner="insights:read", operator="insights:read")
async def insights(call: Call, window: InsightsWindow) -> kpis.Insights:
    """KPIs: a partner's own; the operator's of every partner, or of one."""
    partner_id = _partner_or_operator(call)
    if partner_id is None:
        partner_id = window.partner_id
    return await kpis.insights(
        call.conn, partner_id=partner_id, start=window.start, end=window.end, now=call.now,
        k=call.tunables.k_anonymity,
    )  # fmt: skip


# --- offers and reports ---------------------------------------------------------------


@use_case(partner="members:read", member="wallet:read", operator="ledger:read:all")
async def member_offers(call: Call, member_id: int) -> list[Offer]:
    """A member's offers, newest first: a partner sees them only for its own member."""
    await may_read_member(call, member_id)
    return await targets.offers_of_member(
        call.conn, member_id=member_id, now=call.now, limit=MAX_WALLET_OFFERS
    )


@dataclass(frozen=True)
class ActivateOffer:
    offer_id: int
    #: A partner acting for its member names it by its own ref.
    member_ref: str | None = None


@use_case(member="offers:write", partner="offers:write")
async def activate_offer(call: Call, request: ActivateOffer) -> Offer:
    """Activate an offer: the member's own, or a partner's for its linked member."""
    if call.principal.kind == PrincipalKind.MEMBER:
        if request.member_ref is not None:
            raise InvalidInput("memberRef is a partner's; a member activates its own")
        member_id = call.principal.require_member()
    else:
        if request.member_ref is None:
            raise InvalidInput("memberRef is required", field=["memberRef"])
        member_id = await identity.resolve(
            call.conn, partner_id=call.partner_id, member_ref=request.member_ref
        )
    return await targets.activate(
        call.conn, offer_id=request.offer_id, member_id=member_id, now=call.now
    )


async def _managed(call: Call, campaign_id: int) -> Campaign | None:
    """The campaign, if the caller owns or funds it or is an operator."""
    rows = await loyalty_repository.campaigns(call.conn, campaign_ids=[campaign_id])
    if not rows:
        return None
    campaign = campaign_of(rows[0])
    if call.principal.kind == PrincipalKind.OPERATOR:
        return campaign
    partner_id = call.principal.partner_id
    funders = {f.partner_id for f in campaign.funding}
    if campaign.owner_partner_id == partner_id or partner_id in funders:
        return campaign
    return None


@use_case(partner="", operator="", member="")
async def offer_campaign(call: Call, campaign_id: int) -> Campaign | None:
    """An offer's campaign: only for its owner, a funder or an operator."""
    if call.principal.kind == PrincipalKind.MEMBER:
        return None
    return await _managed(call, campaign_id)


@use_case(partner="insights:read", operator="insights:read")
async def campaign_report(call: Call, campaign_id: int) -> CampaignReport | None:
    """A targeted campaign's report, for its owner, a funder or an operator (counts only;
    a group below k members is hidden); None for any other campaign."""
    campaign = await _managed(call, campaign_id)
    if campaign is None:
        return None
    return await targets.report(
        call.conn, campaign=campaign, now=call.now, k=call.tunables.k_anonymity
    )


@use_case(partner="", operator="", member="")
async def offer_by_id(call: Call, offer_id: int) -> Offer | None:
    """An offer, if the caller may see it (row-level security: the member's own, a
    partner's linked member's, an operator's)."""
    rows = await targets.offers_by_ids(call.conn, offer_ids=[offer_id], now=call.now)
    return rows[0] if rows else None
