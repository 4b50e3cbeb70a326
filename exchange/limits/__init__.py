"""Limits that hold across every server process: leaky buckets kept in PostgreSQL and
leased in chunks, so a request costs no database write (docs/decisions/0010).

:class:`Limit` says what a kind of limit allows; :class:`SharedBuckets` is one process's
view of its buckets (``take`` spends, ``refused`` answers from what the process already
knows). The query cost of a client and its failed authentications use it.
"""

from exchange.limits.buckets import Decision, Limit, SharedBuckets

__all__ = ["Decision", "Limit", "SharedBuckets"]
