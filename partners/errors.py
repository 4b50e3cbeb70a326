"""The partners package's domain errors, under :class:`PartnersError`.

Tree::

    DomainError (exchange.kit.errors)
    └── PartnersError
        ├── PartnerExists         INVALID_INPUT: a partner with that name exists
        ├── MemberNotLinked       MEMBER_NOT_LINKED: the partner has no such member ref
        ├── ContactMismatch       CONTACT_MISMATCH: the member has a different e-mail or
        │                         phone than the one given
        └── ContactInUse          CONTACT_IN_USE: another member has that e-mail or phone
"""

from __future__ import annotations

from exchange.kit.errors import DomainError, ErrorCode


class PartnersError(DomainError):
    """Root of the partners package's business failures."""


class PartnerExists(PartnersError):
    code = ErrorCode.INVALID_INPUT


class MemberNotLinked(PartnersError):
    code = ErrorCode.MEMBER_NOT_LINKED


class ContactMismatch(PartnersError):
    code = ErrorCode.CONTACT_MISMATCH


class ContactInUse(PartnersError):
    code = ErrorCode.CONTACT_IN_USE
