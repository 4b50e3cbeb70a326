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

from exchange.kit.db import Connection
from exchange.ledger import execution, idempotency, repository
from exchange.ledger.errors import LimitExceeded, unknown_member, unknown_partner
from exchange.ledger.execution import Outcome
from exchange.ledger.models import (
    DEFAULT_POINTS_LIFETIME_DAYS,
    AccountKind,
    EntryKind,
    EntryResult,
    EntryView,
    LotOrigin,
    issued_account,
)
from exchange.ledger.plans import EntryPlan, Leg, NewLot, check_maximum
from exchange.ledger.repository import AccountRow
from exchange.ledger.requests import EarnRequest, lot_expiry


@dataclass
class _Issuance:
    """One issuer's account and policy, as the plans of one call use them."""

    account_id: int
    lifetime_days: int
    maximum: int | None
    credit_limit: int | None
    #: Points the issuer has outstanding, following the plans (issuers with a limit).
    outstanding: int


@dataclass
class _EarnState:
    issuers: dict[int | None, _Issuance]
    wallets: dict[int, int]  # member id -> wallet account id


@dataclass(frozen=True)
class Earn:
    """Earns made by a partner (``partner_id`` None: by the coalition itself). Each lot is
    issued by the request's issuer: the partner, or a funder, or the coalition."""

    partner_id: int | None
    kind: EntryKind = EntryKind.EARN
    keyed: bool = True

    async def read(
        self, conn: Connection, requests: Sequence[EarnRequest], now: datetime
    ) -> _EarnState:
        """The wallets locked in member order, with each issuer's account and policy. An
        issuer with a credit limit then serializes its issuance (an advisory lock, in
        issuer order) and its outstanding points are counted after the lock."""
        issuers = sorted(
            {r.issuer_partner_id(self.partner_id) for r in requests}, key=lambda i: i or 0
        )
        locked = await repository.lock_wallets(
            conn,
            member_ids=[r.member_id for r in requests],
            accounts=[issued_account(issuer) for issuer in issuers],
        )
        state = _EarnState(issuers={}, wallets={m: w.wallet_id for m, w in locked.wallets.items()})
        for issuer in issuers:
            account = locked.accounts.get(_key(issued_account(issuer)))
            if account is None:
                raise unknown_partner(issuer)
            state.issuers[issuer] = await _issuance(conn, issuer, account)
        return state

    def plan(self, state: _EarnState, request: EarnRequest, now: datetime) -> list[EntryPlan]:
        wallet_id = state.wallets.get(request.member_id)
        if wallet_id is None:
            raise unknown_member(request.member_id)
        issuer = request.issuer_partner_id(self.partner_id)
        issuance = state.issuers[issuer]
        effective_at = request.effective_at or now
        expires_at = lot_expiry(
            effective_at=effective_at,
            expires_at=request.expires_at,
            lifetime_days=issuance.lifetime_days,
            now=now,
        )
        points = request.points
        check_maximum(points, issuance.maximum)
        _check_credit(issuance, points)
        lot = NewLot(request.member_id, issuer, LotOrigin.EARN, points, effective_at, expires_at)
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
                legs=[Leg(wallet_id, points), Leg(issuance.account_id, -points, sharded=True)],
                lots=[lot],
                wallet_account_id=wallet_id,
            )
        ]


def _key(account: tuple[int | None, AccountKind]) -> tuple[int | None, str]:
    return account[0], str(account[1])


async def _issuance(conn: Connection, issuer: int | None, account: AccountRow) -> _Issuance:
    limit = account.credit_limit_points
    outstanding = 0
    if limit is not None and issuer is not None:
        await repository.lock_partner_issuance(conn, partner_id=issuer)
        outstanding = await repository.outstanding_points(conn, issuer_partner_id=issuer)
    return _Issuance(
        account_id=account.id,
        lifetime_days=int(account.points_lifetime_days or DEFAULT_POINTS_LIFETIME_DAYS),
        maximum=account.max_points_per_operation,
        credit_limit=int(limit) if limit is not None else None,
        outstanding=outstanding,
    )


def _check_credit(issuance: _Issuance, points: int) -> None:
    limit = issuance.credit_limit
    if limit is None:
        return
    if issuance.outstanding + points > limit:
        raise LimitExceeded(
            f"issuing {points} points would exceed the partner's credit limit of {limit}"
            f" outstanding points ({issuance.outstanding} outstanding now)",
            field=["points"],
        )
    issuance.outstanding += points


async def earn(
    conn: Connection,
    *,
    client_id: str,
    partner_id: int,
    request: EarnRequest,
    now: datetime,
) -> EntryResult:
    """Issue points to one member: the fast path when it applies, else the general one."""
    if request.issuer is not None:  # a lot of another issuer: the general path decides
        return execution.single(
            await earn_many(
                conn, client_id=client_id, partner_id=partner_id, requests=[request], now=now
            )
        )
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
    conn: Connection,
    *,
    client_id: str,
    partner_id: int | None,
    requests: Sequence[EarnRequest],
    now: datetime,
) -> list[Outcome | None]:
    """Issue points for many earns in one statement; one outcome per request."""
    return await execution.execute(
        conn, Earn(partner_id), requests, now=now, client_id=client_id, partner_id=partner_id
    )
