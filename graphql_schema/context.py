"""What every resolver gets: the caller, the database and per-request loaders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from exchange.kit.db import Database
from exchange.kit.notifications import Notifications
from graphql_schema.coalescing import EarnCoalescer
from partners import registry
from partners.identity import IdentityKeys
from partners.models import Partner
from partners.principal import Principal


@dataclass
class Context:
    database: Database
    principal: Principal
    identity_keys: IdentityKeys
    clock: Callable[[], datetime]
    request_id: str
    loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)
    notifications: Notifications | None = None
    #: Verifies a bearer token; used when a websocket authenticates in connection_init.
    authenticate: Callable[[str], Awaitable[Principal]] | None = None
    connection_params: dict[str, Any] | None = None
    #: Micro-batching of concurrent earns (per process); None: each earn on its own.
    earns: EarnCoalescer | None = None

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncConnection]:
        """One transaction, under row-level security for the caller."""
        async with self.database.transaction(self.principal.row_scope()) as conn:
            yield conn

    @property
    def partners(self) -> DataLoader[int, Partner | None]:
        if "partners" not in self.loaders:

            async def load(ids: list[int]) -> list[Partner | None]:
                async with self.database.transaction() as conn:
                    everyone = {
                        p.id: p for p in await registry.list_partners(conn, now=self.clock())
                    }
                return [everyone.get(partner_id) for partner_id in ids]

            self.loaders["partners"] = DataLoader(load_fn=load)
        return self.loaders["partners"]
