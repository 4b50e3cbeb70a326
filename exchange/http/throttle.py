"""Failed client authentications on the OAuth endpoints, throttled per remote address
and per client id, across every server process (exchange.limits, docs/decisions/0010).

- An address that failed FAILURES_PER_MINUTE times within a minute (a bucket of that
  many, refilled at that rate) is refused with 429 before its credentials are even
  read, until its bucket refills.
- A failed authentication over either limit (its address's, or the claimed client's,
  from whatever address) is answered 429 instead of 401.
- A successful authentication is never slowed: it writes nothing, waits for nothing,
  and a client id is never refused because others failed as it: client ids are not
  secret, and locking a partner out of its tokens must not take ten bad requests a
  minute. (Client secrets are 256 random bits; the limits bound the work a guesser
  causes, not the odds of a guess.)

Each refusal is RFC 6749 JSON (``temporarily_unavailable``) with ``Retry-After``. The
remote address is the one the server sees: behind a proxy, set ``FORWARDED_ALLOW_IPS``
to the proxy's address so that uvicorn takes the client's from ``X-Forwarded-For``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from exchange.kit.system import SYSTEM
from exchange.limits import Decision, Limit, SharedBuckets
from partners.oauth import HttpResponse

FAILURES_PER_MINUTE = 10
BY_CLIENT = Limit(
    "auth-client",
    capacity=FAILURES_PER_MINUTE,
    refill_points=FAILURES_PER_MINUTE,
    refill_seconds=60,
    lease_points=1,
)
BY_ADDRESS = Limit(
    "auth-address",
    capacity=FAILURES_PER_MINUTE,
    refill_points=FAILURES_PER_MINUTE,
    refill_seconds=60,
    lease_points=1,
)


def address_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def too_many(decision: Decision, whose: str) -> JSONResponse:
    seconds = decision.retry_after_seconds
    return JSONResponse(
        {
            "error": "temporarily_unavailable",
            "error_description": f"too many failed client authentications {whose};"
            f" retry in {seconds} s",
        },
        status_code=429,
        headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
    )


class FailedAuthentications:
    def __init__(self, *, by_client: SharedBuckets, by_address: SharedBuckets) -> None:
        self.by_client = by_client
        self.by_address = by_address

    def before(self, request: Request) -> JSONResponse | None:
        """The 429 for an address this process knows is over its limit (no round trip)."""
        refused = self.by_address.refused(address_of(request))
        return too_many(refused, "from this address") if refused is not None else None

    async def after(self, request: Request, result: HttpResponse) -> JSONResponse | None:
        """Count a failed authentication; the 429 to answer instead when it is one too
        many. None for anything else (a success costs nothing here)."""
        if not result.authentication_failed:
            return None
        address = await self.by_address.take(address_of(request), 1, scope=SYSTEM)
        if not address.allowed:
            return too_many(address, "from this address")
        for client_id in sorted(result.failed_client_ids):
            client = await self.by_client.take(client_id, 1, scope=SYSTEM)
            if not client.allowed:
                return too_many(client, "for this client")
        return None

    @property
    def limits(self) -> list[SharedBuckets]:
        return [self.by_client, self.by_address]
