"""The partner registry as callers see it, and the operator's view of ledger accounts."""

from __future__ import annotations

from dataclasses import dataclass

from exchange.kit.errors import NotFound
from exchange.ledger.models import AccountKind
from exchange.ledger.queries import AccountView, accounts
from exchange.usecases.core import Call, use_case
from partners import registry
from partners.models import PartnerListing
from partners.principal import PrincipalKind


@dataclass(frozen=True)
class PartnerPage:
    first: int
    after_id: int = 0


@dataclass(frozen=True)
class AccountPage:
    first: int
    after_id: int = 0
    kind: AccountKind | None = None


def _shown(call: Call, partner: PartnerListing) -> PartnerListing:
    """Names are public in the coalition; a contract only to its partner and to
    operators who administer partners (row-level security hides the rest anyway)."""
    principal = call.principal
    own = principal.kind == PrincipalKind.PARTNER and principal.partner_id == partner.id
    if own or principal.has("partners:admin"):
        return partner
    return PartnerListing(partner.id, partner.name, partner.status, contract=None)


@use_case(partner="", operator="", member="")
async def partners_by_ids(call: Call, partner_ids: list[int]) -> dict[int, PartnerListing]:
    """Partners by id, each as the caller may see it."""
    found = await registry.listing(call.conn, now=call.now, partner_ids=partner_ids)
    return {partner.id: _shown(call, partner) for partner in found}


@use_case(partner="", operator="", member="")
async def partners(call: Call, page: PartnerPage) -> list[PartnerListing]:
    """Every partner of the coalition, in id order."""
    found = await registry.listing(
        call.conn, now=call.now, after_id=page.after_id, limit=page.first
    )
    return [_shown(call, partner) for partner in found]


@use_case(partner="")
async def own_partner(call: Call, _: None) -> PartnerListing:
    """The calling partner, with its contract."""
    found = await registry.listing(call.conn, now=call.now, partner_ids=[call.partner_id])
    if not found:
        raise NotFound("the calling partner does not exist", field=["partner"])
    return found[0]


@use_case(operator="ledger:read:all")
async def ledger_accounts(call: Call, page: AccountPage) -> list[AccountView]:
    """Every ledger account with its balance: the operator's view."""
    return await accounts(call.conn, after_id=page.after_id, limit=page.first, kind=page.kind)
