"""Statuses of open orders and refills: asked of the panels, 100 IDs a call, panels in parallel.

The journal's open orders are asked about before the sheet is read (`prefetch`), so a pass
that only refreshes reads and writes the sheet back to back; `refresh` then asks only for
what the sheet shows and the prefetch did not cover, and shows every answer in its row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sheetorders.errors import PanelError
from sheetorders.journal import Journal
from sheetorders.models import (
    ItemError,
    OrderStatus,
    RefillStatus,
    is_final_order_status,
    is_final_refill_status,
)
from sheetorders.panel import Panels
from sheetorders.rows import SheetRow

OrderAnswer = OrderStatus | ItemError
RefillAnswer = RefillStatus | ItemError


@dataclass
class Answers:
    """What panels said in this pass, by panel: order/refill ID -> answer; and who failed."""

    orders: dict[str, dict[str, OrderAnswer]] = field(default_factory=lambda: defaultdict(dict))
    refills: dict[str, dict[str, RefillAnswer]] = field(default_factory=lambda: defaultdict(dict))
    order_statuses: dict[str, str] = field(default_factory=dict)  # ref -> status, to remember
    order_charges: dict[str, str] = field(default_factory=dict)  # ref -> charge, to remember
    refill_statuses: dict[str, str] = field(default_factory=dict)  # refill ID -> status, to remember
    failures: dict[str, PanelError] = field(default_factory=dict)

    def merge(self, other: Answers) -> None:
        for panel, answers in other.orders.items():
            self.orders[panel].update(answers)
        for panel, refill_answers in other.refills.items():
            self.refills[panel].update(refill_answers)
        self.order_statuses.update(other.order_statuses)
        self.order_charges.update(other.order_charges)
        self.refill_statuses.update(other.refill_statuses)
        self.failures.update(other.failures)


def prefetch(journal: Journal, sheet_key: str, panels: Panels, configured: Collection[str]) -> Answers:
    """Ask about the open orders and refills the journal knows."""
    orders: dict[str, list[tuple[str, str]]] = defaultdict(list)
    refills: dict[str, list[str]] = defaultdict(list)
    for ref, panel, order_id in journal.open_orders(sheet_key):
        if panel in configured:
            orders[panel].append((ref, order_id))
    for _, panel, refill_id in journal.open_refills(sheet_key):
        if panel in configured:
            refills[panel].append(refill_id)
    return _ask(panels, orders, refills)


def _ask(panels: Panels, orders: dict[str, list[tuple[str, str]]], refills: dict[str, list[str]]) -> Answers:
    """Ask each panel for these (ref, order ID)s and refill IDs, in parallel."""
    found = Answers()

    def ask(panel: str) -> None:
        client = panels.client(panel)
        wanted = orders.get(panel, [])
        if wanted:
            answers = client.statuses([order_id for _, order_id in wanted])
            found.orders[panel] = answers
            for ref, order_id in wanted:
                answer = answers.get(order_id)
                if ref and isinstance(answer, OrderStatus):
                    found.order_statuses[ref] = answer.status
                    if answer.charge is not None:
                        found.order_charges[ref] = str(answer.charge)
        if refills.get(panel):
            refill_answers = client.refill_statuses(refills[panel])
            found.refills[panel] = refill_answers
            found.refill_statuses.update(
                {rid: a.status for rid, a in refill_answers.items() if isinstance(a, RefillStatus)}
            )

    for panel, result in panels.each(set(orders) | set(refills), ask).items():
        if isinstance(result, PanelError):
            found.failures[panel] = result
    return found


@dataclass
class Refreshed:
    answers: Answers
    refreshed: int = 0
    actual: dict[str, tuple[Decimal, str]] = field(default_factory=dict)  # charges of new orders
    asked: bool = False  # whether any panel was asked (people may have moved rows meanwhile)


def refresh(
    rows: Sequence[SheetRow],
    known: Answers,
    panels: Panels,
    *,
    default_panel: str,
    usable: Collection[str],
    new_refs: Collection[str],
) -> Refreshed:
    """Show the status of every open order and refill in its row; ask only what `known` lacks.

    `usable`: the panels that may be asked; `new_refs`: orders placed in this pass, whose
    charges are this pass's actual spend.
    """
    open_orders: dict[str, list[SheetRow]] = defaultdict(list)
    open_refills: dict[str, list[SheetRow]] = defaultdict(list)
    for row in rows:
        panel = row.panel_name(default_panel)
        if panel not in usable:
            continue
        if row.order_id and not is_final_order_status(row.status):
            open_orders[panel].append(row)
        if row.text("refill_id") and not is_final_refill_status(row.text("refill_status")):
            open_refills[panel].append(row)
    ask_orders = {
        panel: [(row.ref, row.order_id) for row in listed if row.order_id not in known.orders[panel]]
        for panel, listed in open_orders.items()
    }
    ask_refills = {
        panel: [row.text("refill_id") for row in listed if row.text("refill_id") not in known.refills[panel]]
        for panel, listed in open_refills.items()
    }
    fresh = _ask(
        panels, {p: ids for p, ids in ask_orders.items() if ids}, {p: i for p, i in ask_refills.items() if i}
    )
    result = Refreshed(fresh, asked=any(ask_orders.values()) or any(ask_refills.values()))
    for panel in set(open_orders) | set(open_refills):
        answers = {**known.orders[panel], **fresh.orders[panel]}
        for row in open_orders.get(panel, []):
            _show_order(row, answers.get(row.order_id), panel, new_refs, result)
        refill_answers = {**known.refills[panel], **fresh.refills[panel]}
        for row in open_refills.get(panel, []):
            _show_refill(row, refill_answers.get(row.text("refill_id")))
    return result


def _show_order(
    row: SheetRow, answer: OrderAnswer | None, panel: str, new_refs: Collection[str], result: Refreshed
) -> None:
    if isinstance(answer, ItemError):
        row.show_order_error(answer.message)
        return
    if answer is None:
        return
    row.show_status(answer)
    result.refreshed += 1
    if row.ref and row.ref in new_refs and "order_id" in row.changes and answer.charge is not None:
        spent, currency = result.actual.get(panel, (Decimal(0), ""))
        result.actual[panel] = (spent + answer.charge, answer.currency or currency)


def _show_refill(row: SheetRow, answer: RefillAnswer | None) -> None:
    if isinstance(answer, ItemError):
        row.show_refill_error(answer.id, answer.message)
    elif answer is not None:
        row.show_refill_status(answer.status)
