"""The Query root. Each field translates its arguments, asks one use case and maps the
result; who may ask is declared on the use case."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from exchange.kit import limits
from exchange.kit.errors import InvalidInput, NotFound
from exchange.kit.limits import DEFAULT_PAGE, MAX_PAGE
from exchange.ledger.models import AccountKind as LedgerAccountKind
from exchange.usecases import insights as insights_cases
from exchange.usecases import loyalty as loyalty_cases
from exchange.usecases import members, partners
from exchange.usecases import settlement as settlement_cases
from exchange.usecases import webhooks as webhook_cases
from graphql_schema import ids
from graphql_schema import settlement as settlement_api
from graphql_schema.context import Context
from graphql_schema.enums import describe_enum
from graphql_schema.errors import ask, query_error
from graphql_schema.insights import InsightsQuery, KpiQuery, Offer, ReportQuery, Segment
from graphql_schema.loyalty import Campaign, LoyaltyQuery, Purchase
from graphql_schema.scalars import BigInt
from graphql_schema.settlement import SettlementRunConnection
from graphql_schema.types import (
    AfterArgument,
    FirstArgument,
    Hold,
    Node,
    PageInfo,
    Partner,
    PartnerConnection,
    PartnerEdge,
    Transaction,
    TransactionConnection,
    TransactionFilter,
    ViewerKind,
)
from graphql_schema.wallets import Member, Wallet, selects, transactions_page
from graphql_schema.webhooks import WebhookDelivery, WebhookEndpoint, WebhookQuery
from partners.principal import PrincipalKind


@strawberry.type(description="The caller, as its token says.")
class Viewer:
    kind: ViewerKind = strawberry.field(description="Partner, operator or member.")
    scopes: list[str] = strawberry.field(description="The scopes the token grants.")
    partner_id: strawberry.Private[int | None]

    @strawberry.field(description="The calling partner; null for operators and members.")
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        if self.partner_id is None:
            return None
        return Partner.of(await ask(info, partners.own_partner, lambda: None))


@strawberry.type(description="One of your customer refs and the member it is linked to.")
class LinkedMember:
    member_ref: str = strawberry.field(description="Your customer reference.")
    linked_at: datetime = strawberry.field(description="When you linked it.")
    member: Member = strawberry.field(description="The coalition member.")


@strawberry.type(description="A linked member in a list, with its cursor.")
class LinkedMemberEdge:
    cursor: str = strawberry.field(description="Where the list can continue after it.")
    node: LinkedMember = strawberry.field(description="The link.")


@strawberry.type(description="A page of your linked members, by ref.")
class LinkedMemberConnection:
    edges: list[LinkedMemberEdge] = strawberry.field(description="The page's links.")
    page_info: PageInfo = strawberry.field(description="Where the page ends.")


def _cursor(prefix: str, value: str | int) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{value}".encode()).decode()


def _after(cursor: str | None, prefix: str) -> str | None:
    """What a cursor of ours points past; INVALID_INPUT for anything else."""
    if cursor is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    if not decoded.startswith(f"{prefix}:"):
        raise InvalidInput("after is not a cursor from here", field=["after"])
    return decoded[len(prefix) + 1 :]


def _size(first: int | None) -> int:
    size = DEFAULT_PAGE if first is None else first
    if not 1 <= size <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}", field=["first"])
    return size


# describe_enum() registers the ledger's enum under its GraphQL name; the plain alias is
# what annotations name (mypy takes no call as a type).
describe_enum(
    LedgerAccountKind,
    name="AccountKind",
    description="What a ledger account holds.",
    values={
        LedgerAccountKind.MEMBER_WALLET: "A member's points, available to spend.",
        LedgerAccountKind.MEMBER_HELD: "A member's points reserved by holds.",
        LedgerAccountKind.PARTNER_ISSUED: "Debited when a partner issues points.",
        LedgerAccountKind.PARTNER_REDEEMED: "Credited when points are redeemed at a partner.",
        LedgerAccountKind.COALITION_BREAKAGE: "Credited when points expire.",
        LedgerAccountKind.COALITION_ADJUSTMENTS: "Operators' corrections.",
        LedgerAccountKind.COALITION_ISSUED: "Debited when the coalition itself issues points"
        " (a tier's bonus, an operator's campaign).",
    },
)
AccountKind = LedgerAccountKind


@strawberry.type(description="One account of the points ledger (operators).")
class LedgerAccount:
    kind: AccountKind = strawberry.field(description="What it holds.")
    balance: BigInt = strawberry.field(description="Its balance: the sum of its postings.")
    partner_id: strawberry.Private[int | None]
    member_id: strawberry.Private[int | None]

    @strawberry.field(description="The partner it belongs to, if any.")
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        if self.partner_id is None:
            return None
        found = await info.context.partners.load(self.partner_id)
        return Partner.of(found) if found else None

    @strawberry.field(description="The member it belongs to, if any.")
    def member(self) -> Member | None:
        return Member.of(self.member_id) if self.member_id is not None else None


@strawberry.type(description="A ledger account in a list, with its cursor.")
class LedgerAccountEdge:
    cursor: str = strawberry.field(description="Where the list can continue after it.")
    node: LedgerAccount = strawberry.field(description="The account.")


@strawberry.type(description="A page of ledger accounts.")
class LedgerAccountConnection:
    edges: list[LedgerAccountEdge] = strawberry.field(description="The page's accounts.")
    page_info: PageInfo = strawberry.field(description="Where the page ends.")


def _account_page(
    first: int | None, after: str | None, kind: AccountKind | None
) -> partners.AccountPage:
    after_key = _after(after, "account")
    after_id = 0 if after_key is None else limits.int64_digits(after_key)
    if after_id is None:
        raise InvalidInput("after is not a cursor from here", field=["after"])
    return partners.AccountPage(first=_size(first) + 1, after_id=after_id, kind=kind)


async def _node(info: Info[Context, None], type_name: str, key: int) -> Node | None:
    if type_name == "Transaction":
        found = await ask(info, members.transactions_by_ids, lambda: [key])
        return Transaction.of(found[key]) if key in found else None
    if type_name == "Hold":
        hold = await ask(info, members.hold_by_id, lambda: key)
        return Hold.of(hold) if hold else None
    if type_name == "Partner":
        listing = await info.context.partners.load(key)
        return Partner.of(listing) if listing is not None else None
    if type_name == "SettlementRun":
        run = await ask(info, settlement_cases.settlement_run, lambda: key)
        return settlement_api.SettlementRun.of(run) if run else None
    if type_name == "Member":
        member_id = await ask(info, members.member_by_id, lambda: key)
        return Member.of(member_id) if member_id is not None else None
    if type_name == "Purchase":
        purchase = await ask(info, loyalty_cases.purchase_by_id, lambda: key)
        return Purchase.of(purchase) if purchase is not None else None
    if type_name == "Campaign":
        campaign = await ask(info, loyalty_cases.campaign_by_id, lambda: key)
        return Campaign.of(campaign) if campaign is not None else None
    if type_name == "WebhookEndpoint":
        endpoint = await ask(info, webhook_cases.endpoint_by_id, lambda: key)
        return WebhookEndpoint.of(endpoint) if endpoint is not None else None
    if type_name == "WebhookDelivery":
        delivery = await ask(info, webhook_cases.delivery_by_id, lambda: key)
        return WebhookDelivery.of(delivery) if delivery is not None else None
    if type_name == "Offer":
        offer = await ask(info, insights_cases.offer_by_id, lambda: key)
        return Offer.of(offer) if offer is not None else None
    if type_name == "Segment":
        segment = await ask(info, insights_cases.segment_by_id, lambda: key)
        return Segment.of(segment) if segment is not None else None
    return None


@strawberry.type(description="What a caller can read.")
class Query(LoyaltyQuery, WebhookQuery, InsightsQuery, KpiQuery, ReportQuery):
    @strawberry.field(description="Operators (ledger:read:all): every ledger account.")
    async def ledger_accounts(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
        kind: Annotated[
            AccountKind | None, strawberry.argument(description="Only accounts of this kind.")
        ] = None,
    ) -> LedgerAccountConnection:
        rows = await ask(info, partners.ledger_accounts, lambda: _account_page(first, after, kind))
        size = _size(first)
        edges = [
            LedgerAccountEdge(
                cursor=_cursor("account", r.id),
                node=LedgerAccount(
                    kind=r.kind,
                    balance=BigInt(r.balance),
                    partner_id=r.partner_id,
                    member_id=r.member_id,
                ),
            )
            for r in rows[:size]
        ]
        return LedgerAccountConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @strawberry.field(description="The calling partner's linked members, by its own refs.")
    async def members(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
    ) -> LinkedMemberConnection:
        links = await ask(
            info,
            members.linked_members,
            lambda: members.LinkedPage(first=_size(first) + 1, after_ref=_after(after, "ref")),
        )
        size = _size(first)
        edges = [
            LinkedMemberEdge(
                cursor=_cursor("ref", link.member_ref),
                node=LinkedMember(
                    member_ref=link.member_ref,
                    linked_at=link.linked_at,
                    member=Member.of(link.member_id),
                ),
            )
            for link in links[:size]
        ]
        return LinkedMemberConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(links) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @strawberry.field(description="The caller: kind, partner and scopes.")
    def viewer(self, info: Info[Context, None]) -> Viewer:
        principal = info.context.principal
        return Viewer(
            kind=ViewerKind(str(principal.kind)),
            scopes=sorted(principal.scopes),
            partner_id=principal.partner_id if principal.kind == PrincipalKind.PARTNER else None,
        )

    @strawberry.field(description="A member linked to the calling partner, by its own ref.")
    async def member(
        self,
        info: Info[Context, None],
        member_ref: Annotated[str, strawberry.argument(description="Your customer reference.")],
    ) -> Member | None:
        request = members.MemberByRef(member_ref=member_ref, with_wallet=selects(info, "wallet"))
        if selects(info, "profile") or selects(info, "segments"):
            both = await ask(info, insights_cases.member_by_ref_with_profile, lambda: request)
            if both is None:
                return None
            return Member.of(both.member.member_id, both.member.wallet, both.profile)
        found = await ask(info, members.member_by_ref, lambda: request)
        return Member.of(found.member_id, found.wallet) if found is not None else None

    @strawberry.field(description="A member token's own wallet.")
    async def wallet(self, info: Info[Context, None]) -> Wallet | None:
        return Wallet.of(await ask(info, members.own_wallet, lambda: None))

    @strawberry.field(
        description="Your transactions, newest first (transactions:read; a member: its own;"
        " operators: everyone's)."
    )
    async def transactions(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
        filter: Annotated[
            TransactionFilter | None, strawberry.argument(description="Narrow the list.")
        ] = None,
    ) -> TransactionConnection:
        return await transactions_page(info, members.transactions, first, after, filter)

    @strawberry.field(
        description="The coalition's partners: names for everyone, contracts for the partner"
        " itself and operators."
    )
    async def partners(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
    ) -> PartnerConnection:
        def page() -> partners.PartnerPage:
            after_id = ids.decode_as(after, "Partner") if after else 0
            if after_id is None:
                raise InvalidInput("after is not a cursor from here", field=["after"])
            return partners.PartnerPage(first=_size(first) + 1, after_id=after_id)

        found = await ask(info, partners.partners, page)
        size = _size(first)
        edges = [
            PartnerEdge(cursor=ids.encode("Partner", p.id), node=Partner.of(p))
            for p in found[:size]
        ]
        return PartnerConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(found) > size,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    settlement_runs: SettlementRunConnection = strawberry.field(
        resolver=settlement_api.settlement_runs,
        description="Operators: every run. Partners (settlement:read): their own statement"
        " of each finalized run.",
    )

    @strawberry.field(description="Any object by its global ID, if the caller may see it.")
    async def node(
        self,
        info: Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> Node | None:
        decoded = ids.decode(id)
        if decoded is None:  # not an ID of ours: nothing can have it
            raise query_error(NotFound("no object has that id", field=["id"]))
        return await _node(info, *decoded)
