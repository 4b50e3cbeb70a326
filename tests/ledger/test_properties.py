"""Property: whatever sequence of operations is applied — including ones that must fail
and replays — every ledger invariant holds after every step, failures move nothing, and
each wallet matches a simple model of what each operation should do to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exchange import ledger
from exchange.kit.db import Database
from exchange.kit.errors import DomainError, ErrorCode
from exchange.kit.system import SYSTEM
from exchange.ledger import repository
from exchange.ledger.models import EntryResult, PartnerPolicy
from tests.conftest import NOW, Factory
from tests.ledger.helpers import call_ledger

MEMBERS = 3
points = st.integers(min_value=-5, max_value=400)  # zero and negatives must be refused
member = st.integers(min_value=0, max_value=MEMBERS - 1)
partner = st.integers(min_value=0, max_value=1)  # partner 1 may reverse into a debt
pick = st.integers(min_value=0, max_value=50)
maybe_points = st.one_of(st.none(), st.integers(min_value=1, max_value=300))

steps = st.one_of(
    st.tuples(st.just("earn"), partner, member, points, st.sampled_from([2, 30, 400])),
    st.tuples(st.just("redeem"), partner, member, points),
    st.tuples(st.just("hold"), partner, member, points),
    st.tuples(st.just("capture"), pick, maybe_points),
    st.tuples(st.just("release"), pick),
    st.tuples(st.just("reverse"), pick, maybe_points),
    st.tuples(st.just("transfer"), member, member, points),
    st.tuples(st.just("advance"), st.integers(min_value=1, max_value=40)),
    st.tuples(st.just("replay"), pick),
)


@dataclass
class Model:
    available: list[int] = field(default_factory=lambda: [0] * MEMBERS)
    held: list[int] = field(default_factory=lambda: [0] * MEMBERS)
    holds: list[tuple[int, int, int]] = field(default_factory=list)  # (hold id, member, points)
    reversible: list[tuple[int, int, str, int]] = field(
        default_factory=list
    )  # entry, member, kind, left
    requests: list[tuple[str, dict[str, Any], EntryResult]] = field(default_factory=list)


class Run:
    def __init__(self, make: Factory, partners: list[int], members: list[int]) -> None:
        self.make, self.partners, self.members = make, partners, members
        self.model = Model()
        self.now = NOW

    async def call(self, name: str, **kw: Any) -> EntryResult | DomainError:
        try:
            async with self.make.db.transaction(SYSTEM) as conn:
                result: EntryResult = await call_ledger(conn, name, now=self.now, **kw)
        except DomainError as error:
            return error
        return result

    def keyed(self, **kw: Any) -> dict[str, Any]:
        return {"client_id": self.make.client_id, "idempotency_key": self.make.key(), **kw}

    async def step(self, step: tuple[Any, ...]) -> None:
        before = (list(self.model.available), list(self.model.held))
        handler = getattr(self, f"do_{step[0]}")
        outcome = await handler(*step[1:])
        if isinstance(outcome, DomainError):
            assert (self.model.available, self.model.held) == before, "a failure moved points"
        await self.check(step)

    async def check(self, step: tuple[Any, ...]) -> None:
        for index, member_id in enumerate(self.members):
            wallet = await self.make.wallet(member_id)
            assert (wallet.available, wallet.held) == (
                self.model.available[index],
                self.model.held[index],
            ), f"member {index} differs from the model after {step}"
        async with self.make.db.transaction(SYSTEM) as conn:
            report = await ledger.verify(conn)
        assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]

    async def do_earn(self, p: int, m: int, n: int, days: int) -> Any:
        kw = self.keyed(
            partner_id=self.partners[p],
            member_id=self.members[m],
            points=n,
            expires_at=self.now + timedelta(days=days),
        )
        result = await self.call("earn", **kw)
        if n <= 0:
            assert isinstance(result, DomainError)
            assert result.code == ErrorCode.INVALID_INPUT
            return result
        assert isinstance(result, EntryResult)
        self.model.available[m] += n
        self.model.reversible.append((result.entry_id, m, "EARN", n))
        self.model.requests.append(("earn", kw, result))
        return result

    async def do_redeem(self, p: int, m: int, n: int) -> Any:
        kw = self.keyed(partner_id=self.partners[p], member_id=self.members[m], points=n)
        result = await self.call("redeem", **kw)
        if n <= 0 or n > self.model.available[m]:
            assert isinstance(result, DomainError)
            assert result.code == (
                ErrorCode.INVALID_INPUT if n <= 0 else ErrorCode.INSUFFICIENT_POINTS
            )
            return result
        assert isinstance(result, EntryResult), result
        self.model.available[m] -= n
        self.model.reversible.append((result.entry_id, m, "REDEEM", n))
        self.model.requests.append(("redeem", kw, result))
        return result

    async def do_hold(self, p: int, m: int, n: int) -> Any:
        kw = self.keyed(
            partner_id=self.partners[p],
            member_id=self.members[m],
            points=n,
            ttl_seconds=7 * 24 * 3600,
        )
        result = await self.call("hold", **kw)
        if n <= 0 or n > self.model.available[m]:
            assert isinstance(result, DomainError)
            return result
        assert isinstance(result, EntryResult), result
        assert result.hold_id is not None
        self.model.available[m] -= n
        self.model.held[m] += n
        self.model.holds.append((result.hold_id, m, n))
        self.model.requests.append(("hold", kw, result))
        return result

    async def _hold_partner(self, hold_id: int) -> int:
        async with self.make.db.transaction(SYSTEM) as conn:
            found = await ledger.get_hold(conn, hold_id=hold_id)
        assert found is not None
        return found.partner_id

    async def do_capture(self, index: int, n: int | None) -> Any:
        if not self.model.holds:
            return None
        hold_id, m, reserved = self.model.holds[index % len(self.model.holds)]
        partner_id = await self._hold_partner(hold_id)
        kw = self.keyed(partner_id=partner_id, hold_id=hold_id, points=n)
        result = await self.call("capture", **kw)
        if n is not None and n > reserved:
            assert isinstance(result, DomainError)
            assert result.code == ErrorCode.INVALID_INPUT
            return result
        assert isinstance(result, EntryResult), result
        captured = n if n is not None else reserved
        self.model.held[m] -= reserved
        self.model.available[m] += reserved - captured
        self.model.holds.remove((hold_id, m, reserved))
        self.model.reversible.append((result.entry_id, m, "CAPTURE", captured))
        return result

    async def do_release(self, index: int) -> Any:
        if not self.model.holds:
            return None
        hold_id, m, reserved = self.model.holds[index % len(self.model.holds)]
        result = await self.call(
            "release", partner_id=await self._hold_partner(hold_id), hold_id=hold_id
        )
        assert isinstance(result, EntryResult), result
        self.model.held[m] -= reserved
        self.model.available[m] += reserved
        self.model.holds.remove((hold_id, m, reserved))
        return result

    async def do_reverse(self, index: int, n: int | None) -> Any:
        if not self.model.reversible:
            return None
        position = index % len(self.model.reversible)
        entry_id, m, kind, left = self.model.reversible[position]
        async with self.make.db.transaction(SYSTEM) as conn:
            target = await repository.entry_by_id(conn, entry_id=entry_id)
            lot = await repository.earn_lot(conn, entry_id=entry_id)
        assert target is not None
        result = await self.call(
            "reverse", **self.keyed(partner_id=target.partner_id, entry_id=entry_id, points=n)
        )
        amount = n if n is not None else left
        if left == 0:
            assert isinstance(result, DomainError)
            assert result.code == ErrorCode.ALREADY_REVERSED
            return result
        if amount > left:
            assert isinstance(result, DomainError)
            assert result.code == ErrorCode.INVALID_INPUT
            return result
        if kind == "EARN":
            negative_allowed = target.partner_id == self.partners[1]
            assert lot is not None
            short = amount > lot.remaining or amount > self.model.available[m]
            if short and not negative_allowed:
                assert isinstance(result, DomainError)
                assert result.code == ErrorCode.INSUFFICIENT_POINTS
                return result
        assert isinstance(result, EntryResult), result
        self.model.available[m] += -amount if kind == "EARN" else amount
        self.model.reversible[position] = (entry_id, m, kind, left - amount)
        return result

    async def do_transfer(self, a: int, b: int, n: int) -> Any:
        kw = self.keyed(from_member_id=self.members[a], to_member_id=self.members[b], points=n)
        result = await self.call("transfer", **kw)
        if n <= 0 or a == b or n > self.model.available[a]:
            assert isinstance(result, DomainError)
            return result
        assert isinstance(result, EntryResult), result
        self.model.available[a] -= n
        self.model.available[b] += n
        return result

    async def do_advance(self, days: int) -> Any:
        self.now += timedelta(days=days)
        # Holds past their expiry are released by the sweep (TTL: 7 days).
        async with self.make.db.transaction(SYSTEM) as conn:
            await ledger.release_holds_batch(conn, as_of=self.now)
        for hold in list(self.model.holds):
            hold_id, m, reserved = hold
            async with self.make.db.transaction(SYSTEM) as conn:
                found = await ledger.get_hold(conn, hold_id=hold_id)
            assert found is not None
            if found.expires_at <= self.now:
                assert found.status == "EXPIRED"
                self.model.holds.remove(hold)
                self.model.held[m] -= reserved
                self.model.available[m] += reserved
        expiring = []
        for member_id in self.members:
            async with self.make.db.transaction(SYSTEM) as conn:
                lots = await repository.lots_of_member(conn, member_id=member_id)
            expiring.append(
                sum(
                    int(lot.remaining)
                    for lot in lots
                    if lot.remaining > 0 and lot.expires_at <= self.now
                )
            )
        while True:
            async with self.make.db.transaction(SYSTEM) as conn:
                batch = await ledger.expire_batch(conn, as_of=self.now)
            if batch.members == 0:
                break
        for index, points_expired in enumerate(expiring):
            self.model.available[index] -= points_expired

    async def do_replay(self, index: int) -> Any:
        if not self.model.requests:
            return None
        name, kw, original = self.model.requests[index % len(self.model.requests)]
        async with self.make.db.transaction(SYSTEM) as conn:
            replayed = await call_ledger(conn, name, now=self.now, **dict(kw))
        assert (replayed.entry_id, replayed.replayed) == (original.entry_id, True)


@example(
    sequence=[
        ("earn", 0, 0, 95, 2),
        ("hold", 0, 0, 75),
        ("advance", 7),
        ("capture", 0, None),
    ]
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(steps, min_size=8, max_size=30))
async def test_any_sequence_of_operations_keeps_every_invariant(
    db: Database, sequence: list[tuple[Any, ...]]
) -> None:
    make = Factory(db)
    partners = [
        await make.partner(),
        await make.partner(PartnerPolicy(allow_negative_reversal=True)),
    ]
    members = [await make.member() for _ in range(MEMBERS)]
    run = Run(make, partners, members)
    for step in sequence:
        await run.step(step)
