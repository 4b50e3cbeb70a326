"""What callers ask of the loyalty engine: a purchase (recorded or previewed) and a refund.
A request validates itself when it is made, against the limits written here, and says
what identifies it for idempotency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from exchange.kit.clock import require_aware
from exchange.kit.errors import InvalidInput
from exchange.kit.limits import (
    MAX_ITEM_QUANTITY,
    MAX_LABEL_LENGTH,
    MAX_PURCHASE_AMOUNT,
    MAX_PURCHASE_ITEMS,
    unsafe,
)
from exchange.ledger.requests import checked_key, checked_reference
from exchange.loyalty.models import Channel, Item


def money(value: object, field: list[str], *, positive: bool = True) -> Decimal:
    """An amount of money as given: an exact decimal, at most MAX_PURCHASE_AMOUNT, never a float."""
    if isinstance(value, float | bool):
        raise InvalidInput(f"{field[-1]} must be a decimal string, not a float", field=field)
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{field[-1]} must be a decimal number", field=field) from None
    if not amount.is_finite() or amount < 0 or (positive and amount == 0):
        raise InvalidInput(
            f"{field[-1]} must be {'greater than' if positive else 'at least'} zero", field=field
        )
    if amount > MAX_PURCHASE_AMOUNT:
        raise InvalidInput(f"{field[-1]} must be at most {MAX_PURCHASE_AMOUNT}", field=field)
    return amount


def check_minor_digits(amount: Decimal, digits: int, field: list[str]) -> Decimal:
    """Refuse more decimals than the currency has (USD 12.50; JPY 1250)."""
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        raise InvalidInput(
            f"{field[-1]} has more decimals than the currency's {digits}", field=field
        )
    return amount


def label(value: str | None, field: list[str], *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidInput(f"{field[-1]} is required", field=field)
        return None
    if not value.strip() or len(value) > MAX_LABEL_LENGTH:
        raise InvalidInput(f"{field[-1]} must be 1 to {MAX_LABEL_LENGTH} characters", field=field)
    if unsafe(value):
        raise InvalidInput(
            f"{field[-1]} must not contain NUL characters or unpaired surrogates", field=field
        )
    return value


def _items(items: tuple[Item, ...]) -> tuple[Item, ...]:
    if len(items) > MAX_PURCHASE_ITEMS:
        raise InvalidInput(f"a purchase has at most {MAX_PURCHASE_ITEMS} items", field=["items"])
    checked = []
    for index, item in enumerate(items):
        at = ["items", str(index)]
        quantity = item.quantity
        if isinstance(quantity, bool) or not 1 <= quantity <= MAX_ITEM_QUANTITY:
            raise InvalidInput(
                f"quantity must be 1 to {MAX_ITEM_QUANTITY}", field=[*at, "quantity"]
            )
        checked.append(
            Item(
                category=str(label(item.category, [*at, "category"], required=True)),
                amount=money(item.amount, [*at, "amount"], positive=False),
                quantity=quantity,
                sku=label(item.sku, [*at, "sku"]),
            )
        )
    return tuple(checked)


@dataclass(frozen=True)
class PurchaseRequest:
    """A purchase as a partner reports it; ``idempotency_key`` None: a preview."""

    member_id: int
    amount: Decimal
    currency: str
    occurred_at: datetime | None = None
    channel: Channel | None = None
    store_ref: str | None = None
    items: tuple[Item, ...] = ()
    reference: str | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "amount", money(self.amount, ["amount"]))
        if not isinstance(self.currency, str) or len(self.currency) != 3:
            raise InvalidInput("currency must be an ISO 4217 code like USD", field=["currency"])
        if self.occurred_at is not None:
            set_(self, "occurred_at", require_aware(self.occurred_at, "occurredAt"))
        set_(self, "items", _items(tuple(self.items)))
        if sum((i.amount for i in self.items), Decimal(0)) > self.amount:
            raise InvalidInput("the items add up to more than the purchase", field=["items"])
        label(self.store_ref, ["storeRef"])
        checked_reference(self.reference)
        if self.idempotency_key is not None:
            checked_key(self.idempotency_key)

    def fingerprint(self, partner_id: int) -> dict[str, Any]:
        return {
            "partner": partner_id,
            "member": self.member_id,
            "amount": str(self.amount.normalize()),
            "currency": self.currency,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "channel": str(self.channel) if self.channel else None,
            "store": self.store_ref,
            "items": [
                [i.sku, i.category, str(i.amount.normalize()), i.quantity] for i in self.items
            ],
            "reference": self.reference,
        }


@dataclass(frozen=True)
class RefundRequest:
    """Take back a purchase's points for ``amount`` of it (None: all that is left)."""

    idempotency_key: str
    purchase_id: int
    amount: Decimal | None = None

    def __post_init__(self) -> None:
        checked_key(self.idempotency_key)
        if self.amount is not None:
            object.__setattr__(self, "amount", money(self.amount, ["amount"]))

    def fingerprint(self, partner_id: int) -> dict[str, Any]:
        return {
            "partner": partner_id,
            "purchase": self.purchase_id,
            "amount": str(self.amount.normalize()) if self.amount is not None else None,
        }
