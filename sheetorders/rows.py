"""The sheet's data rows: the cells as read (never changed) and what this pass changes in them.

Every change goes through a named setter that knows which cells belong together (a status
and its reason, an order ID and its first status) and stamps `updated_at` when a cell it
owns really changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from sheetorders.cells import Cell, cell_text
from sheetorders.columns import ACTION_COLUMN, APPROVAL_COLUMN, INPUT_COLUMNS, OUTPUT_COLUMNS, map_headers
from sheetorders.errors import SheetError
from sheetorders.headers import near_miss_message, near_misses
from sheetorders.models import OrderStatus
from sheetorders.sheets.base import SheetBackend, SheetTable
from sheetorders.states import RETRY, RowStatus
from sheetorders.store import utc_now
from sheetorders.validate import is_blank_row

# Statuses of the tool's own that an order (placed or found) replaces.
_BEFORE_ORDER = (RowStatus.WAITING, RowStatus.HELD, RowStatus.UNCERTAIN, RowStatus.NEEDS_APPROVAL)
_PLACEABLE = (
    "",
    RETRY,
    *(s.lower() for s in (RowStatus.WAITING, RowStatus.HELD, RowStatus.INVALID, RowStatus.NEEDS_APPROVAL)),
)
APPROVED = frozenset({"yes", "y", "x", "true", "1", "✓", "✔", "ok"})
CORE_OUTPUT_COLUMNS = OUTPUT_COLUMNS[:9]  # ref .. updated_at; refill columns appear when needed
STATUS_FIELDS = ("status", "charge", "start_count", "remains", "currency")


@dataclass(eq=False)
class SheetRow:
    """One data row of the sheet as read, and the changes this pass makes to it."""

    number: int
    raw: tuple[Cell, ...]
    cells: Mapping[str, Cell]
    changes: dict[str, Cell] = field(default_factory=dict)
    request_ids: list[int] = field(default_factory=list)  # journaled refills/cancels shown in this row
    ref_ignored: bool = False  # a ref copied from another row: this row does not own it
    columns: frozenset[str] | None = None  # the sheet's columns (None: those `cells` names)

    def __post_init__(self) -> None:
        self.raw = tuple(self.raw)
        self.cells = MappingProxyType(dict(self.cells))
        if self.columns is None:
            self.columns = frozenset(self.cells)

    def has_column(self, name: str) -> bool:
        """Whether the sheet has this column (`cells` leaves out the empty ones)."""
        assert self.columns is not None
        return name in self.columns

    def value(self, name: str) -> Cell:
        return self.changes[name] if name in self.changes else self.cells.get(name)

    def text(self, name: str) -> str:
        if name == "ref" and self.ref_ignored and "ref" not in self.changes:
            return ""
        return cell_text(self.value(name))

    @property
    def ref(self) -> str:
        return self.text("ref")

    @property
    def read_ref(self) -> str:
        """The ref the sheet held when it was read, if this row owns it."""
        return "" if self.ref_ignored else cell_text(self.cells.get("ref"))

    @property
    def order_id(self) -> str:
        return self.text("order_id")

    @property
    def status(self) -> str:
        return self.text("status")

    @property
    def action(self) -> str:
        return self.text(ACTION_COLUMN)

    @property
    def approved(self) -> bool:
        """Whether its `approved` cell says yes (yes, y, x, true, 1, a ticked checkbox)."""
        return self.text(APPROVAL_COLUMN).lower() in APPROVED

    def void_approval(self, message: str) -> None:
        """The row changed after it was approved: the approval no longer holds."""
        if self.has_column(APPROVAL_COLUMN):
            self._set(APPROVAL_COLUMN, None)
        self.mark(RowStatus.NEEDS_APPROVAL, message)

    def show_estimate(self, cost: Decimal) -> None:
        """The estimated cost in `estimate`, unless the sheet computes it there (a formula)."""
        if self.has_column("estimate") and not self.text("estimate").startswith("="):
            self._set("estimate", cost)

    @property
    def is_blank(self) -> bool:
        return is_blank_row(self.cells) and not self.order_id and not self.ref

    @property
    def awaits_order(self) -> bool:
        """Not ordered yet, and nothing in `status` says to leave it alone (an Invalid row is
        checked again: once fixed, it is placed)."""
        if self.order_id or self.is_blank:
            return False
        return self.status.lower() in _PLACEABLE

    @property
    def stray_status(self) -> bool:
        """Not ordered, yet `status` holds something that is no step towards an order (copied with
        the row, or typed): the row is not placed, and must say why."""
        if self.order_id or self.is_blank or self.awaits_order:
            return False
        status = self.status.lower()
        # An Uncertain or Rejected row with its ref is the journal's: it says why already, as
        # does a row whose ref was copied from another (reconcile marked it).
        if self.ref_ignored:
            return False
        return not (self.ref and status in (RowStatus.UNCERTAIN.lower(), RowStatus.REJECTED.lower()))

    # --- setters -------------------------------------------------------------

    def _set(self, name: str, value: Cell) -> bool:
        """Set a cell; whether it now differs from what the sheet holds."""
        text, read = cell_text(value), cell_text(self.cells.get(name))
        if name in self.changes or text != read:
            self.changes[name] = value
            return text != read
        return False

    def _stamp(self, *changed: bool) -> None:
        if any(changed):
            self._set("updated_at", utc_now())

    def mark(self, status: RowStatus | str | None, message: str | None) -> bool:
        """A status of the tool's own and the reason for it in `error`; whether either is new."""
        changed = [self._set("status", status), self._set("error", message)]
        self._stamp(*changed)
        return any(changed)

    def note(self, message: str) -> bool:
        """A word in `error` only (the status is the user's); whether it is new."""
        changed = self._set("error", message)
        self._stamp(changed)
        return changed

    def mark_uncertain(self, detail: str, since: str | None) -> bool:
        """The panel may have created this row's order; whether the row was not Uncertain before."""
        newly = self.status != RowStatus.UNCERTAIN
        when = f" at {since}" if since else ""
        self.mark(
            RowStatus.UNCERTAIN,
            f"the panel may have created this order{when} ({detail}). Check the panel's order list for this "
            "link and service: if the order is there, type its ID in order_id; if not, type retry in status "
            "to send it again",
        )
        return newly

    def panel_name(self, default: str) -> str:
        """The panel the row orders from: its `panel` cell, else the sheet's default."""
        return self.text("panel") or default

    def clear_error(self) -> None:
        self._stamp(self._set("error", None))

    def assign_ref(self, ref: str) -> None:
        self._set("ref", ref)

    def ignore_ref(self) -> None:
        """The ref cell was copied from another row: this row is not that journal entry."""
        self.ref_ignored = True

    def record_order(self, order_id: str) -> None:
        """An order was placed (or found) for this row."""
        changed = [self._set("order_id", order_id)]
        if self.status.lower() in ("", *(s.lower() for s in _BEFORE_ORDER), RETRY):
            changed.append(self._set("status", RowStatus.PENDING))
        changed.append(self._set("error", None))
        self._stamp(*changed)

    def show_status(self, answer: OrderStatus) -> bool:
        """The panel's latest word on this row's order; whether anything shown changed."""
        values = {
            "status": answer.status,
            "charge": answer.charge,
            "start_count": answer.start_count,
            "remains": answer.remains,
            "currency": answer.currency,
        }
        before = {name: self.text(name) for name in STATUS_FIELDS}
        for name, value in values.items():
            self._set(name, value)
        changed = {name: self.text(name) for name in STATUS_FIELDS} != before
        if changed:
            self._set("updated_at", utc_now())
            if self.text("error").startswith(f"order {self.order_id}:"):
                self._set("error", None)
        return changed

    def show_order_error(self, message: str) -> None:
        self._set("error", f"order {self.order_id}: {message}")

    def show_refill_status(self, status: str) -> None:
        if status != self.text("refill_status"):
            self._stamp(self._set("refill_status", status))

    def show_refill_error(self, refill_id: str, message: str) -> None:
        self._set("error", f"refill {refill_id}: {message}")

    def show_action(self, action_cell: str | None, **cells: Cell) -> None:
        """What became of a refill or cancel typed in `action` (its cell, the cells it sets)."""
        for name, value in cells.items():
            self._set(name, value)
        if action_cell is not None:
            self._set(ACTION_COLUMN, action_cell)
        self._set("updated_at", utc_now())

    def action_error(self, message: str) -> bool:
        """Why a refill or cancel typed here was not sent; whether the row did not say so already."""
        changed = self._set("error", message)
        self._stamp(changed)
        return changed


def rows_from_table(table: SheetTable, columns: Mapping[str, int]) -> list[SheetRow]:
    rows = []
    named = list(columns.items())
    present = frozenset(columns)  # one for all the rows
    for offset, raw in enumerate(table.rows):
        # Empty cells are left out (`cells.get` reads them as None): most of a wide sheet's are.
        width = len(raw)
        cells = {name: raw[index] for name, index in named if index < width and raw[index] is not None}
        rows.append(SheetRow(number=offset + 2, raw=tuple(raw), cells=cells, columns=present))
    return rows


def order_cells(row: SheetRow) -> dict[str, Cell]:
    return {name: row.cells.get(name) for name in INPUT_COLUMNS}


def order_target(cells: Mapping[str, object]) -> str:
    """Who or what an order is for: its link, or the username for a type without one
    (Subscriptions). The journal keeps it, to find an order's row again."""
    return cell_text(cells.get("link")) or cell_text(cells.get("username"))


def fingerprint(row: SheetRow) -> str:
    """What the row asks for; identifies a row whose ref never reached the sheet."""
    filled = (name for name in INPUT_COLUMNS if name in row.cells or name in row.changes)
    texts = ((name, row.text(name)) for name in filled)  # an empty cell counts as none
    data = {name: text for name, text in texts if text}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def content_key(raw: tuple[Cell, ...] | list[Cell]) -> tuple[str, ...]:
    """A row's cells as text without trailing blanks: finds a row again after others moved."""
    values = [cell_text(v) for v in raw]
    while values and not values[-1]:
        values.pop()
    return tuple(values)


@dataclass(frozen=True)
class SheetRead:
    """The sheet as this pass read it."""

    table: SheetTable
    columns: Mapping[str, int]  # column name -> index, as the headers were read
    rows: list[SheetRow]


def read_sheet(backend: SheetBackend, aliases: Mapping[str, str], ignored: Collection[str] = ()) -> SheetRead:
    table = backend.read()
    misses = near_misses(table.headers, aliases, ignored)
    if misses:
        raise SheetError(near_miss_message(backend.description, misses))
    columns = map_headers(table.headers, aliases)
    if "service" not in columns and "order_id" not in columns:
        found = ", ".join(cell_text(h) for h in table.headers if cell_text(h)) or "none"
        raise SheetError(
            f"{backend.description}: row 1 has no 'service' column (headers found: {found}); "
            "start from templates/orders.xlsx or add the columns service, link, quantity"
        )
    return SheetRead(table, columns, rows_from_table(table, columns))
