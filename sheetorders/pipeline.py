"""One pass over one order sheet: config → sheet → rows → validation → journal → panel → write-back.

A pass reads the sheet once, reconciles it with the journal (so an order placed by a
killed process is written back, never placed again), validates and prices the new
rows, places them (each at most once), handles refills and cancels typed in the
sheet, refreshes the status of open orders and refills, and writes every changed
cell back in one write.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sheetorders import journal as j
from sheetorders.cells import cell_text
from sheetorders.columns import ACTION_COLUMN, INPUT_COLUMNS, OUTPUT_COLUMNS, map_headers
from sheetorders.config import Config, SheetConfig
from sheetorders.errors import (
    ActiveOrderExists,
    AmbiguousOrder,
    ExitCode,
    InvalidKey,
    JournalError,
    NotEnoughFunds,
    PanelError,
    PanelRefused,
    PanelUnavailable,
    SheetError,
)
from sheetorders.journal import Journal, JournalRow, new_ref, utc_now
from sheetorders.models import (
    Balance,
    ItemError,
    OrderStatus,
    RefillStatus,
    Service,
    is_final_order_status,
    is_final_refill_status,
    money,
)
from sheetorders.panel import PanelClient, Panels
from sheetorders.sheets.base import Cell, CellWrite, SheetBackend, SheetTable, open_backend
from sheetorders.validate import OrderRequest, is_blank_row, parse_whole_number, validate_row

log = logging.getLogger("sheetorders.pipeline")

# The tool's own words in the status column, before the panel's take over.
INVALID = "Invalid"
REJECTED = "Rejected"
UNCERTAIN = "Uncertain"
WAITING = "Waiting"
RETRY = "retry"
CORE_OUTPUT_COLUMNS = OUTPUT_COLUMNS[:9]  # ref .. updated_at; refill columns appear when needed


# --- rows ----------------------------------------------------------------------


@dataclass
class SheetRow:
    """One data row of the sheet as read, and the changes this pass makes to it."""

    number: int
    raw: list[Cell]
    cells: dict[str, Cell]
    changes: dict[str, Cell] = field(default_factory=dict)
    request_ids: list[int] = field(default_factory=list)  # journaled refills/cancels shown in this row

    def value(self, name: str) -> Cell:
        return self.changes[name] if name in self.changes else self.cells.get(name)

    def text(self, name: str) -> str:
        return cell_text(self.value(name))

    def set(self, name: str, value: Cell) -> None:
        if cell_text(value) != cell_text(self.value(name)) or name in self.changes:
            self.changes[name] = value

    @property
    def ref(self) -> str:
        return self.text("ref")

    @property
    def order_id(self) -> str:
        return self.text("order_id")

    @property
    def status(self) -> str:
        return self.text("status")


def fingerprint(row: SheetRow) -> str:
    """What the row asks for; identifies a row whose ref never reached the sheet."""
    data = {name: row.text(name) for name in INPUT_COLUMNS if row.text(name)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def rows_from_table(table: SheetTable, columns: Mapping[str, int]) -> list[SheetRow]:
    rows = []
    for offset, raw in enumerate(table.rows):
        cells = {name: raw[index] if index < len(raw) else None for name, index in columns.items()}
        rows.append(SheetRow(number=offset + 2, raw=list(raw), cells=cells))
    return rows


# --- reports -------------------------------------------------------------------


@dataclass
class PanelSpend:
    estimated: Decimal = Decimal(0)
    actual: Decimal = Decimal(0)
    currency: str = ""


@dataclass
class PassReport:
    sheet: str
    dry_run: bool = False
    ordered: int = 0
    invalid: int = 0
    rejected: int = 0
    uncertain: int = 0
    waiting: int = 0
    held_back: int = 0  # valid rows left for a later run (funds, max_spend, unreachable panel)
    recovered: int = 0  # orders placed earlier whose ID reached the sheet only now
    refreshed: int = 0
    refills: int = 0
    cancels: int = 0
    action_errors: int = 0
    spend: dict[str, PanelSpend] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    would_order: list[OrderRequest] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    panel_errors: dict[str, str] = field(default_factory=dict)  # panels that refused us (a wrong key...)
    balances: dict[str, Balance] = field(default_factory=dict)
    error: str | None = None  # the pass could not run at all (sheet unreadable...)
    worst: ExitCode = ExitCode.OK  # the most serious panel failure's exit code

    @property
    def failed(self) -> bool:
        return bool(self.invalid or self.rejected or self.uncertain or self.action_errors or self.error)

    @property
    def exit_code(self) -> ExitCode:
        return max(self.worst, ExitCode.ROWS_FAILED if self.failed else ExitCode.OK)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "dry_run": self.dry_run,
            "ordered": self.ordered,
            "invalid": self.invalid,
            "rejected": self.rejected,
            "uncertain": self.uncertain,
            "waiting": self.waiting,
            "held_back": self.held_back,
            "recovered": self.recovered,
            "refreshed": self.refreshed,
            "refills": self.refills,
            "cancels": self.cancels,
            "action_errors": self.action_errors,
            "spend": {
                panel: {"estimated": money(s.estimated), "actual": money(s.actual), "currency": s.currency}
                for panel, s in self.spend.items()
            },
            "problems": self.problems,
            "notices": self.notices,
            "would_order": [
                {
                    "row": request.row,
                    "panel": request.panel,
                    "service": request.service.id,
                    "quantity": request.quantity,
                    "estimated_cost": str(request.estimated_cost),
                }
                for request in self.would_order
            ],
            "unreachable": self.unreachable,
            "panel_errors": self.panel_errors,
            "error": self.error,
            "exit_code": int(self.exit_code),
        }


# --- panels --------------------------------------------------------------------


# --- the pass --------------------------------------------------------------------


@dataclass
class PassOptions:
    dry_run: bool = False
    max_spend: Decimal | None = None
    on_progress: Callable[[int, int], None] | None = None  # (done, total) while submitting


class SheetPass:
    """One pass over one sheet. Use `run_pass`; this class holds the pass's working state."""

    def __init__(
        self,
        config: Config,
        sheet: SheetConfig,
        journal: Journal,
        panels: Panels,
        options: PassOptions,
        backend: SheetBackend | None = None,
    ) -> None:
        self.config = config
        self.sheet = sheet
        self.sheet_key = sheet.journal_key
        self.journal = journal
        self.panels = panels
        self.options = options
        self.report = PassReport(sheet=sheet.label, dry_run=options.dry_run)
        self.default_panel = sheet.panel or config.default_panel
        self.backend = backend or open_backend(
            sheet.source, sheet.worksheet, {**config.google, "columns": config.columns}
        )
        self.table: SheetTable | None = None
        self.columns: dict[str, int] = {}
        self.rows: list[SheetRow] = []
        self.written_refs: set[str] = set()
        self.written_requests: set[int] = set()
        self._report_lock = threading.Lock()
        # Statuses asked for before the sheet was read, by panel: order/refill ID -> answer.
        self.known_orders: dict[str, dict[str, OrderStatus | ItemError]] = defaultdict(dict)
        self.known_refills: dict[str, dict[str, RefillStatus | ItemError]] = defaultdict(dict)
        # Whether the panels were asked anything between reading and writing the sheet: only then
        # can people have had time to move rows, so only then is a (costly) check needed.
        self.asked_panels_after_read = False

    def count(self, counter: str, notice: str | None = None) -> None:
        """Add one to a report counter (and a notice); safe from the submitting threads."""
        with self._report_lock:
            setattr(self.report, counter, getattr(self.report, counter) + 1)
            if notice:
                self.report.notices.append(notice)

    # -- prefetch, read and reconcile --

    def prefetch(self) -> None:
        """Ask about the open orders and refills the journal knows before reading the sheet, so a
        pass that only refreshes them reads and writes the sheet back to back."""
        orders: dict[str, list[tuple[str, str]]] = defaultdict(list)
        refills: dict[str, list[str]] = defaultdict(list)
        for ref, panel_name, order_id in self.journal.open_orders(self.sheet_key):
            if panel_name in self.config.panels:
                orders[panel_name].append((ref, order_id))
        for _, panel_name, refill_id in self.journal.open_refills(self.sheet_key):
            if panel_name in self.config.panels:
                refills[panel_name].append(refill_id)

        def fetch(panel_name: str) -> None:
            client = self.panels.client(panel_name)
            if orders[panel_name]:
                answers = client.statuses([order_id for _, order_id in orders[panel_name]])
                self.known_orders[panel_name] = answers
                statuses = {}
                for ref, order_id in orders[panel_name]:
                    answer = answers.get(order_id)
                    if isinstance(answer, OrderStatus):
                        statuses[ref] = answer.status
                self.journal.set_order_statuses(statuses)
            if refills[panel_name]:
                refill_answers = client.refill_statuses(refills[panel_name])
                self.known_refills[panel_name] = refill_answers
                self.journal.set_refill_statuses(
                    {rid: a.status for rid, a in refill_answers.items() if isinstance(a, RefillStatus)},
                    self.sheet_key,
                )

        for panel_name, result in self.panels.each(set(orders) | set(refills), fetch).items():
            if isinstance(result, PanelError):
                self._panel_failed(panel_name, result)

    def read(self) -> None:
        self.table = self.backend.read()
        self.columns = map_headers(self.table.headers, self.config.columns)
        if "service" not in self.columns and "order_id" not in self.columns:
            found = ", ".join(cell_text(h) for h in self.table.headers if cell_text(h)) or "none"
            raise SheetError(
                f"{self.backend.description}: row 1 has no 'service' column (headers found: {found}); "
                "start from templates/orders.xlsx or add the columns service, link, quantity"
            )
        self.rows = rows_from_table(self.table, self.columns)

    def reconcile(self) -> None:
        """Bring the journal's knowledge into the rows before anything new is sent."""
        journal_rows = self.journal.rows(self.sheet_key)
        by_ref: dict[str, list[SheetRow]] = defaultdict(list)
        for row in self.rows:
            if row.ref:
                by_ref[row.ref].append(row)

        for ref, rows in by_ref.items():
            entry = journal_rows.get(ref) or self.journal.get(ref)
            if len(rows) > 1:
                owner = next((r for r in rows if entry and r.order_id and r.order_id == entry.order_id), None)
                for row in rows:
                    if row is not owner and not row.order_id:
                        self._mark(
                            row,
                            UNCERTAIN,
                            f"ref {ref} is also in row {rows[0].number}: this row was "
                            "copied; clear its ref cell to order it as a new row",
                        )
                        row.cells["ref"] = None  # keep it out of the rest of the pass
                rows = [owner] if owner else []
            for row in rows:
                self._apply_journal(row, entry)

        unmatched = [
            entry
            for entry in journal_rows.values()
            if not entry.written
            and entry.ref not in by_ref
            and entry.state in (j.ACCEPTED, *j.UNRESOLVED_STATES)
        ]
        if unmatched:
            self._rematch(unmatched)

    def _apply_journal(self, row: SheetRow, entry: JournalRow | None) -> None:
        if entry is None:
            if not row.order_id and row.status.lower() != RETRY:
                self._mark(
                    row,
                    UNCERTAIN,
                    f"the journal has no record of ref {row.ref}: the order may exist. "
                    "Check the panel; type retry in status to order this row",
                )
            return
        if entry.state == j.ACCEPTED:
            if not row.order_id and entry.order_id:
                row.set("order_id", entry.order_id)
                if row.status in ("", WAITING, UNCERTAIN, RETRY):
                    row.set("status", "Pending")
                row.set("error", None)
                row.set("updated_at", utc_now())
                self.report.recovered += 1
            self.written_refs.add(entry.ref)
        elif entry.state in j.UNRESOLVED_STATES:
            if row.order_id:
                # The user found the order on the panel and typed its ID: that settles it.
                if not self.options.dry_run:
                    self.journal.finish_add(
                        entry.ref, j.ACCEPTED, order_id=row.order_id, error="typed in by the user"
                    )
                row.set("error", None)
                self.written_refs.add(entry.ref)
            elif row.status.lower() == RETRY:
                if not self.options.dry_run:
                    self.journal.set_state(entry.ref, j.RELEASED)
                row.set("status", None)
                row.set("error", None)
            else:
                if entry.state == j.SENDING and not self.options.dry_run:
                    self.journal.set_state(
                        entry.ref, j.AMBIGUOUS, error="interrupted while waiting for the panel"
                    )
                self._mark_uncertain(row, entry.error or "interrupted while waiting for the panel", entry)
        elif entry.state == j.REJECTED and row.status.lower() not in ("", WAITING.lower(), RETRY):
            if row.status != REJECTED:
                self._mark(row, REJECTED, entry.error or "")
            self.written_refs.add(entry.ref)

    def _rematch(self, entries: list[JournalRow]) -> None:
        """Attach orders whose ref never reached the sheet to their rows, by content."""
        candidates = [row for row in self.rows if not row.ref and not row.order_id and not is_blank(row)]
        prints = {id(row): fingerprint(row) for row in candidates}
        taken: set[int] = set()
        for entry in sorted(entries, key=lambda e: e.created_at):
            match = next(
                (r for r in candidates if id(r) not in taken and prints[id(r)] == entry.fingerprint), None
            )
            if match is None:
                same_target = [
                    r
                    for r in candidates
                    if id(r) not in taken
                    and r.text("service") == entry.service
                    and (r.text("link") or None) == entry.link
                    and self.panel_of(r) == entry.panel
                ]
                match = same_target[0] if same_target else None
                if match is not None:
                    self.report.notices.append(
                        f"row {match.number}: matched to the order sent from row {entry.row_number} "
                        f"(ref {entry.ref}) although the row was edited since"
                    )
            if match is None:
                what = f"order {entry.order_id}" if entry.order_id else "a possible order"
                self.report.notices.append(
                    f"{what} (ref {entry.ref}, service {entry.service}, link {entry.link}) was sent from "
                    f"row {entry.row_number} but no such row is in the sheet any more"
                )
                continue
            taken.add(id(match))
            match.set("ref", entry.ref)
            match.cells["ref"] = entry.ref
            self._apply_journal(match, entry)

    # -- validate, sequence, budget --

    def plan(self, catalogs: Mapping[str, Mapping[str, Service]]) -> list[tuple[SheetRow, OrderRequest]]:
        active_targets = self._active_targets()
        planned: list[tuple[SheetRow, OrderRequest]] = []
        for row in self.rows:
            if not self._eligible(row):
                continue
            panel_name = self.panel_of(row)
            if self._panel_down(panel_name):
                self.report.held_back += 1
                continue
            outcome = validate_row(row.number, _order_cells(row), catalogs, self.default_panel)
            if isinstance(outcome, list):
                self._mark(row, INVALID, "; ".join(f"{p.column}: {p.message}" for p in outcome))
                self.report.invalid += 1
                self.report.problems.extend(str(p) for p in outcome)
                continue
            earlier = active_targets.get(outcome.dedupe_key)
            if earlier is not None:
                self._mark(row, WAITING, f"waits for {earlier} on the same link and service")
                self.report.waiting += 1
                continue
            active_targets[outcome.dedupe_key] = f"row {row.number}"
            planned.append((row, outcome))
        return self._within_budget(planned)

    def _eligible(self, row: SheetRow) -> bool:
        if row.order_id or is_blank(row):
            return False
        return row.status.lower() in ("", WAITING.lower(), RETRY)

    def _active_targets(self) -> dict[tuple[str, str, str], str]:
        """(panel, service, link) of the orders still running, from the sheet."""
        active = {}
        for row in self.rows:
            if row.order_id and not is_final_order_status(row.status):
                service = row.text("service")
                with contextlib.suppress(ValueError):
                    service = str(parse_whole_number(service))
                target = row.text("link") or row.text("username")
                active[(self.panel_of(row), service, target)] = f"order {row.order_id} (row {row.number})"
        return active

    def _within_budget(
        self, planned: list[tuple[SheetRow, OrderRequest]]
    ) -> list[tuple[SheetRow, OrderRequest]]:
        limit = self.options.max_spend if self.options.max_spend is not None else self.config.max_spend
        spent = Decimal(0)
        per_panel: dict[str, Decimal] = defaultdict(Decimal)
        kept = []
        for index, (row, request) in enumerate(planned):
            if limit is not None and spent + request.estimated_cost > limit:
                left = len(planned) - index
                self.report.held_back += left
                self.report.notices.append(
                    f"max_spend {limit} reached: {left} row(s) from row {row.number} on "
                    "are left for a later run"
                )
                break
            balance = self.report.balances.get(request.panel)
            if balance is not None and per_panel[request.panel] + request.estimated_cost > balance.balance:
                self.report.held_back += 1
                self.report.notices.append(
                    f"row {row.number}: left for a later run, the balance of panel {request.panel!r} "
                    f"({balance.balance} {balance.currency}) does not cover it"
                )
                continue
            spent += request.estimated_cost
            per_panel[request.panel] += request.estimated_cost
            spend = self.report.spend.setdefault(request.panel, PanelSpend())
            spend.estimated += request.estimated_cost
            if balance is not None:
                spend.currency = balance.currency
            kept.append((row, request))
        return kept

    # -- submit --

    def submit(self, planned: list[tuple[SheetRow, OrderRequest]]) -> None:
        self.asked_panels_after_read |= bool(planned)
        by_panel: dict[str, list[tuple[SheetRow, OrderRequest]]] = defaultdict(list)
        for item in planned:
            by_panel[item[1].panel].append(item)
        total = len(planned)
        done = 0
        progress_lock = threading.Lock()

        def tick() -> None:
            nonlocal done
            with progress_lock:
                done += 1
                if self.options.on_progress:
                    self.options.on_progress(done, total)

        def submit_panel(panel_name: str) -> None:
            client = self.panels.client(panel_name)
            stop = threading.Event()
            workers = self.config.panel(panel_name).concurrency

            def place(item: tuple[SheetRow, OrderRequest]) -> None:
                try:
                    if not stop.is_set():
                        self._place(client, item[0], item[1], stop)
                    else:
                        self.count("held_back")
                finally:
                    tick()

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"add-{panel_name}") as pool:
                list(pool.map(place, by_panel[panel_name]))

        if self.options.on_progress:
            self.options.on_progress(0, total)
        with ThreadPoolExecutor(max_workers=max(1, len(by_panel))) as pool:
            list(pool.map(submit_panel, list(by_panel)))

    def _place(
        self, client: PanelClient, row: SheetRow, request: OrderRequest, stop: threading.Event
    ) -> None:
        ref = row.ref or new_ref()
        self.journal.begin_add(
            ref=ref,
            sheet=self.sheet_key,
            fingerprint=fingerprint(row),
            panel=request.panel,
            service=request.service.id,
            link=str(request.fields.get("link")) if request.fields.get("link") else None,
            row_number=row.number,
            estimated_cost=str(request.estimated_cost),
        )
        row.set("ref", ref)
        try:
            order_id = client.add(request.service.id, request.fields)
        except AmbiguousOrder as error:
            self.journal.finish_add(ref, j.AMBIGUOUS, error=error.message)
            self._mark_uncertain(row, error.message, self.journal.get(ref))
            return
        except NotEnoughFunds as error:
            self.journal.finish_add(ref, j.NOT_SENT, error=error.message)
            first = not stop.is_set()
            stop.set()
            self.count(
                "held_back",
                f"panel {request.panel!r} answered {error.message!r}: stopped ordering from it; "
                "the remaining rows are left for the next run"
                if first
                else None,
            )
            return
        except ActiveOrderExists as error:
            self.journal.finish_add(ref, j.NOT_SENT, error=error.message)
            self._mark(
                row, WAITING, f"the panel has an active order on this link and service ({error.message})"
            )
            self.count("waiting")
            return
        except InvalidKey as error:
            self.journal.finish_add(ref, j.NOT_SENT, error=error.message)
            self._panel_failed(request.panel, error)
            stop.set()
            self.count("held_back")
            return
        except PanelRefused as error:
            self.journal.finish_add(ref, j.REJECTED, error=error.message)
            self._mark(row, REJECTED, error.message)
            self.count("rejected")
            with self._report_lock:
                self.report.problems.append(f"row {row.number}: the panel refused: {error.message}")
            return
        except PanelUnavailable as error:
            # Raised for an add only when the request surely did not reach the panel.
            self.journal.finish_add(ref, j.NOT_SENT, error=error.message)
            self._panel_failed(request.panel, error)
            stop.set()
            self.count("held_back")
            return
        # The sheet is the other place the ID is kept: set it first, whatever the journal says.
        row.set("order_id", order_id)
        row.set("status", "Pending")
        row.set("error", None)
        row.set("updated_at", utc_now())
        self.count("ordered")
        try:
            self.journal.finish_add(ref, j.ACCEPTED, order_id=order_id)
        except JournalError as error:
            with self._report_lock:
                self.report.problems.append(f"row {row.number}: order {order_id} placed, {error}")
            return
        self.written_refs.add(ref)

    # -- refills and cancels typed in the sheet --

    def handle_actions(self, catalogs: Mapping[str, Mapping[str, Service]]) -> None:
        pending = {
            (r.panel, r.order_id, r.action): r
            for r in self.journal.requests(self.sheet_key)
            if r.state != j.NOT_SENT
        }
        requested: dict[tuple[str, str], list[SheetRow]] = defaultdict(list)
        by_order = {row.order_id: row for row in self.rows if row.order_id}
        for request in pending.values():
            row = by_order.get(request.order_id)
            if row is not None:
                self._apply_request(row, request)
        for row in self.rows:
            action = row.text(ACTION_COLUMN).lower()
            if not action:
                continue
            if action not in ("refill", "cancel"):
                if action.split(" ")[0] not in (
                    "refill",
                    "cancel",
                ):  # "refill sent" etc. are the tool's marks
                    self._action_error(
                        row, f"action: {row.text(ACTION_COLUMN)!r} is not an action; type refill or cancel"
                    )
                continue
            if not row.order_id:
                self._action_error(row, f"action: {action} needs an order_id in this row")
                continue
            panel_name = self.panel_of(row)
            if (panel_name, row.order_id, action) in pending:
                continue  # sent by an earlier, interrupted pass: never twice
            service = catalogs.get(panel_name, {}).get(row.text("service"))
            if service is not None and not getattr(service, action):
                self._action_error(
                    row,
                    f'service {service.id} "{service.name}" does not allow {action} '
                    "(the panel's catalog says so)",
                )
                continue
            requested[(panel_name, action)].append(row)
        for (panel_name, action), rows in requested.items():
            if self._panel_down(panel_name):
                continue
            self._send_requests(panel_name, action, rows)

    def _send_requests(self, panel_name: str, action: str, rows: list[SheetRow]) -> None:
        self.asked_panels_after_read = True
        client = self.panels.client(panel_name)
        for start in range(0, len(rows), 100):
            batch = rows[start : start + 100]
            ids = {
                row.order_id: self.journal.begin_request(
                    sheet=self.sheet_key,
                    ref=row.ref or None,
                    panel=panel_name,
                    order_id=row.order_id,
                    action=action,
                )
                for row in batch
            }
            try:
                results = client.refills(list(ids)) if action == "refill" else client.cancel(list(ids))
            except AmbiguousOrder as error:
                for row in batch:
                    self.journal.finish_request(ids[row.order_id], j.AMBIGUOUS, error=error.message)
                    self._action_error(
                        row,
                        f"{action} may have been sent (no clear answer: {error.message}); "
                        f"check the panel before typing {action} again",
                    )
                continue
            except PanelError as error:
                for row in batch:
                    state = j.REJECTED if isinstance(error, PanelRefused) else j.NOT_SENT
                    self.journal.finish_request(ids[row.order_id], state, error=error.message)
                    if state == j.REJECTED:
                        self._action_error(row, f"{action}: {error.message}")
                if isinstance(error, (PanelUnavailable, InvalidKey)):
                    self._panel_failed(panel_name, error)
                    return
                continue
            for row in batch:
                result = results.get(row.order_id, ItemError(row.order_id, "no answer for this order"))
                request_id = ids[row.order_id]
                if isinstance(result, ItemError):
                    self.journal.finish_request(request_id, j.REJECTED, error=result.message)
                elif action == "refill":
                    self.journal.finish_request(request_id, j.ACCEPTED, result=str(result))
                else:
                    self.journal.finish_request(request_id, j.ACCEPTED, result="1" if result else "0")
            for request in self.journal.requests(self.sheet_key):
                if request.id in ids.values():
                    self._apply_request(next(r for r in batch if r.order_id == request.order_id), request)

    def _apply_request(self, row: SheetRow, request: j.JournalRequest) -> None:
        self.written_requests.add(request.id)
        row.request_ids.append(request.id)
        if request.state == j.ACCEPTED:
            if request.action == "refill":
                row.set("refill_id", request.result)
                row.set("refill_status", "Pending")
                self.report.refills += 1
            else:
                row.set("status", "Cancel requested")
                self.report.cancels += 1
            row.set(ACTION_COLUMN, f"{request.action} sent")
            row.set("error", None)
        elif request.state == j.REJECTED:
            row.set(ACTION_COLUMN, f"{request.action} refused")
            self._action_error(row, f"{request.action}: {request.error}")
        elif request.state in j.UNRESOLVED_STATES:
            row.set(ACTION_COLUMN, f"{request.action} uncertain")
            self._action_error(
                row,
                f"{request.action} may have been sent (interrupted); check the panel before typing it again",
            )
        elif request.state == j.NOT_SENT:
            self.written_requests.discard(request.id)
        row.set("updated_at", utc_now())

    def _action_error(self, row: SheetRow, message: str) -> None:
        row.set("error", message)
        row.set("updated_at", utc_now())
        self.report.action_errors += 1
        self.report.problems.append(f"row {row.number}, {message}")

    # -- refresh --

    def refresh(self) -> None:
        open_orders: dict[str, list[SheetRow]] = defaultdict(list)
        open_refills: dict[str, list[SheetRow]] = defaultdict(list)
        for row in self.rows:
            panel_name = self.panel_of(row)
            if panel_name not in self.config.panels or self._panel_down(panel_name):
                continue
            if row.order_id and not is_final_order_status(row.status):
                open_orders[panel_name].append(row)
            if row.text("refill_id") and not is_final_refill_status(row.text("refill_status")):
                open_refills[panel_name].append(row)

        def unknown_orders(panel_name: str) -> list[str]:
            known = self.known_orders[panel_name]
            return [row.order_id for row in open_orders.get(panel_name, []) if row.order_id not in known]

        def unknown_refills(panel_name: str) -> list[str]:
            known = self.known_refills[panel_name]
            return [
                r.text("refill_id")
                for r in open_refills.get(panel_name, [])
                if r.text("refill_id") not in known
            ]

        def refresh_panel(panel_name: str) -> None:
            client = self.panels.client(panel_name)
            ask = unknown_orders(panel_name)
            fresh_answers = client.statuses(ask) if ask else {}
            answers = {**self.known_orders[panel_name], **fresh_answers}
            asked: dict[str, str] = {}
            for row in open_orders.get(panel_name, []):
                answer = answers.get(row.order_id)
                self._apply_status(row, answer)
                if row.order_id in fresh_answers and row.ref and isinstance(answer, OrderStatus):
                    asked[row.ref] = answer.status
            if asked:
                self.journal.set_order_statuses(asked)

            ask = unknown_refills(panel_name)
            refill_answers = {
                **self.known_refills[panel_name],
                **(client.refill_statuses(ask) if ask else {}),
            }
            for row in open_refills.get(panel_name, []):
                answer = refill_answers.get(row.text("refill_id"))
                if isinstance(answer, ItemError):
                    row.set("error", f"refill {answer.id}: {answer.message}")
                elif answer is not None and answer.status != row.text("refill_status"):
                    row.set("refill_status", answer.status)
                    row.set("updated_at", utc_now())
            fresh = {rid: refill_answers[rid] for rid in ask}
            if fresh:
                self.journal.set_refill_statuses(
                    {rid: a.status for rid, a in fresh.items() if isinstance(a, RefillStatus)}, self.sheet_key
                )

        panels = set(open_orders) | set(open_refills)
        if any(unknown_orders(name) or unknown_refills(name) for name in panels):
            self.asked_panels_after_read = True
        results = self.panels.each(panels, refresh_panel)
        for panel_name, result in results.items():
            if isinstance(result, PanelError):
                self._panel_failed(panel_name, result)

    def _apply_status(self, row: SheetRow, answer: Any) -> None:
        if isinstance(answer, ItemError):
            row.set("error", f"order {row.order_id}: {answer.message}")
            return
        if answer is None:
            return
        before = {name: row.text(name) for name in ("status", "charge", "start_count", "remains", "currency")}
        row.set("status", answer.status)
        row.set("charge", answer.charge)
        row.set("start_count", answer.start_count)
        row.set("remains", answer.remains)
        row.set("currency", answer.currency)
        after = {name: row.text(name) for name in before}
        if after != before:
            row.set("updated_at", utc_now())
            if row.text("error").startswith(f"order {row.order_id}:"):
                row.set("error", None)
        self.report.refreshed += 1
        if (
            row.ref
            and row.ref in self.written_refs
            and "order_id" in row.changes
            and answer.charge is not None
        ):
            panel_name = self.panel_of(row)
            spend = self.report.spend.setdefault(panel_name, PanelSpend())
            spend.actual += answer.charge
            spend.currency = answer.currency or spend.currency

    # -- write back --

    def write_back(self) -> None:
        changed = [row for row in self.rows if row.changes]
        if not changed:
            self._journal_written()
            return
        assert self.table is not None
        headers = list(self.table.headers)
        columns = dict(self.columns)
        needed = set(CORE_OUTPUT_COLUMNS) | {name for row in changed for name in row.changes}
        new_header_cells = []
        for name in (*OUTPUT_COLUMNS, ACTION_COLUMN):
            if name in needed and name not in columns:
                columns[name] = len(headers)
                headers.append(name)
                new_header_cells.append(CellWrite(1, columns[name] + 1, name))

        targets: dict[int, int] = {row.number: row.number for row in changed}
        may_have_moved = self.backend.change_check_is_free or self.asked_panels_after_read
        if may_have_moved and self.backend.changed_since_read():
            targets = self._relocate(changed)
        cells = list(new_header_cells)
        for row in changed:
            target = targets.get(row.number)
            if target is None:
                self.report.notices.append(
                    f"row {row.number} was not found again after the sheet was edited during the pass; "
                    "its results will be written by the next pass"
                )
                self.written_refs.discard(row.ref)
                self.written_requests.difference_update(row.request_ids)
                continue
            for name, value in row.changes.items():
                cells.append(CellWrite(target, columns[name] + 1, value))
        try:
            self.backend.write(cells)
        except SheetError as error:
            placed = self.report.ordered + self.report.refills + self.report.cancels
            if not placed:
                raise
            raise type(error)(
                f"{error} — {placed} order(s)/request(s) of this pass are kept in the journal; "
                "the next run writes them into the sheet (they are not sent again)"
            ) from error
        self._journal_written()

    def _relocate(self, changed: list[SheetRow]) -> dict[int, int]:
        """Where each changed row is now, after someone edited the sheet during the pass."""
        fresh = self.backend.read()
        fresh_columns = map_headers(fresh.headers, self.config.columns)
        if fresh_columns != self.columns:
            raise SheetError(
                f"{self.backend.description}: the header row changed during the pass; nothing was written, "
                "the journal keeps every result for the next pass"
            )
        fresh_rows = rows_from_table(fresh, fresh_columns)
        by_ref = {row.ref: row.number for row in fresh_rows if row.ref}
        by_content: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for row in fresh_rows:
            by_content[_content_key(row.raw)].append(row.number)
        targets = {}
        for row in changed:
            ref = cell_text(row.cells.get("ref"))
            if ref and ref in by_ref:
                targets[row.number] = by_ref[ref]
                continue
            numbers = by_content.get(_content_key(row.raw))
            if numbers:
                targets[row.number] = numbers.pop(0)
        return targets

    def _journal_written(self) -> None:
        if self.written_refs:
            self.journal.mark_written(self.written_refs)
        if self.written_requests:
            self.journal.mark_requests_written(self.written_requests)

    # -- helpers --

    def _mark(self, row: SheetRow, status: str, error: str) -> None:
        row.set("status", status)
        row.set("error", error)
        row.set("updated_at", utc_now())

    def _mark_uncertain(self, row: SheetRow, detail: str, entry: JournalRow | None) -> None:
        if row.status != UNCERTAIN:
            self.count("uncertain")
        when = f" at {entry.updated_at}" if entry else ""
        self._mark(
            row,
            UNCERTAIN,
            f"the panel may have created this order{when} ({detail}). Check the panel's order list for this "
            "link and service: if the order is there, type its ID in order_id; if not, type retry in status "
            "to send it again",
        )

    def panel_of(self, row: SheetRow) -> str:
        """The panel a row orders from: its `panel` cell, else the sheet's default."""
        return row.text("panel") or self.default_panel

    def _panel_down(self, panel_name: str) -> bool:
        """Whether this pass already found the panel unreachable or refusing us."""
        return panel_name in self.report.unreachable or panel_name in self.report.panel_errors

    def _panel_failed(self, panel_name: str, error: PanelError) -> None:
        with self._report_lock:
            if isinstance(error, PanelUnavailable):
                self.report.unreachable.setdefault(panel_name, str(error))
            else:
                self.report.panel_errors.setdefault(panel_name, str(error))
            self.report.worst = max(self.report.worst, error.exit_code)


def is_blank(row: SheetRow) -> bool:
    return is_blank_row(row.cells) and not row.order_id and not row.ref


def _order_cells(row: SheetRow) -> dict[str, Cell]:
    return {name: row.cells.get(name) for name in INPUT_COLUMNS}


def _content_key(raw: list[Cell]) -> tuple[str, ...]:
    values = [cell_text(v) for v in raw]
    while values and not values[-1]:
        values.pop()
    return tuple(values)


def run_pass(
    config: Config,
    sheet: SheetConfig,
    journal: Journal,
    panels: Panels,
    options: PassOptions | None = None,
    backend: SheetBackend | None = None,
) -> PassReport:
    """One pass over one sheet. Panel failures are reported; sheet failures raise SheetError."""
    work = SheetPass(config, sheet, journal, panels, options or PassOptions(), backend)
    try:
        if not work.options.dry_run:
            work.prefetch()
        work.read()
        work.reconcile()
        needed = {work.panel_of(row) for row in work.rows if work._eligible(row) or row.text(ACTION_COLUMN)}
        unknown = {name for name in needed if name not in config.panels}
        catalogs = _load_catalogs(work, needed - unknown)
        planned = work.plan(catalogs)
        if work.options.dry_run:
            work.report.would_order = [request for _, request in planned]
            return work.report
        work.submit(planned)
        work.handle_actions(catalogs)
        work.refresh()
        work.write_back()
    finally:
        work.backend.close()
    return work.report


def _load_catalogs(work: SheetPass, names: set[str]) -> dict[str, dict[str, Service]]:
    def load(name: str) -> tuple[dict[str, Service], Balance]:
        client = work.panels.client(name)
        return {service.id: service for service in client.services()}, client.balance()

    catalogs: dict[str, dict[str, Service]] = {}
    work.asked_panels_after_read |= bool(names)
    for name, result in work.panels.each(sorted(names), load).items():
        if isinstance(result, PanelError):
            work._panel_failed(name, result)
            continue
        catalogs[name], work.report.balances[name] = result
    return catalogs
