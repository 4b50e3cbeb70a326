"""What every resolver gets: the caller and a way to run use cases for it. There is no
database here: a resolver reaches data only through a use case, which the runner runs
under the caller's row-level-security scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from exchange.kit.notifications import Notifications
from exchange.limits import SharedBuckets
from exchange.usecases import partners as partner_cases
from exchange.usecases.core import UseCase
from exchange.usecases.runner import Runner
from partners.models import PartnerListing
from partners.principal import Principal

Q = TypeVar("Q")
A = TypeVar("A")


@dataclass
class Context:
    runner: Runner
    principal: Principal
    request_id: str
    loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)
    notifications: Notifications | None = None
    #: Verifies a bearer token; used when a websocket authenticates in connection_init.
    authenticate: Callable[[str], Awaitable[Principal]] | None = None
    connection_params: dict[str, Any] | None = None
    #: Query cost: each client's bucket, shared by every server process (graphql_schema.cost).
    cost_limits: SharedBuckets | None = None
    #: The client's address, which the audit log records for an operator's change.
    origin: str = ""

    async def run(self, use_case: UseCase[Q, A], request: Q) -> A:
        """Run a use case for the caller; a business failure raises its DomainError."""
        return await self.runner.run(self.principal, use_case, request, origin=self.origin)

    @property
    def partners(self) -> DataLoader[int, PartnerListing | None]:
        """Partners by id, as the caller may see them, loaded once per request."""
        if "partners" not in self.loaders:

            async def load(ids: list[int]) -> list[PartnerListing | None]:
                found = await self.run(partner_cases.partners_by_ids, list(ids))
                return [found.get(partner_id) for partner_id in ids]

            self.loaders["partners"] = DataLoader(load_fn=load)
        loader: DataLoader[int, PartnerListing | None] = self.loaders["partners"]
        return loader
