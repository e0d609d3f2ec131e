"""What was ordered, and what it cost: the journal's orders as rows for a person, and sums."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from sheetorders.errors import UsageError
from sheetorders.ledger import HistoryEntry
from sheetorders.models import is_final_order_status, money

COLUMNS = (
    "placed_at",
    "sheet",
    "panel",
    "service",
    "service_name",
    "link",
    "quantity",
    "order_id",
    "status",
    "estimate",
    "charge",
    "currency",
    "cost",
    "cost_is_estimate",
)
GROUPS = ("day", "week", "month", "panel", "sheet", "service", "status")
NO_STATUS = "(no status yet)"  # an order the panel has not reported on


def parse_when(text: str, now: datetime) -> datetime:
    """`7d`, `12h`, `2w` (that long before now) or a date `2026-11-01` (its midnight, UTC)."""
    found = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text.lower())
    if found:
        amount, unit = int(found.group(1)), found.group(2)
        return now - timedelta(hours=amount * {"h": 1, "d": 24, "w": 168}[unit])
    try:
        return datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), timezone.utc)
    except ValueError:
        raise UsageError(f"{text!r} is not a time: give e.g. 7d, 12h, 2w or a date like 2026-11-01") from None


def sheet_name(key: str) -> str:
    """A journal's sheet key as a person knows the sheet: its name, or its file and tab."""
    if key.startswith("sheet:"):
        return key[len("sheet:") :]
    if key.startswith("file:"):
        path, _, tab = key[len("file:") :].rpartition("#")
        return f"{path} [{tab}]" if tab else path
    return key


@dataclass(frozen=True)
class Order:
    """One order of the history."""

    entry: HistoryEntry

    @property
    def cost(self) -> Decimal:
        return _decimal(self.entry.charge) if self.entry.charge else _decimal(self.entry.estimate)

    @property
    def cost_is_estimate(self) -> bool:
        """The panel has not reported the charge yet, or the order may still change it."""
        return not self.entry.charge or not is_final_order_status(self.entry.status)

    def as_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "placed_at": e.placed_at,
            "sheet": sheet_name(e.sheet),
            "panel": e.panel,
            "service": e.service,
            "service_name": e.service_name,
            "link": e.link,
            "quantity": e.quantity,
            "order_id": e.order_id,
            "status": e.status,
            "estimate": money(_decimal(e.estimate)) if e.estimate else "",
            "charge": money(_decimal(e.charge)) if e.charge else "",
            "currency": e.currency,
            "cost": money(self.cost),
            "cost_is_estimate": self.cost_is_estimate,
        }


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return Decimal(0)


def select(
    entries: Iterable[HistoryEntry],
    *,
    sheet: str | None = None,
    panel: str | None = None,
    status: str | None = None,
) -> list[Order]:
    orders = [Order(entry) for entry in entries]
    if sheet:
        orders = [o for o in orders if sheet in (sheet_name(o.entry.sheet), o.entry.sheet)]
    if panel:
        orders = [o for o in orders if o.entry.panel == panel]
    if status:
        orders = [o for o in orders if o.entry.status.lower() == status.lower()]
    return orders


def as_csv(orders: Sequence[Order]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for order in orders:
        writer.writerow(order.as_dict())
    return out.getvalue()


def _group(order: Order, by: str) -> str:
    placed = datetime.strptime(order.entry.placed_at, "%Y-%m-%dT%H:%M:%SZ")
    if by == "day":
        return placed.date().isoformat()
    if by == "week":
        year, week, _ = placed.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return placed.strftime("%Y-%m")
    if by == "sheet":
        return sheet_name(order.entry.sheet)
    if by == "service":
        return f"{order.entry.service} {order.entry.service_name}".strip()
    if by == "status":
        return order.entry.status or NO_STATUS
    return order.entry.panel


def summary(orders: Sequence[Order], by: str = "day") -> list[dict[str, Any]]:
    """Spend per day (or week, month, panel, sheet, service, status), with a total line last."""
    if by not in GROUPS:
        raise UsageError(f"--by {by!r}: give one of {', '.join(GROUPS)}")
    groups: dict[str, list[Order]] = defaultdict(list)
    for order in orders:
        groups[_group(order, by)].append(order)
    lines = [_line(key, members) for key, members in sorted(groups.items())]
    lines.append(_line("total", list(orders)))
    return lines


def _line(key: str, orders: Sequence[Order]) -> dict[str, Any]:
    currencies = sorted({o.entry.currency for o in orders if o.entry.currency})
    return {
        "group": key,
        "orders": len(orders),
        "cost": money(sum((o.cost for o in orders), Decimal(0))),
        "of_which_estimated": money(sum((o.cost for o in orders if o.cost_is_estimate), Decimal(0))),
        "currency": ", ".join(currencies),
    }
