"""What one server process holds to authenticate requests without a database round trip:
the signing keys and an :class:`AuthState` snapshot (published keys, revoked tokens,
suspended partners, revoked clients).

The snapshot is reloaded at most every REFRESH_SECONDS, and at once when any process
commits a change that can invalidate tokens: they ``NOTIFY exchange_auth`` and every
process listens (``exchange.kit.listener``: one connection that reopens itself after a
restart). While that connection is down a notification could be missed, so every check
reloads the snapshot first (a reload begun after the check was asked for), or fails
with the database; once it is back the snapshot is reloaded once more. A revocation is
honoured at once either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.invariant import present
from exchange.kit.listener import Listener
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


class AuthRuntime:
    def __init__(
        self,
        database: Database,
        *,
        listener: Listener,
        secret: bytes,
        public_url: str,
        max_token_lifetime_seconds: int = MAX_TOKEN_LIFETIME_SECONDS,
    ) -> None:
        self.database = database
        self.listener = listener
        self.secret = secret
        self.settings = token_settings(public_url, max_lifetime_seconds=max_token_lifetime_seconds)
        self._keys: SigningKeys | None = None
        self._state: AuthState | None = None
        #: time.monotonic() when the snapshot's load began, and when it was last known
        #: stale (a change notified, the listener lost or back): older loads don't count.
        self._loaded_from = -1.0
        self._stale_from = 0.0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self.database.transaction(SYSTEM) as conn:
            await key_store.ensure_keys(conn, secret=self.secret, now=utc_now())
        await self.refresh()
        await self.listener.listen(AUTH_CHANNEL, self._on_notify)
        self.listener.on_state(self._on_listener)

    def _on_notify(self, payload: str) -> None:
        self.invalidate()

    async def _on_listener(self, connected: bool) -> None:
        # Lost: notifications may be missed from now on. Back: some may have been.
        self.invalidate()

    def invalidate(self) -> None:
        self._stale_from = time.monotonic()

    async def refresh(self) -> None:
        began = time.monotonic()
        now = utc_now()
        async with self.database.transaction(SYSTEM) as conn:
            keys = await key_store.load(conn, secret=self.secret, now=now)
            state = await tokens.load_auth_state(conn, keys=keys, now=now)
        self._keys, self._state, self._loaded_from = keys, state, began

    def _fresh_for(self, asked: float) -> bool:
        """Whether the snapshot may answer a check asked for at ``asked``."""
        if self._state is None or self._loaded_from < self._stale_from:
            return False
        if not self.listener.connected:  # a change may go unnotified: load after asking
            return self._loaded_from >= asked
        return time.monotonic() - self._loaded_from <= REFRESH_SECONDS

    async def state(self) -> AuthState:
        asked = time.monotonic()
        if not self._fresh_for(asked):
            async with self._lock:  # concurrent checks share one reload
                if not self._fresh_for(asked):
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
