"""Member insights as the API offers them: a member's profile and segments, segments and
their sizes, custom segments, consent to cross-partner use, KPIs, targeted campaigns'
offers and reports.

Who reads what: a partner reads profiles, segments and offers only of members it linked,
built from its own purchases (decision 0018); an operator the coalition's. Row-level
security enforces the same again underneath.
"""

from __future__ import annotations

from exchange.insights import profiles
from exchange.insights.models import Profile
from exchange.usecases.core import Call, use_case
from exchange.usecases.members import may_read_member
from partners.principal import PrincipalKind


def _partner_or_operator(call: Call) -> int | None:
    """The calling partner; None for the operator (who reads the coalition's)."""
    return call.partner_id if call.principal.kind == PrincipalKind.PARTNER else None


@use_case(partner="insights:read", operator="insights:read")
async def member_profile(call: Call, member_id: int) -> Profile:
    """A member's profile and built-in segments: a partner's own linked member only."""
    await may_read_member(call, member_id)
    return await profiles.profile(
        call.conn, member_id=member_id, partner_id=_partner_or_operator(call), now=call.now
    )
