"""The Query root."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import strawberry
from strawberry.types import Info

from exchange.kit.errors import DomainError, Forbidden, InvalidInput
from exchange.ledger.models import AccountKind as LedgerAccountKind
from graphql_schema import ids
from graphql_schema import settlement as settlement_api
from graphql_schema.context import Context
from graphql_schema.errors import query_error
from graphql_schema.scalars import BigInt
from graphql_schema.settlement import SettlementRunConnection
from graphql_schema.types import (
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
from graphql_schema.wallets import Member, Wallet, load_wallet, selects, transactions_page
from partners import operations, registry
from partners.principal import PrincipalKind
from settlement import operations as settlement_operations


@strawberry.type
class Viewer:
    kind: ViewerKind
    scopes: list[str]
    partner_id: strawberry.Private[int | None]

    @strawberry.field
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        if self.partner_id is None:
            return None
        async with info.context.database.transaction() as conn:
            found = await registry.get_partner(
                conn, partner_id=self.partner_id, now=info.context.clock()
            )
        return Partner.of(found, with_contract=True)


@strawberry.type
class LinkedMember:
    member_ref: str
    linked_at: datetime
    member: Member


@strawberry.type
class LinkedMemberEdge:
    cursor: str
    node: LinkedMember


@strawberry.type
class LinkedMemberConnection:
    edges: list[LinkedMemberEdge]
    page_info: PageInfo


def _ref_cursor(member_ref: str) -> str:
    return base64.urlsafe_b64encode(f"ref:{member_ref}".encode()).decode()


def _ref_after_prefix(cursor: str, prefix: str) -> str | None:
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded[len(prefix) :] if decoded.startswith(prefix) else None


def _ref_after(cursor: str) -> str | None:
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded[4:] if decoded.startswith("ref:") else None


AccountKind = strawberry.enum(LedgerAccountKind, name="AccountKind")


@strawberry.type
class LedgerAccount:
    kind: AccountKind  # type: ignore[valid-type]
    balance: BigInt  # type: ignore[valid-type]
    partner_id: strawberry.Private[int | None]
    member_id: strawberry.Private[int | None]

    @strawberry.field
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        if self.partner_id is None:
            return None
        found = await info.context.partners.load(self.partner_id)
        return Partner.of(found, with_contract=True) if found else None

    @strawberry.field
    def member(self) -> Member | None:
        return Member.of(self.member_id) if self.member_id is not None else None


@strawberry.type
class LedgerAccountEdge:
    cursor: str
    node: LedgerAccount


@strawberry.type
class LedgerAccountConnection:
    edges: list[LedgerAccountEdge]
    page_info: PageInfo


def _account_cursor(account_id: int) -> str:
    return base64.urlsafe_b64encode(f"account:{account_id}".encode()).decode()


@strawberry.type
class Query:
    @strawberry.field(description="Operators (ledger:read:all): every ledger account.")
    async def ledger_accounts(
        self,
        info: Info[Context, None],
        first: FirstArgument | None = None,
        after: str | None = None,
        kind: AccountKind | None = None,  # type: ignore[valid-type]
    ) -> LedgerAccountConnection:
        context = info.context
        size = 20 if first is None else first
        after_id = 0
        if after:
            decoded = _ref_after_prefix(after, "account:")
            if decoded is None or not decoded.isdigit():
                raise query_error(InvalidInput("after is not a cursor from here", field=["after"]))
            after_id = int(decoded)
        if not 1 <= size <= 100:
            raise query_error(InvalidInput("first must be between 1 and 100", field=["first"]))
        try:
            async with context.database.transaction() as conn:
                rows = await operations.ledger_accounts(
                    conn,
                    context.principal,
                    after_id=after_id,
                    first=size + 1,
                    kind=LedgerAccountKind(kind.value) if kind else None,
                )
        except DomainError as error:
            raise query_error(error) from None
        edges = [
            LedgerAccountEdge(
                cursor=_account_cursor(r.id),
                node=LedgerAccount(
                    kind=r.kind, balance=r.balance, partner_id=r.partner_id, member_id=r.member_id
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
        first: FirstArgument | None = None,
        after: str | None = None,
    ) -> LinkedMemberConnection:
        context = info.context
        size = 20 if first is None else first
        after_ref = _ref_after(after) if after else None
        if not 1 <= size <= 100 or (after and after_ref is None):
            raise query_error(InvalidInput("first must be 1 to 100; after a cursor from here"))
        try:
            async with context.unit_of_work() as conn:
                links = await operations.linked_members(
                    conn, context.principal, first=size + 1, after_ref=after_ref
                )
        except DomainError as error:
            raise query_error(error) from None
        edges = [
            LinkedMemberEdge(
                cursor=_ref_cursor(link.member_ref),
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
    async def member(self, info: Info[Context, None], member_ref: str) -> Member | None:
        context = info.context
        with_wallet = selects(info, "wallet")
        try:
            context.principal.require("members:read")
            async with context.unit_of_work() as conn:
                if with_wallet:
                    member_id, wallet = await operations.member_wallet_of_ref(
                        conn, context.principal, member_ref
                    )
                    return Member.of(member_id, wallet)
                member_id = await operations.member_of_ref(conn, context.principal, member_ref)
        except DomainError as error:
            if error.code == "MEMBER_NOT_LINKED":
                return None
            raise query_error(error) from None
        return Member.of(member_id)

    @strawberry.field(description="A member token's own wallet.")
    async def wallet(self, info: Info[Context, None]) -> Wallet | None:
        principal = info.context.principal
        if principal.kind != PrincipalKind.MEMBER or principal.member_id is None:
            raise query_error(Forbidden("wallet needs a member's token"))
        return await load_wallet(info, principal.member_id)

    @strawberry.field
    async def transactions(
        self,
        info: Info[Context, None],
        first: FirstArgument | None = None,
        after: str | None = None,
        filter: TransactionFilter | None = None,
    ) -> TransactionConnection:
        return await transactions_page(info, first, after, filter)

    @strawberry.field
    async def partners(
        self,
        info: Info[Context, None],
        first: FirstArgument | None = None,
        after: str | None = None,
    ) -> PartnerConnection:
        context = info.context
        size = 20 if first is None else first
        after_id = ids.decode_as(after, "Partner") if after else 0
        if not 1 <= size <= 100 or after_id is None:
            raise query_error(Forbidden("invalid page arguments"))
        async with context.database.transaction() as conn:
            everyone = await registry.list_partners(conn, now=context.clock())
        visible = [p for p in everyone if p.id > after_id]
        page = visible[:size]
        admin = context.principal.has("partners:admin")
        edges = [
            PartnerEdge(
                cursor=ids.encode("Partner", p.id),
                node=Partner.of(p, with_contract=admin or p.id == context.principal.partner_id),
            )
            for p in page
        ]
        return PartnerConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(visible) > size,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    settlement_runs: SettlementRunConnection = strawberry.field(
        resolver=settlement_api.settlement_runs,
        description="Operators: every run. Partners (settlement:read): their own statement"
        " of each finalized run.",
    )

    @strawberry.field(description="Any object by its global ID, if the caller may see it.")
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        decoded = ids.decode(id)
        if decoded is None:
            return None
        type_name, key = decoded
        context = info.context
        async with context.unit_of_work() as conn:
            if type_name == "Transaction":
                entry = await operations.transaction_for(conn, context.principal, key)
                return Transaction.of(entry) if entry else None
            if type_name == "Hold":
                hold = await operations.hold_for(conn, context.principal, key)
                return Hold.of(hold) if hold else None
            if type_name == "Partner":
                found = await context.partners.load(key)
                if found is None:
                    return None
                own = context.principal.partner_id == key
                return Partner.of(
                    found, with_contract=own or context.principal.has("partners:admin")
                )
            if type_name == "SettlementRun":
                try:
                    visible = await settlement_operations.runs(
                        conn, context.principal, first=1, before_id=key + 1
                    )
                except DomainError:
                    return None
                match = [v for v in visible if v.id == key]
                return settlement_api.SettlementRun.of(match[0]) if match else None
            if type_name == "Member":
                try:
                    await operations.wallet_of(conn, context.principal, key)
                except DomainError:
                    return None
                return Member.of(key)
        return None
