"""Wallet and Member types, and the paging helper they share with the queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from exchange.insights.models import Profile
from exchange.kit.errors import DomainError
from exchange.kit.limits import DEFAULT_PAGE, MAX_EXPIRING_GROUPS
from exchange.ledger.models import EntryView
from exchange.ledger.models import Wallet as WalletModel
from exchange.loyalty.models import MemberTier as MemberTierModel
from exchange.usecases import loyalty as loyalty_cases
from exchange.usecases import members
from exchange.usecases.core import UseCase
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.cost import list_size
from graphql_schema.errors import ask, query_error
from graphql_schema.insights import MemberProfile, Offer, load_offers, load_profile
from graphql_schema.scalars import BigInt
from graphql_schema.types import (
    AfterArgument,
    ExpiringPoints,
    FirstArgument,
    Node,
    PartnerBalance,
    TransactionConnection,
    TransactionFilter,
)


def page_arguments(first: int | None, after: str | None) -> tuple[int, int | None]:
    """``first`` and the entry id ``after`` points past (:func:`ids.page`)."""
    return ids.page(first, after, "Transaction")


def _page(
    first: int | None,
    after: str | None,
    filter: TransactionFilter | None,
    member_id: int | None,
) -> members.TransactionPage:
    size, before_id = page_arguments(first, after)
    wanted = members.TransactionFilter(
        kinds=list(filter.kinds) if filter and filter.kinds else None,
        member_ref=filter.member_ref if filter else None,
        since=filter.since if filter else None,
        until=filter.until if filter else None,
        reference=filter.reference if filter else None,
    )
    return members.TransactionPage(
        first=size + 1, before_id=before_id, filter=wanted, member_id=member_id
    )


async def transactions_page(
    info: Info[Context, None],
    use_case: UseCase[members.TransactionPage, list[EntryView]],
    first: int | None,
    after: str | None,
    filter: TransactionFilter | None,
    *,
    member_id: int | None = None,
) -> TransactionConnection:
    """A page of ``use_case`` (the field names the use case it calls, and with it the
    scope it needs)."""
    entries = await ask(info, use_case, lambda: _page(first, after, filter, member_id))
    return TransactionConnection.of(entries, DEFAULT_PAGE if first is None else first)


@strawberry.type(description="A member's tier: a progress bar to the next one.")
class MemberTier:
    name: str = strawberry.field(description="The tier held; empty until the first is reached.")
    qualifying_points: BigInt = strawberry.field(description="Purchase points in the window.")
    next: str | None = strawberry.field(description="The next tier's name.")
    points_to_next: BigInt | None = strawberry.field(description="Qualifying points still needed.")
    valid_until: datetime | None = strawberry.field(
        description="The earliest a downgrade could take effect."
    )

    @classmethod
    def of(cls, tier: MemberTierModel) -> MemberTier:
        return cls(
            name=tier.name,
            qualifying_points=BigInt(tier.qualifying_points),
            next=tier.next,
            points_to_next=BigInt(tier.points_to_next) if tier.points_to_next is not None else None,
            valid_until=tier.valid_until,
        )


@strawberry.type(description="A member's points: one combined balance across partners.")
class Wallet:
    balance: BigInt = strawberry.field(description="All points the member owns: available + held.")
    available: BigInt = strawberry.field(description="Points the member can spend now.")
    held: BigInt = strawberry.field(description="Points reserved by active holds.")
    by_partner: list[PartnerBalance] = strawberry.field(
        description="Points still held, by the partner that issued them.",
        # Read with the balances in the wallet's one statement; as long as the partners
        # whose points the member holds, which no client can make longer.
        metadata=list_size(1),
    )
    member_id: strawberry.Private[int]

    @classmethod
    def of(cls, wallet: WalletModel) -> Wallet:
        return cls(
            balance=BigInt(wallet.balance),
            available=BigInt(wallet.available),
            held=BigInt(wallet.held),
            by_partner=[
                PartnerBalance(points=BigInt(b.points), partner_id=b.issuer_partner_id)
                for b in wallet.by_issuer
            ],
            member_id=wallet.member_id,
        )

    @strawberry.field(
        description="Points expiring within `withinDays`, per issuing partner and expiry,"
        f" soonest first: at most `first` of them (1 to {MAX_EXPIRING_GROUPS}, the default)."
    )
    async def expiring(
        self,
        info: Info[Context, None],
        within_days: Annotated[
            int, strawberry.argument(description="The window, in days from now (0 to 3660).")
        ] = 30,
        first: Annotated[
            int,
            strawberry.argument(
                description=f"At most this many, soonest first (1 to {MAX_EXPIRING_GROUPS})."
            ),
        ] = MAX_EXPIRING_GROUPS,
    ) -> list[ExpiringPoints]:
        request = members.Expiring(member_id=self.member_id, within_days=within_days, first=first)
        soon = await ask(info, members.expiring, lambda: request)
        return [
            ExpiringPoints(
                points=BigInt(e.points), expires_at=e.expires_at, partner_id=e.issuer_partner_id
            )
            for e in soon
        ]

    @strawberry.field(
        description="The member's transactions you may see, newest first (a partner: its own)."
    )
    async def transactions(
        self,
        info: Info[Context, None],
        first: FirstArgument = None,
        after: AfterArgument = None,
    ) -> TransactionConnection:
        return await transactions_page(
            info, members.member_transactions, first, after, None, member_id=self.member_id
        )

    @strawberry.field(
        description="Offers made to the member by targeted campaigns, newest first (at most"
        " 100); a partner sees them only for its own member.",
        metadata=list_size(100),
    )
    async def offers(self, info: Info[Context, None]) -> list[Offer]:
        return await load_offers(info, self.member_id)

    @strawberry.field(description="The member's tier and its progress to the next one.")
    async def tier(self, info: Info[Context, None]) -> MemberTier | None:
        member_id = self.member_id
        found = await ask(info, loyalty_cases.member_tier, lambda: member_id)
        return MemberTier.of(found) if found is not None else None


async def load_wallet(info: Info[Context, None], member_id: int) -> Wallet:
    return Wallet.of(await ask(info, members.wallet, lambda: member_id))


def selects(info: Info[Context, None], name: str) -> bool:
    """Whether the query asks for ``name`` right under the field being resolved
    (fragments included): a resolver then reads it in its own unit of work."""

    def among(selections: list[Selection]) -> bool:
        for selection in selections:
            if isinstance(selection, SelectedField):
                if selection.name == name:
                    return True
            elif among(selection.selections):
                return True
        return False

    return any(among(field.selections) for field in info.selected_fields)


@strawberry.type(description="A coalition member: one person, however many partners linked them.")
class Member(Node):
    member_id: strawberry.Private[int]
    read_wallet: strawberry.Private[Wallet | None] = None
    #: Read with the member in one unit of work (or why the caller may not read it).
    read_profile: strawberry.Private[Profile | DomainError | None] = None

    async def _profile(self, info: Info[Context, None]) -> Profile:
        if isinstance(self.read_profile, DomainError):
            raise query_error(self.read_profile)
        if self.read_profile is not None:
            return self.read_profile
        return await load_profile(info, self.member_id)

    @strawberry.field(description="The member's combined wallet.")
    async def wallet(self, info: Info[Context, None]) -> Wallet:
        if self.read_wallet is not None:
            return self.read_wallet
        return await load_wallet(info, self.member_id)

    @strawberry.field(
        description="The segments the member is in (needs insights:read): the built-in"
        " ones, then yours by their condition; judged on your own purchases with the"
        " member unless it consented to cross-partner use."
    )
    async def segments(self, info: Info[Context, None]) -> list[str]:
        return (await self._profile(info)).segments

    @strawberry.field(
        description="What your purchases tell of the member (needs insights:read); a"
        " partner reads only its own linked members."
    )
    async def profile(self, info: Info[Context, None]) -> MemberProfile | None:
        return MemberProfile.of(await self._profile(info))

    @classmethod
    def of(
        cls,
        member_id: int,
        wallet: WalletModel | None = None,
        profile: Profile | DomainError | None = None,
    ) -> Member:
        return cls(
            id=strawberry.ID(ids.encode("Member", member_id)),
            member_id=member_id,
            read_wallet=Wallet.of(wallet) if wallet is not None else None,
            read_profile=profile,
        )
