"""The audit log of operator actions (DESIGN.md section 10): who did what to which
subject, when and from where, written in the same transaction as the change it
records, append-only, readable by operators only.

- :mod:`~exchange.audit.models`: the actions, the actor, an entry;
- :mod:`~exchange.audit.log`: :func:`record` and :func:`entries`;
- :mod:`~exchange.audit.repository`: its SQL; :mod:`~exchange.audit.tables`: its table.

The edges record: the ``exchange`` command for what an operator runs there, the use
cases for what an operator does through the API. Details never hold a secret or a
member's personal data (:func:`record` refuses names that suggest one).
"""

from exchange.audit.log import entries, record
from exchange.audit.models import Action, Actor, AuditEntry

__all__ = ["Action", "Actor", "AuditEntry", "entries", "record"]
