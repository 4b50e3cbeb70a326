"""The Subscription root: ``walletUpdated`` for a member token, over graphql-transport-ws.

Delivery crosses server processes through PostgreSQL: while a subscription is open its
server leases a row in ``wallet_watch``; the ledger's trigger then NOTIFYs on every
change to that member's wallet, and every process LISTENs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import timedelta

import strawberry
from strawberry.types import Info

from exchange.kit.clock import utc_now
from exchange.kit.errors import Forbidden
from exchange.usecases import members
from graphql_schema.context import Context
from graphql_schema.errors import ask, query_error
from graphql_schema.wallets import Wallet, load_wallet

LEASE = timedelta(seconds=60)
RENEW_EVERY_SECONDS = 20.0


async def _lease(info: Info[Context, None], watcher: str, *, renew: bool = True) -> None:
    """Lease the caller's wallet watch for LEASE more (``renew`` False: end it)."""
    until = utc_now() + LEASE if renew else None
    await ask(info, members.watch_wallet, lambda: members.WalletWatch(watcher, until))


@strawberry.type(description="What a caller can follow live, over graphql-transport-ws.")
class Subscription:
    @strawberry.subscription(description="The caller's wallet, each time it changes.")
    async def wallet_updated(self, info: Info[Context, None]) -> AsyncGenerator[Wallet, None]:
        context = info.context
        principal = context.principal
        if context.notifications is None:
            raise query_error(Forbidden("subscriptions are not available here"))
        watcher, member_id = uuid.uuid4().hex, principal.member_id
        async with context.notifications.subscribe("wallet_updated", str(member_id)) as queue:
            await _lease(info, watcher)  # only a member token with wallet:read may
            try:
                while member_id is not None and utc_now() < principal.expires_at:
                    try:
                        await asyncio.wait_for(queue.get(), timeout=RENEW_EVERY_SECONDS)
                    except TimeoutError:
                        await _lease(info, watcher)
                        continue
                    yield await load_wallet(info, member_id)
            finally:
                await _lease(info, watcher, renew=False)
