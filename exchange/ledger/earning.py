"""Issuing points: PARTNER_ISSUED -n, member wallet +n, and a new lot of the issuer.

One rule, one writer: :class:`Earn` plans an earn (the member's wallet must exist, the
lot's expiry comes from :func:`~exchange.ledger.requests.lot_expiry`, a partner with a
credit limit may not exceed it), and :func:`exchange.ledger.execution.execute` writes
it, for one earn or a thousand. A single plain earn first tries the one-statement fast
path (:func:`exchange.ledger.repository.earn_at_once`), which writes the same rows when
nothing needs deciding and otherwise writes nothing and hands over to the general path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.kit.errors import NotFound
from exchange.ledger import execution, idempotency, repository
from exchange.ledger.errors import LimitExceeded
from exchange.ledger.execution import Outcome
from exchange.ledger.models import (
    DEFAULT_POINTS_LIFETIME_DAYS,
    AccountKind,
    EntryKind,
    EntryResult,
    EntryView,
    LotOrigin,
)
from exchange.ledger.plans import EntryPlan, Leg, NewLot
from exchange.ledger.requests import EarnRequest, lot_expiry


@dataclass
class _EarnState:
    issued_id: int
    lifetime_days: int
    credit_limit: int | None
    #: Points the partner has outstanding, following the plans (partners with a limit).
    outstanding: int
    wallets: dict[int, int]  # member id -> wallet account id


@dataclass(frozen=True)
class Earn:
    partner_id: int
    kind: EntryKind = EntryKind.EARN
    keyed: bool = True

    async def read(
        self, conn: AsyncConnection, requests: Sequence[EarnRequest], now: datetime
    ) -> _EarnState:
        """The wallets locked in member order, with the issued account and its policy. A
        partner with a credit limit then serializes its issuance (an advisory lock) and
        its outstanding points are counted after the lock."""
        issued_kind = (self.partner_id, AccountKind.PARTNER_ISSUED)
        locked = await repository.lock_wallets(
            conn, member_ids=[r.member_id for r in requests], accounts=[issued_kind]
        )
        issued = locked.accounts.get((self.partner_id, str(AccountKind.PARTNER_ISSUED)))
        if issued is None:
            raise NotFound(
                f"partner {self.partner_id} is not known to the ledger", field=["partnerId"]
            )
        limit = issued.credit_limit_points
        outstanding = 0
        if limit is not None:
            await repository.lock_partner_issuance(conn, partner_id=self.partner_id)
            outstanding = await repository.outstanding_points(
                conn, issuer_partner_id=self.partner_id
            )
        return _EarnState(
            issued_id=issued.id,
            lifetime_days=int(issued.points_lifetime_days or DEFAULT_POINTS_LIFETIME_DAYS),
            credit_limit=int(limit) if limit is not None else None,
            outstanding=outstanding,
            wallets={member_id: w.wallet_id for member_id, w in locked.wallets.items()},
        )

    def plan(self, state: _EarnState, request: EarnRequest, now: datetime) -> list[EntryPlan]:
        wallet_id = state.wallets.get(request.member_id)
        if wallet_id is None:
            raise NotFound(f"member {request.member_id} does not exist", field=["memberId"])
        effective_at = request.effective_at or now
        expires_at = lot_expiry(
            effective_at=effective_at,
            expires_at=request.expires_at,
            lifetime_days=state.lifetime_days,
            now=now,
        )
        points = request.points
        if state.credit_limit is not None:
            if state.outstanding + points > state.credit_limit:
                raise LimitExceeded(
                    f"issuing {points} points would exceed the partner's credit limit of"
                    f" {state.credit_limit} outstanding points ({state.outstanding}"
                    " outstanding now)",
                    field=["points"],
                )
            state.outstanding += points
        return [
            EntryPlan(
                kind=EntryKind.EARN,
                points=points,
                created_at=now,
                effective_at=effective_at,
                partner_id=self.partner_id,
                member_id=request.member_id,
                reference=request.reference,
                metadata=request.metadata,
                legs=[Leg(wallet_id, points), Leg(state.issued_id, -points, sharded=True)],
                lots=[
                    NewLot(
                        request.member_id,
                        self.partner_id,
                        LotOrigin.EARN,
                        points,
                        effective_at,
                        expires_at,
                    )
                ],
                wallet_account_id=wallet_id,
            )
        ]


async def earn(
    conn: AsyncConnection,
    *,
    client_id: str,
    partner_id: int,
    request: EarnRequest,
    now: datetime,
) -> EntryResult:
    """Issue points to one member: the fast path when it applies, else the general one."""
    key = idempotency.key_of(
        request, kind=EntryKind.EARN, client_id=client_id, partner_id=partner_id
    )
    effective_at = request.effective_at or now
    written = await repository.earn_at_once(
        conn,
        key=key,
        partner_id=partner_id,
        member_id=request.member_id,
        points=request.points,
        reference=request.reference,
        metadata=json.dumps(dict(request.metadata or {}), sort_keys=True, default=str),
        now=now,
        effective_at=effective_at,
        expires_at=request.expires_at,
    )
    if written is not None:
        entry_id, balance = written
        entry = EntryView(
            id=entry_id,
            kind=EntryKind.EARN,
            points=request.points,
            partner_id=partner_id,
            member_id=request.member_id,
            counterparty_member_id=None,
            reference=request.reference,
            created_at=now,
            effective_at=effective_at,
            target_entry_id=None,
            hold_id=None,
        )
        return EntryResult(entry=entry, wallet_balance=balance)
    return execution.single(
        await earn_many(
            conn, client_id=client_id, partner_id=partner_id, requests=[request], now=now
        )
    )


async def earn_many(
    conn: AsyncConnection,
    *,
    client_id: str,
    partner_id: int,
    requests: Sequence[EarnRequest],
    now: datetime,
) -> list[Outcome | None]:
    """Issue points for many earns in one statement; one outcome per request."""
    return await execution.execute(
        conn, Earn(partner_id), requests, now=now, client_id=client_id, partner_id=partner_id
    )
