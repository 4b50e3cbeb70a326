"""The double-entry points ledger: accounts, entries, postings, lots, holds, balances and
invariants (DESIGN.md section 4).

Every operation takes the unit of work's connection, the caller's client and partner,
one request (a type per operation, validated when made: :mod:`exchange.ledger.requests`)
and the time, and runs through one mechanism (:mod:`exchange.ledger.execution`): read
under lock, plan, write with the one writer, settle idempotency keys. Earn, redeem and
hold also take many requests at once (``earn_many``, ``redeem_many``, ``hold_many``).
Reads: :func:`wallet`, :func:`expiring`, :func:`entries`, :func:`get_hold`; :func:`verify`
checks the invariants.
"""

from exchange.kit.limits import MAX_BATCH
from exchange.ledger.accounts import open_member, open_members, open_partner, set_partner_policy
from exchange.ledger.earning import earn, earn_many
from exchange.ledger.execution import Outcome
from exchange.ledger.expiry import expire_batch, release_holds_batch
from exchange.ledger.holds import capture, get_hold, hold, hold_many, release
from exchange.ledger.invariants import VerifyReport, verify
from exchange.ledger.models import EntryResult, EntryView, PartnerPolicy, Wallet
from exchange.ledger.queries import (
    entries,
    entries_by_ids,
    entries_by_keys,
    expiring,
    unwatch_wallet,
    wallet,
    watch_wallet,
)
from exchange.ledger.requests import (
    AdjustRequest,
    CaptureRequest,
    EarnRequest,
    HoldRequest,
    Issuer,
    RedeemRequest,
    ReverseRequest,
    TransferRequest,
)
from exchange.ledger.reversals import reverse, reverse_many
from exchange.ledger.spending import redeem, redeem_many, require_spendable
from exchange.ledger.transfers import adjust, transfer

__all__ = [
    "MAX_BATCH",
    "AdjustRequest",
    "CaptureRequest",
    "EarnRequest",
    "EntryResult",
    "EntryView",
    "HoldRequest",
    "Issuer",
    "Outcome",
    "PartnerPolicy",
    "RedeemRequest",
    "ReverseRequest",
    "TransferRequest",
    "VerifyReport",
    "Wallet",
    "adjust",
    "capture",
    "earn",
    "earn_many",
    "entries",
    "entries_by_ids",
    "entries_by_keys",
    "expire_batch",
    "expiring",
    "get_hold",
    "hold",
    "hold_many",
    "open_member",
    "open_members",
    "open_partner",
    "redeem",
    "redeem_many",
    "release",
    "release_holds_batch",
    "require_spendable",
    "reverse",
    "reverse_many",
    "set_partner_policy",
    "transfer",
    "unwatch_wallet",
    "verify",
    "wallet",
    "watch_wallet",
]
