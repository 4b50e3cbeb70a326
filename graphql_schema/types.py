"""GraphQL object types. Resolvers on them only load and map; rules live in the domain."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from exchange.kit.errors import DomainError
from exchange.kit.errors import ErrorCode as DomainErrorCode
from exchange.ledger.models import EntryKind, EntryView
from exchange.ledger.models import Hold as HoldModel
from exchange.ledger.models import HoldStatus as HoldStatusModel
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.scalars import BigInt
from partners.models import PartnerListing

# strawberry.enum() registers a domain enum under its GraphQL name and returns the same
# class; the plain alias is what annotations name (mypy takes no call as a type).
strawberry.enum(DomainErrorCode, name="ErrorCode")
strawberry.enum(EntryKind, name="TransactionKind")
strawberry.enum(HoldStatusModel, name="HoldStatus")
ErrorCode = DomainErrorCode
TransactionKind = EntryKind
HoldStatus = HoldStatusModel


@strawberry.enum
class ViewerKind(enum.Enum):
    PARTNER = "PARTNER"
    OPERATOR = "OPERATOR"
    MEMBER = "MEMBER"


@strawberry.type
class UserError:
    field: list[str] | None
    code: ErrorCode
    message: str

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        field = ["input", *error.field] if error.field else None
        return cls(field=field, code=error.code, message=error.render(ids.of_ref))


@strawberry.interface(description="An object with an opaque global ID.")
class Node:
    id: strawberry.ID


@strawberry.type
class Contract:
    version: int
    currency: str
    issue_price: Decimal
    redemption_price: Decimal
    fee_rate: Decimal
    funding_model: str
    points_lifetime_days: int
    credit_limit_points: BigInt | None
    effective_from: datetime
    earn_rate: Decimal = strawberry.field(description="Base points per currency unit spent.")
    max_points_per_operation: BigInt = strawberry.field(
        description="The most points one operation (an earn, a redemption, a purchase) moves."
    )


@strawberry.type
class Partner(Node):
    name: str
    status: str
    contract: Contract | None

    @classmethod
    def of(cls, partner: PartnerListing) -> Partner:
        contract = None
        if partner.contract is not None:
            terms = partner.contract.terms
            contract = Contract(
                version=partner.contract.version,
                currency=terms.currency,
                issue_price=terms.issue_price,
                redemption_price=terms.redemption_price,
                fee_rate=terms.fee_rate,
                funding_model=str(terms.funding_model),
                points_lifetime_days=terms.points_lifetime_days,
                credit_limit_points=(
                    BigInt(terms.credit_limit_points)
                    if terms.credit_limit_points is not None
                    else None
                ),
                effective_from=partner.contract.effective_from,
                earn_rate=terms.earn_rate,
                max_points_per_operation=BigInt(terms.max_points_per_operation),
            )
        return cls(
            id=strawberry.ID(ids.encode("Partner", partner.id)),
            name=partner.name,
            status=str(partner.status),
            contract=contract,
        )


async def load_partner(info: Info[Context, None], partner_id: int | None) -> Partner | None:
    """A partner as the caller may see it (its contract only where permitted)."""
    if partner_id is None:
        return None
    found = await info.context.partners.load(partner_id)
    return Partner.of(found) if found is not None else None


@strawberry.type
class Transaction(Node):
    kind: TransactionKind
    points: BigInt
    reference: str | None
    created_at: datetime
    effective_at: datetime
    partner_id: strawberry.Private[int | None]

    @strawberry.field
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.partner_id)

    @classmethod
    def of(cls, entry: EntryView) -> Transaction:
        return cls(
            id=strawberry.ID(ids.encode("Transaction", entry.id)),
            kind=entry.kind,
            points=BigInt(entry.points),
            reference=entry.reference,
            created_at=entry.created_at,
            effective_at=entry.effective_at,
            partner_id=entry.partner_id,
        )


@strawberry.type
class Hold(Node):
    points: BigInt
    captured_points: BigInt
    status: HoldStatus
    expires_at: datetime

    @classmethod
    def of(cls, hold: HoldModel) -> Hold:
        return cls(
            id=strawberry.ID(ids.encode("Hold", hold.id)),
            points=BigInt(hold.points),
            captured_points=BigInt(hold.captured_points),
            status=hold.status,
            expires_at=hold.expires_at,
        )


@strawberry.type
class PartnerBalance:
    points: BigInt
    partner_id: strawberry.Private[int | None]

    @strawberry.field(description="The issuing partner; null for coalition-issued points.")
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.partner_id)


@strawberry.type
class ExpiringPoints:
    points: BigInt
    expires_at: datetime
    partner_id: strawberry.Private[int | None]

    @strawberry.field
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.partner_id)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class TransactionEdge:
    cursor: str
    node: Transaction


@strawberry.type
class TransactionConnection:
    edges: list[TransactionEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, entries: list[EntryView], first: int) -> TransactionConnection:
        page = entries[:first]
        edges = [
            TransactionEdge(cursor=ids.encode("Transaction", e.id), node=Transaction.of(e))
            for e in page
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(entries) > first,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class PartnerEdge:
    cursor: str
    node: Partner


@strawberry.type
class PartnerConnection:
    edges: list[PartnerEdge]
    page_info: PageInfo


@strawberry.input
class TransactionFilter:
    kinds: list[TransactionKind] | None = None
    member_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reference: str | None = None


FirstArgument = Annotated[int, strawberry.argument(description="Page size, 1 to 100.")]
