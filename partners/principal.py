"""The caller of an operation, built in-process from a verified access token."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from exchange.kit.db import RowScope
from exchange.kit.errors import Forbidden


class PrincipalKind(enum.StrEnum):
    PARTNER = "PARTNER"
    OPERATOR = "OPERATOR"
    MEMBER = "MEMBER"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    client_id: str
    scopes: frozenset[str]
    token_id: str
    expires_at: datetime
    partner_id: int | None = None
    member_id: int | None = None
    #: For a member token obtained by token exchange: the partner client that acted.
    actor_client_id: str | None = None

    def row_scope(self) -> RowScope:
        """What row-level security should let this caller see."""
        return RowScope(
            kind=str(self.kind),
            partner_id=self.partner_id,
            member_id=self.member_id,
            client_id=self.client_id,
        )

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this call needs the {scope} scope")

    def require_partner(self) -> int:
        if self.kind != PrincipalKind.PARTNER or self.partner_id is None:
            raise Forbidden("this call needs a partner's token")
        return self.partner_id

    def require_member(self) -> int:
        if self.kind != PrincipalKind.MEMBER or self.member_id is None:
            raise Forbidden("this call needs a member's token")
        return self.member_id
