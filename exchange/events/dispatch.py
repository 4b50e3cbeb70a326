"""The delivery rules, apart from the loop that runs them (exchange.delivery): what a
claimed delivery's request is, and what its outcome means.

At least once: a delivery is leased (not locked) while it is sent, so a worker that dies
mid-send leaves it to be sent again when the lease runs out; the webhook-id is the
event's, the same on every attempt, so receivers can drop repeats. 2xx is delivered. A
failure is tried again after an exponential backoff with jitter (first within ~5 s,
doubling, at most 6 hours apart) until 3 days after the first attempt; then the delivery
FAILED and its endpoint is disabled, with the reason an operator sees. A 410 Gone
disables the endpoint at once."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from exchange.events import endpoints, payloads, repository
from exchange.events.sender import Outcome
from exchange.kit.db import Connection, Row
from partners.identity import IdentityKeys

FIRST_RETRY = timedelta(seconds=5)
LONGEST_WAIT = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(days=3)


def message_id(event_id: int) -> str:
    """The webhook-id of an event: the same on every attempt and every endpoint."""
    return f"evt_{event_id}"


def next_attempt(attempts: int, now: datetime, rng: random.Random | None = None) -> datetime:
    """When to try again after ``attempts`` failed attempts: 5 s, 10 s, 20 s, ... doubled
    each time, at most LONGEST_WAIT, each within +-20 % (jitter, so a recovering
    receiver is not hit by every retry at once)."""
    wait = min(FIRST_RETRY * (2 ** max(0, attempts - 1)), LONGEST_WAIT)
    jitter = (rng or random).uniform(0.8, 1.2)
    when: datetime = now + wait * jitter
    return when


#: Why a delivery whose endpoint's secret can't be read was not sent.
CANNOT_SIGN = (
    "the endpoint's signing secret cannot be read (sealed under another EXCHANGE_SECRET_KEY?);"
    " rotateWebhookSecret makes a new one"
)


@dataclass(frozen=True)
class Request:
    """A claimed delivery ready to send: signed by ``signers`` (none: its endpoint's
    secret can't be read), not to be sent once its lease no longer covers a send."""

    delivery_id: int
    endpoint_id: int
    url: str
    message_id: str
    body: bytes
    signers: tuple[Webhook, ...]
    attempts: int
    first_attempt_at: datetime
    leased_until: datetime


def requests(
    claimed: list[Row], *, keys: IdentityKeys, now: datetime, leased_until: datetime
) -> list[Request]:
    """The claimed deliveries as requests: the member named by each receiving partner's
    own ref (read with the claim), signed with the endpoint's secret (and the one it
    replaced, for a day). Each endpoint's secrets are unsealed once for the round's
    deliveries, from the row the claim just read: a rotation is seen by the next round."""
    signers: dict[int, tuple[Webhook, ...]] = {}
    made = []
    for row in claimed:
        endpoint_id, partner = int(row.endpoint_id), row.endpoint_partner_id
        if endpoint_id not in signers:
            signers[endpoint_id] = _signers(keys, row, now)
        made.append(
            Request(
                delivery_id=int(row.id),
                endpoint_id=endpoint_id,
                url=row.url,
                message_id=message_id(int(row.event_id)),
                body=payloads.body(
                    row.type,
                    row.occurred_at,
                    dict(row.facts),
                    member_id=row.member_id,
                    member_ref=row.member_ref if partner is not None else None,
                    operator=partner is None,
                ),
                signers=signers[endpoint_id],
                attempts=int(row.attempts),
                first_attempt_at=row.first_attempt_at,
                leased_until=leased_until,
            )
        )
    return made


def _signers(keys: IdentityKeys, row: Row, now: datetime) -> tuple[Webhook, ...]:
    """Signers for the endpoint's secrets in force; none when one can't be read (sealed
    under another EXCHANGE_SECRET_KEY, or damaged): that endpoint's deliveries fail
    alone (CANNOT_SIGN), the others go out."""
    try:
        secrets = [endpoints.unseal(keys, row.secret)]
        if row.previous_secret is not None and (row.previous_secret_until or now) > now:
            secrets.append(endpoints.unseal(keys, row.previous_secret))
        return tuple(Webhook(secret) for secret in secrets)
    except (ValueError, InvalidTag, EmptyWebhookSecretError):
        return ()


async def record(
    conn: Connection, outcomes: list[tuple[Request, Outcome]], *, now: datetime
) -> None:
    """What attempts' outcomes leave: delivered (one statement for all of them); or tried
    again later; or FAILED (after 3 days, or at once for 410 Gone) with the endpoint
    disabled and why."""
    await repository.delivered_many(
        conn,
        delivered=[(r.delivery_id, int(o.status or 200)) for r, o in outcomes if o.delivered],
        now=now,
    )
    for request, outcome in outcomes:
        if not outcome.delivered:
            await _failed(conn, request, outcome, now=now)


async def _failed(conn: Connection, request: Request, outcome: Outcome, *, now: datetime) -> None:
    error = outcome.error or f"HTTP {outcome.status}"
    give_up = outcome.gone or now - request.first_attempt_at >= GIVE_UP_AFTER
    await repository.failed_attempt(
        conn, delivery_id=request.delivery_id, status_code=outcome.status, error=error,
        next_attempt_at=None if give_up else next_attempt(request.attempts + 1, now),
    )  # fmt: skip
    if give_up:
        why = (
            "the receiver answered 410 Gone"
            if outcome.gone
            else f"deliveries failed for {GIVE_UP_AFTER.days} days (last: {error})"
        )
        await repository.disable_endpoint(
            conn, endpoint_id=request.endpoint_id, reason=why, now=now
        )
