"""GraphQL object types. Resolvers on them only load and map; rules live in the domain."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Annotated, TypeVar

import strawberry
from strawberry.types import Info

from exchange.kit.errors import DomainError
from exchange.kit.errors import ErrorCode as DomainErrorCode
from exchange.ledger.models import EntryKind, EntryView
from exchange.ledger.models import Hold as HoldModel
from exchange.ledger.models import HoldStatus as HoldStatusModel
from graphql_schema import ids
from graphql_schema.context import Context
from graphql_schema.enums import describe_enum
from graphql_schema.scalars import BigInt
from partners.models import PartnerListing

# describe_enum() registers a domain enum under its GraphQL name; the plain alias is what
# annotations name (mypy takes no call as a type).
describe_enum(
    DomainErrorCode,
    name="ErrorCode",
    description="Why a call was refused; the call moved nothing.",
    values={
        DomainErrorCode.INVALID_INPUT: "An argument is malformed or out of its limits.",
        DomainErrorCode.NOT_FOUND: "No object you may see has that id.",
        DomainErrorCode.FORBIDDEN: "Your token lacks the scope, or the kind of caller, it needs.",
        DomainErrorCode.INSUFFICIENT_POINTS: "The member has fewer points available.",
        DomainErrorCode.IDEMPOTENCY_KEY_REUSED: "The key was used before with another request.",
        DomainErrorCode.MEMBER_NOT_LINKED: "No member is linked to that memberRef of yours.",
        DomainErrorCode.HOLD_NOT_ACTIVE: "The hold was captured, released or has expired.",
        DomainErrorCode.ALREADY_REVERSED: "Nothing is left of the transaction to reverse.",
        DomainErrorCode.LIMIT_EXCEEDED: "A credit limit or points cap would be exceeded.",
        DomainErrorCode.PERIOD_CLOSED: "A finalized settlement run covers the period, or"
        " the run is no longer a draft.",
        DomainErrorCode.NOT_REVERSIBLE: "Only earns and redemptions can be reversed.",
        DomainErrorCode.CONTACT_MISMATCH: "The member has a different e-mail or phone than"
        " the one given (a new one: updateMemberContact).",
        DomainErrorCode.CONTACT_IN_USE: "Another member has that e-mail or phone.",
    },
)
describe_enum(
    EntryKind,
    name="TransactionKind",
    description="What a transaction did.",
    values={
        EntryKind.EARN: "Points issued to a member.",
        EntryKind.REDEEM: "Points a member spent.",
        EntryKind.HOLD: "Points reserved at a point of sale.",
        EntryKind.CAPTURE: "A hold (or part of it) redeemed.",
        EntryKind.RELEASE: "A hold given back to the member.",
        EntryKind.REVERSAL: "An earn or a redemption undone (a return, a refund).",
        EntryKind.EXPIRY: "Points that reached their expiry.",
        EntryKind.TRANSFER: "Points one member gave another.",
        EntryKind.ADJUSTMENT: "An operator's correction.",
    },
)
describe_enum(
    HoldStatusModel,
    name="HoldStatus",
    description="Where a hold is in its life.",
    values={
        HoldStatusModel.ACTIVE: "Reserved; it can be captured or released.",
        HoldStatusModel.CAPTURED: "Redeemed (all or part; the rest went back).",
        HoldStatusModel.RELEASED: "Given back to the member.",
        HoldStatusModel.EXPIRED: "Released automatically at its expiry.",
    },
)
ErrorCode = DomainErrorCode
TransactionKind = EntryKind
HoldStatus = HoldStatusModel


@strawberry.enum(description="Who is calling.")
class ViewerKind(enum.Enum):
    PARTNER = strawberry.enum_value("PARTNER", description="A partner's client.")
    OPERATOR = strawberry.enum_value("OPERATOR", description="The coalition's operator.")
    MEMBER = strawberry.enum_value("MEMBER", description="A member's own token.")


@strawberry.type(description="Why a mutation was refused; it moved nothing.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='The input field to blame, as a path (["input", "points"]); null: the'
        " call as a whole."
    )
    code: ErrorCode = strawberry.field(description="A stable code to act on.")
    message: str = strawberry.field(
        description="For a person; it names objects by the global IDs you know."
    )

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        field = ["input", *error.field] if error.field else None
        return cls(field=field, code=error.code, message=error.render(ids.of_ref))


@strawberry.interface(description="An object with an opaque global ID.")
class Node:
    id: strawberry.ID = strawberry.field(
        description="Its global ID: opaque, stable, accepted by node(id:)."
    )


@strawberry.type(description="A partner's contract terms in force (a version of them).")
class Contract:
    version: int = strawberry.field(description="The version, from 1.")
    currency: str = strawberry.field(description="The settlement currency (ISO 4217).")
    issue_price: Decimal = strawberry.field(
        description="What the partner pays per point it issues."
    )
    redemption_price: Decimal = strawberry.field(
        description="What the partner is paid per point redeemed with it."
    )
    fee_rate: Decimal = strawberry.field(description="The coalition's fee, a fraction.")
    funding_model: str = strawberry.field(description="PREFUNDED or ON_REDEMPTION.")
    points_lifetime_days: int = strawberry.field(description="How long earned points live.")
    credit_limit_points: BigInt | None = strawberry.field(
        description="The most points the partner may have outstanding; null: no limit."
    )
    effective_from: datetime = strawberry.field(description="When this version took effect.")
    earn_rate: Decimal = strawberry.field(description="Base points per currency unit spent.")
    max_points_per_operation: BigInt = strawberry.field(
        description="The most points one operation (an earn, a redemption, a purchase) moves."
    )


@strawberry.type(description="A brand of the coalition.")
class Partner(Node):
    name: str = strawberry.field(description="Its name.")
    status: str = strawberry.field(description="ACTIVE or SUSPENDED.")
    contract: Contract | None = strawberry.field(
        description="Its terms in force; only for the partner itself and operators."
    )

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


@strawberry.type(description="One movement of points: a balanced entry of the ledger.")
class Transaction(Node):
    kind: TransactionKind = strawberry.field(description="What it did.")
    points: BigInt = strawberry.field(description="How many points it moved.")
    reference: str | None = strawberry.field(description="The partner's own reference.")
    created_at: datetime = strawberry.field(description="When it was written.")
    effective_at: datetime = strawberry.field(
        description="When it counts (its period for settlement)."
    )
    partner_id: strawberry.Private[int | None]

    @strawberry.field(
        description="The partner it happened at; null when no partner was party to it."
    )
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


@strawberry.type(description="Points reserved at a point of sale until captured or released.")
class Hold(Node):
    points: BigInt = strawberry.field(description="The points reserved.")
    captured_points: BigInt = strawberry.field(description="The points redeemed of them.")
    status: HoldStatus = strawberry.field(description="Where it is in its life.")
    expires_at: datetime = strawberry.field(
        description="When it is released by itself if still active."
    )

    @classmethod
    def of(cls, hold: HoldModel) -> Hold:
        return cls(
            id=strawberry.ID(ids.encode("Hold", hold.id)),
            points=BigInt(hold.points),
            captured_points=BigInt(hold.captured_points),
            status=hold.status,
            expires_at=hold.expires_at,
        )


@strawberry.type(description="The points a member holds that one issuer issued.")
class PartnerBalance:
    points: BigInt = strawberry.field(description="Points still held.")
    partner_id: strawberry.Private[int | None]

    @strawberry.field(description="The issuing partner; null for coalition-issued points.")
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.partner_id)


@strawberry.type(description="Points of one issuer expiring at one time.")
class ExpiringPoints:
    points: BigInt = strawberry.field(description="How many.")
    expires_at: datetime = strawberry.field(description="When they expire.")
    partner_id: strawberry.Private[int | None]

    @strawberry.field(description="The issuing partner; null for coalition-issued points.")
    async def partner(self, info: Info[Context, None]) -> Partner | None:
        return await load_partner(info, self.partner_id)


@strawberry.type(description="Where a page of a list ends.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more items follow.")
    end_cursor: str | None = strawberry.field(
        description="The last item's cursor: pass it as `after` for the next page."
    )


@strawberry.type(description="A transaction in a list, with its cursor.")
class TransactionEdge:
    cursor: str = strawberry.field(description="Where the list can continue after it.")
    node: Transaction = strawberry.field(description="The transaction.")


@strawberry.type(description="A page of transactions, newest first.")
class TransactionConnection:
    edges: list[TransactionEdge] = strawberry.field(description="The page's transactions.")
    page_info: PageInfo = strawberry.field(description="Where the page ends.")

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


@strawberry.type(description="A partner in a list, with its cursor.")
class PartnerEdge:
    cursor: str = strawberry.field(description="Where the list can continue after it.")
    node: Partner = strawberry.field(description="The partner.")


@strawberry.type(description="A page of the coalition's partners.")
class PartnerConnection:
    edges: list[PartnerEdge] = strawberry.field(description="The page's partners.")
    page_info: PageInfo = strawberry.field(description="Where the page ends.")


@strawberry.input(description="Narrow a list of transactions; every condition given holds.")
class TransactionFilter:
    kinds: list[TransactionKind] | None = strawberry.field(
        default=None, description="Only these kinds."
    )
    member_ref: str | None = strawberry.field(
        default=None, description="Only this member of yours, by your ref."
    )
    since: datetime | None = strawberry.field(default=None, description="Created at or after.")
    until: datetime | None = strawberry.field(default=None, description="Created before.")
    reference: str | None = strawberry.field(
        default=None, description="Only those with this reference."
    )


FirstArgument = Annotated[
    int | None, strawberry.argument(description="Page size, 1 to 100 (default 20).")
]
T = TypeVar("T")
#: A mutation's one argument: ``input: InputArgument[EarnPointsInput]``.
InputArgument = Annotated[T, strawberry.argument(description="The call's input object.")]
AfterArgument = Annotated[
    str | None,
    strawberry.argument(description="Continue after this cursor (a page's endCursor)."),
]
