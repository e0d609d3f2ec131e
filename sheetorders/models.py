"""Typed results of the panel API. Money is Decimal, IDs are strings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

FINAL_ORDER_STATUSES = frozenset({"completed", "partial", "canceled", "cancelled", "refunded", "error"})
FINAL_REFILL_STATUSES = frozenset({"completed", "rejected", "canceled", "cancelled", "error"})


def is_final_order_status(status: str | None) -> bool:
    return status is not None and status.strip().lower() in FINAL_ORDER_STATUSES


def is_final_refill_status(status: str | None) -> bool:
    return status is not None and status.strip().lower() in FINAL_REFILL_STATUSES


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    type: str
    category: str
    rate: Decimal  # price per 1000 units; the flat price for package types
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool | None  # None: the panel does not say


@dataclass(frozen=True)
class RefusedService:
    """A catalog entry left out because it cannot be trusted; `reason` says why."""

    id: str  # "" when the entry has no usable service ID
    name: str
    reason: str


@dataclass(frozen=True)
class Catalog:
    """A panel's services: the usable ones, and the entries left out with the reason."""

    services: list[Service]
    refused: list[RefusedService]


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    currency: str


@dataclass(frozen=True)
class OrderStatus:
    order_id: str
    status: str
    charge: Decimal | None
    start_count: int | None
    remains: int | None
    currency: str | None

    @property
    def is_final(self) -> bool:
        return is_final_order_status(self.status)


@dataclass(frozen=True)
class ItemError:
    """One ID of a batch call that the panel answered with an error instead of a result."""

    id: str
    message: str


@dataclass(frozen=True)
class RefillStatus:
    refill_id: str
    status: str

    @property
    def is_final(self) -> bool:
        return is_final_refill_status(self.status)


def money(value: Decimal) -> str:
    """A sum as people write it: no exponent, no trailing zeros beyond the cents."""
    text = format(value.normalize(), "f")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"
