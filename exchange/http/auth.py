"""What one server process holds to authenticate requests without a database round trip:
the signing keys and an :class:`AuthState` snapshot (published keys, revoked tokens,
suspended partners, revoked clients).

The snapshot is reloaded at most every REFRESH_SECONDS and at once when any process
commits a change that can invalidate tokens: they ``NOTIFY exchange_auth`` and every
process ``LISTEN``s on a connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy

from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.invariant import present
from exchange.kit.system import SYSTEM
from partners import keys as key_store
from partners import tokens
from partners.keys import SigningKeys
from partners.oauth import OAuthContext
from partners.principal import Principal
from partners.repository import AUTH_CHANNEL
from partners.tokens import MAX_TOKEN_LIFETIME_SECONDS, AuthState, TokenSettings

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


def token_settings(
    public_url: str, *, max_lifetime_seconds: int = MAX_TOKEN_LIFETIME_SECONDS
) -> TokenSettings:
    return TokenSettings(
        issuer=public_url,
        audience=f"{public_url}/graphql",
        max_lifetime_seconds=max_lifetime_seconds,
    )


def _libpq_url(url: str) -> str:
    parsed = sqlalchemy.engine.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class AuthRuntime:
    def __init__(
        self,
        database: Database,
        *,
        secret: bytes,
        public_url: str,
        max_token_lifetime_seconds: int = MAX_TOKEN_LIFETIME_SECONDS,
    ) -> None:
        self.database = database
        self.secret = secret
        self.settings = token_settings(public_url, max_lifetime_seconds=max_token_lifetime_seconds)
        self._keys: SigningKeys | None = None
        self._state: AuthState | None = None
        self._stale = True
        self._lock = asyncio.Lock()
        self._listener: Any = None

    async def start(self, *, listen: bool = True) -> None:
        async with self.database.transaction(SYSTEM) as conn:
            await key_store.ensure_keys(conn, secret=self.secret, now=utc_now())
        await self.refresh()
        if listen:
            await self._listen()

    async def _listen(self) -> None:
        try:
            self._listener = await asyncpg.connect(_libpq_url(str(self._url())))
            await self._listener.add_listener(AUTH_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError):
            log.warning("no LISTEN connection; auth changes apply within %ss", REFRESH_SECONDS)
            self._listener = None

    def _url(self) -> str:
        return self.database.engine.url.render_as_string(hide_password=False)

    def _on_notify(self, *args: object) -> None:
        self._stale = True

    async def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    def invalidate(self) -> None:
        self._stale = True

    async def refresh(self) -> None:
        now = utc_now()
        async with self.database.transaction(SYSTEM) as conn:
            keys = await key_store.load(conn, secret=self.secret, now=now)
            state = await tokens.load_auth_state(conn, keys=keys, now=now)
        self._keys, self._state, self._stale = keys, state, False

    async def state(self) -> AuthState:
        now = utc_now()
        current = self._state
        if (
            current is None
            or self._stale
            or (now - current.loaded_at).total_seconds() > REFRESH_SECONDS
        ):
            async with self._lock:
                current = self._state
                if (
                    current is None
                    or self._stale
                    or (now - current.loaded_at).total_seconds() > REFRESH_SECONDS
                ):
                    await self.refresh()
        return present(self._state, "the auth state was loaded")

    async def context(self) -> OAuthContext:
        await self.state()
        return OAuthContext(
            keys=present(self._keys, "keys load with the state"), settings=self.settings
        )

    async def verify(self, token: str, *, now: datetime | None = None) -> Principal:
        """The principal of a bearer token, or :class:`tokens.InvalidToken`."""
        state = await self.state()
        return tokens.verify(token, self.settings, state, now=now or utc_now())
