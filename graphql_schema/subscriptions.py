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

from exchange import ledger
from exchange.kit.errors import Forbidden
from graphql_schema.context import Context
from graphql_schema.errors import query_error
from graphql_schema.wallets import Wallet, load_wallet
from partners.principal import PrincipalKind

LEASE = timedelta(seconds=60)
RENEW_EVERY_SECONDS = 20.0


async def _lease(context: Context, member_id: int, watcher: str) -> None:
    async with context.database.transaction() as conn:
        await ledger.watch_wallet(
            conn, member_id=member_id, watcher=watcher, until=context.clock() + LEASE
        )


async def _release(context: Context, member_id: int, watcher: str) -> None:
    async with context.database.transaction() as conn:
        await ledger.unwatch_wallet(conn, member_id=member_id, watcher=watcher)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The caller's wallet, each time it changes.")
    async def wallet_updated(self, info: Info[Context, None]) -> AsyncGenerator[Wallet, None]:
        context = info.context
        principal = context.principal
        if principal.kind != PrincipalKind.MEMBER or principal.member_id is None:
            raise query_error(Forbidden("walletUpdated needs a member's token"))
        if not principal.has("wallet:read"):
            raise query_error(Forbidden("walletUpdated needs the wallet:read scope"))
        if context.notifications is None:
            raise query_error(Forbidden("subscriptions are not available here"))
        member_id, watcher = principal.member_id, uuid.uuid4().hex
        async with context.notifications.subscribe("wallet_updated", str(member_id)) as queue:
            await _lease(context, member_id, watcher)
            try:
                while context.clock() < principal.expires_at:
                    try:
                        await asyncio.wait_for(queue.get(), timeout=RENEW_EVERY_SECONDS)
                    except TimeoutError:
                        await _lease(context, member_id, watcher)
                        continue
                    yield await load_wallet(info, member_id)
            finally:
                await _release(context, member_id, watcher)
