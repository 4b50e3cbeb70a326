"""The double-entry points ledger: accounts, entries, postings, lots, holds, balances and
invariants (DESIGN.md section 4).

Use cases, each taking the unit of work's connection and keyword-only arguments:
:func:`earn`, :func:`earn_batch`, :func:`redeem`, :func:`hold`, :func:`capture`, :func:`release`,
:func:`reverse`, :func:`transfer`, :func:`adjust`, :func:`expire_batch`,
:func:`release_holds_batch`; reads :func:`wallet`, :func:`expiring`, :func:`get_hold`;
and :func:`verify` for the invariants.
"""

from exchange.ledger.batches import MAX_BATCH, EarnItem, earn_batch
from exchange.ledger.expiry import expire_batch, release_holds_batch
from exchange.ledger.holds import capture, get_hold, hold, release
from exchange.ledger.invariants import VerifyReport, verify
from exchange.ledger.models import EntryResult, PartnerPolicy, Wallet
from exchange.ledger.queries import (
    EntryView,
    entries,
    entries_by_ids,
    expiring,
    unwatch_wallet,
    wallet,
    watch_wallet,
)
from exchange.ledger.reversals import reverse
from exchange.ledger.service import earn, open_member, open_partner, redeem, set_partner_policy
from exchange.ledger.transfers import adjust, transfer

__all__ = [
    "MAX_BATCH",
    "EarnItem",
    "EntryResult",
    "EntryView",
    "PartnerPolicy",
    "VerifyReport",
    "Wallet",
    "adjust",
    "capture",
    "earn",
    "earn_batch",
    "entries",
    "entries_by_ids",
    "expire_batch",
    "expiring",
    "get_hold",
    "hold",
    "open_member",
    "open_partner",
    "redeem",
    "release",
    "release_holds_batch",
    "reverse",
    "set_partner_policy",
    "transfer",
    "unwatch_wallet",
    "verify",
    "wallet",
    "watch_wallet",
]
