"""Member insights in the API: a member's profile and segments, segments, consent,
offers, KPIs and a targeted campaign's report (decision 0018)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from exchange.insights.models import Profile
from exchange.usecases import insights as cases
from graphql_schema.context import Context
from graphql_schema.errors import ask


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
