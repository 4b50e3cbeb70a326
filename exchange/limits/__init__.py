"""Limits that hold across every server process: leaky buckets kept in PostgreSQL and
leased in chunks, so a request costs no database write (docs/decisions/0010).

:class:`Limit` says what a kind of limit allows; :class:`SharedBuckets` is one process's
view of its buckets (``take`` spends, ``refused`` answers from what the process already
knows). The query cost of a client and its failed authentications use it. :func:`spend`
and :func:`room` reach a bucket within the caller's own unit of work instead: a member's
failed recipient look-ups use them.
"""

from exchange.limits.buckets import Decision, Limit, SharedBuckets, forget_drained, room, spend

__all__ = ["Decision", "Limit", "SharedBuckets", "forget_drained", "room", "spend"]
