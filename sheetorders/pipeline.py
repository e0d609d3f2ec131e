"""One pass over one order sheet, in one direction:

prefetch → read → reconcile → catalogs → plan → execute (orders, refills, cancels) →
refresh → write back.

Each step is a function of its own module that takes values and returns values; this module
passes them along and counts what happened in the `PassReport`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sheetorders.budget import BudgetLimit, Clock, limits_for, stamp, utc_clock
from sheetorders.config import Config, PanelConfig, SheetConfig
from sheetorders.errors import (
    AmbiguousOrder,
    ExitCode,
    JournalError,
    NotEnoughFunds,
    PanelError,
    PanelUnavailable,
    SheetError,
    SheetTrackedElsewhere,
)
from sheetorders.execute import OrderSender, Placement, send_action
from sheetorders.journal import Journal, JournalMark, JournalRequest
from sheetorders.models import Balance, Catalog, Service
from sheetorders.outcomes import outcome_of
from sheetorders.panel import Panels
from sheetorders.plan import (
    Approval,
    Catalogs,
    Limits,
    Plan,
    PlannedOrder,
    Proposal,
    make_plan,
    plan_actions,
    proposal,
)
from sheetorders.reconcile import reconcile
from sheetorders.refresh import Answers, prefetch, refresh
from sheetorders.report import PanelSpend, PassReport, Tally
from sheetorders.rows import (
    CORE_OUTPUT_COLUMNS,
    SheetRead,
    SheetRow,
    fingerprint,
    read_sheet,
    rows_from_table,
)
from sheetorders.settle import RowsSettled, Settlement, settle, show, uncertain_rows
from sheetorders.sheets.base import SheetBackend, open_backend
from sheetorders.states import EntryState, RowStatus
from sheetorders.stopping import StopSignal
from sheetorders.template import SERVICES_REFRESH_EVERY, SERVICES_TAB, refresh_services_tab
from sheetorders.upkeep import compact_daily, keep_up
from sheetorders.writeback import cells_to_check, write_back

log = logging.getLogger("sheetorders.pipeline")

__all__ = [
    "CORE_OUTPUT_COLUMNS",
    "PassOptions",
    "PassReport",
    "SheetRow",
    "fingerprint",
    "rows_from_table",
    "run_pass",
]


@dataclass
class PassOptions:
    dry_run: bool = False
    max_spend: Decimal | None = None
    on_progress: Callable[[int, int], None] | None = None  # (done, total) while submitting
    stop: StopSignal | None = None  # once set, nothing new is sent; what was placed is written back
    take_over: bool = False  # a sheet another journal tracks becomes this journal's
    wait: bool = False  # wait for another process working on the same sheet, instead of refusing
    clock: Clock = utc_clock  # now, for budgets over days and months
    confirm: Callable[[Proposal], bool] | None = None  # asked before anything is sent; False: nothing is

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()


@dataclass
class _Pass:
    """What every step of one pass shares: where it works, and what it has found so far."""

    config: Config
    sheet: SheetConfig
    journal: Journal
    panels: Panels
    options: PassOptions
    report: PassReport
    key: str  # what the journal files this sheet under
    written_refs: set[str] = field(default_factory=set)  # entries the sheet shows after the write
    written_requests: set[int] = field(default_factory=set)
    asked_after_read: bool = False  # panels were asked something between reading and writing
    placed: list[tuple[int, str]] = field(default_factory=list)  # (row, order ID) placed in this pass
    journal_failure: JournalError | None = None  # the journal stopped recording during this pass
    refused: dict[str, dict[str, str]] = field(default_factory=dict)  # panel -> service ID -> why
    stopped_by: dict[str, str] = field(default_factory=dict)  # panel -> the answer that stopped its orders
    lost: list[SheetRow] = field(default_factory=list)  # rows the write-back could not find again
    resend: set[str] = field(default_factory=set)  # unresolved refs sent again under their key
    placed_again: dict[str, str] = field(default_factory=dict)  # ref -> how its absence was proven
    newly_uncertain: set[str] = field(default_factory=set)  # refs that became Uncertain in this pass

    @property
    def sending(self) -> bool:
        """Whether new requests may still go out: no stop asked for, and the journal records."""
        return not self.options.stopping and self.journal_failure is None

    @property
    def default_panel(self) -> str:
        return self.sheet.panel or self.config.default_panel

    @property
    def needs_approval(self) -> bool:
        return self.config.approval if self.sheet.approval is None else self.sheet.approval

    def note_failures(self, failures: dict[str, PanelError]) -> None:
        for panel, error in failures.items():
            self.report.panel_failed(panel, error)


def run_pass(
    config: Config,
    sheet: SheetConfig,
    journal: Journal,
    panels: Panels,
    options: PassOptions | None = None,
    backend: SheetBackend | None = None,
) -> PassReport:
    """One pass over one sheet. Panel failures are reported; sheet failures raise SheetError."""
    options = options or PassOptions()
    backend = backend or open_backend(
        sheet.source, sheet.worksheet, {**config.google, "columns": config.columns}
    )
    report = PassReport(sheet=sheet.label, dry_run=options.dry_run)
    work = _Pass(config, sheet, journal, panels, options, report, _sheet_key(journal, sheet, backend))
    try:
        with backend.hold(options.wait):
            return _run(work, backend)
    finally:
        backend.close()


def _run(work: _Pass, backend: SheetBackend) -> PassReport:
    if _nothing_to_do(work, backend):
        work.report.unchanged = True
        # Not read, but the journal still grows by a session a pass: its compaction stays due.
        compact_daily(work.journal, work.report.notices, work.options.clock())
        return work.report
    known = Answers() if work.options.dry_run else _prefetch(work)
    read = read_sheet(backend, work.config.columns, work.config.ignore_columns)
    owner = _owner(work, backend)
    approval = Approval(work.journal.approvals.seen(work.key)) if work.needs_approval else None
    _reconcile(work, read.rows, approval.seen if approval else {})
    _settle_before(work, read.rows)
    catalogs = _load_catalogs(work, _panels_needed(work, read.rows))
    plan = make_plan(
        read.rows,
        catalogs,
        Limits(_max_spend(work), work.report.balances, _budgets(work)),
        default_panel=work.default_panel,
        down_panels={*work.report.unreachable, *work.report.panel_errors},
        refused=work.refused,
        approval=approval,
        elsewhere=work.journal.unwritten_elsewhere(
            work.key, since=stamp(work.options.clock() - PLACED_ELSEWHERE)
        ),
    )
    _apply_plan(work, plan)
    if work.options.dry_run:
        work.report.would_order = [order.request for order in plan.orders]
        return work.report
    if plan.orders and not _confirmed(work, plan):
        work.report.declined = True
        work.report.notices.append("not confirmed: nothing was placed or written")
        return work.report
    if plan.orders or any(row.action for row in read.rows):
        _ready_to_send(work, backend, read, owner)
    _place(work, plan.orders)
    _still_uncertain(work, read.rows)
    _settle_after(work, read.rows, plan.orders)
    if work.sending:  # else: write back what was placed, without asking more
        try:
            _actions(work, read.rows, catalogs)
            _refresh(work, read.rows, known)
        except JournalError as error:  # what was placed is written back all the same
            work.journal_failure = error
    _keep_up(work, backend, read)
    work.report.add(Tally.STILL_UNCERTAIN, len(uncertain_rows(read.rows)))
    _write_back(work, backend, read)
    if work.journal_failure is not None:
        work.report.failure = JournalError(_journal_failure_message(work))
    else:
        _remember_approvals(work, plan)
        _keep_services_current(work, read, catalogs)
        _remember_if_idle(work, backend, read, plan)
    return work.report


def _keep_up(work: _Pass, backend: SheetBackend, read: SheetRead) -> None:
    """The summary tab and the journal's daily compaction (upkeep.py), once all is journaled."""
    if work.journal_failure is None:
        keep_up(work.journal, work.key, work.sheet, backend, read, work.report.notices, work.options.clock())


def _keep_services_current(work: _Pass, read: SheetRead, catalogs: Catalogs) -> None:
    """A template's Services tab brought up to date with the catalogs this pass loaded, at most
    once an hour, after the write-back (before the idle stamp, which then covers it); a failure
    is a notice: what was placed is journaled and written back already. A sheet without the
    template's `estimate` column is left alone (its Services tab, if any, is not asked for)."""
    if not catalogs or work.options.stopping or "estimate" not in read.columns:
        return
    try:
        if work.journal.ledger.due(f"services:{work.key}", work.options.clock(), SERVICES_REFRESH_EVERY):
            refresh_services_tab(work.sheet.source, work.config.google, catalogs)
    except Exception as error:  # any failure of that tab's read or write: never the pass's
        work.report.notices.append(f"the {SERVICES_TAB} tab was not brought up to date: {error}")


def _nothing_to_do(work: _Pass, backend: SheetBackend) -> bool:
    """The sheet is as the last pass left it, and that pass left nothing to do: no open order or
    refill, no row to place, no action to send (a new day for a budget aside: see below)."""
    if work.options.dry_run:
        return False
    stamp = work.journal.ledger.idle_stamp(work.key)
    return stamp is not None and stamp == _idle_stamp(work, backend)


def _idle_stamp(work: _Pass, backend: SheetBackend) -> str | None:
    """The sheet's content stamp, and what of the config the pass writes besides the rows: a
    summary tab configured since the sheet went idle is written by the next pass."""
    content = backend.content_stamp()
    if content is None:
        return None
    return f"{content} summary:{work.sheet.summary_tab}" if work.sheet.summary_tab else content


def _remember_if_idle(work: _Pass, backend: SheetBackend, read: SheetRead, plan: Plan) -> None:
    report, journal = work.report, work.journal
    idle = not (
        plan.orders
        or plan.held  # a budget may allow them tomorrow, the balance after a top-up
        or plan.marked(RowStatus.WAITING)
        or any(row.action.lower() in ("refill", "cancel") for row in read.rows)
        or report.unreachable
        or report.panel_errors
        or (report.problems and report.exit_code != ExitCode.OK)
        or journal.open_orders(work.key)
        or journal.open_refills(work.key)
        or journal.unresolved(work.key)  # a later order on the panel may settle them
    )
    journal.ledger.set_idle_stamp(work.key, _idle_stamp(work, backend) if idle else None)


def _confirmed(work: _Pass, plan: Plan) -> bool:
    ask = work.options.confirm
    return ask is None or ask(proposal(work.sheet.label, plan, work.report.balances))


def _ready_to_send(work: _Pass, backend: SheetBackend, read: SheetRead, owner: JournalMark | None) -> None:
    """Before anything is sent: every cell the write-back may need can be written, and the
    sheet says which journal tracks it (so that a second journal refuses it)."""
    backend.check_writable(cells_to_check(read, [row for row in read.rows if not row.is_blank]))
    if owner is None or backend.edit_rights_unknown:
        backend.claim(work.journal.mark)


def _sheet_key(journal: Journal, sheet: SheetConfig, backend: SheetBackend) -> str:
    """A named sheet is filed under its name (a moved file keeps its history); another under what
    it is, however it was spelled (entries filed under the spelling, as before, move there)."""
    if sheet.name:
        return sheet.journal_key
    for spelled in dict.fromkeys((sheet.journal_key, *backend.former_identities)):
        journal.move_sheet(spelled, backend.identity)
    return backend.identity


def _owner(work: _Pass, backend: SheetBackend) -> JournalMark | None:
    """The journal the sheet says tracks it; another journal's is refused (both would order)."""
    text = backend.owner()
    if text is None:
        return None
    mark = JournalMark.parse(text)
    if mark.journal == work.journal.id:
        return mark
    if work.options.take_over and not work.options.dry_run:
        backend.claim(work.journal.mark)
        work.report.notices.append(f"{backend.description} moved to this journal from {mark}")
        return JournalMark.parse(work.journal.mark)
    message = (
        f"{backend.description} is tracked by another journal: {mark}. Two journals on one sheet "
        "would both order its rows. Run it with that journal's config; or, to move the sheet to "
        "this journal deliberately (its rows' refs then count as unknown here), run once with --take-over"
    )
    if work.options.dry_run:
        work.report.notices.append(message)
        return mark
    raise SheetTrackedElsewhere(message)


def _budgets(work: _Pass) -> list[BudgetLimit]:
    return limits_for(work.journal, work.config, work.sheet, work.key, work.options.clock())


def _max_spend(work: _Pass) -> Decimal | None:
    return work.options.max_spend if work.options.max_spend is not None else work.config.max_spend


# --- before the plan ----------------------------------------------------------------


def _prefetch(work: _Pass) -> Answers:
    known = prefetch(work.journal, work.key, work.panels, work.config.panels)
    work.note_failures(known.failures)
    _remember_statuses(work, known)
    return known


def _remember_statuses(work: _Pass, answers: Answers) -> None:
    if answers.order_statuses:
        work.journal.set_order_statuses(answers.order_statuses, answers.order_charges)
    if answers.refill_statuses:
        work.journal.set_refill_statuses(answers.refill_statuses, work.key)


def _reconcile(work: _Pass, rows: list[SheetRow], reserved: Collection[str]) -> None:
    """`reserved`: refs the journal gave rows that have no order yet (approved rows)."""
    journal = work.journal
    found = reconcile(rows, journal.rows(work.key), journal.get, work.default_panel, journal.issued, reserved)
    if not work.options.dry_run:
        for transition in found.transitions:
            transition.apply(work.journal)
    work.written_refs |= found.written_refs
    work.report.add(Tally.RECOVERED, found.recovered)
    work.report.add(Tally.UNCERTAIN, found.uncertain)
    work.newly_uncertain |= found.uncertain_refs
    work.report.notices.extend(found.notices)


def _panels_needed(work: _Pass, rows: Iterable[SheetRow]) -> set[str]:
    needed = {row.panel_name(work.default_panel) for row in rows if row.awaits_order or row.action}
    return {name for name in needed if name in work.config.panels}


def _load_catalogs(work: _Pass, names: set[str]) -> dict[str, dict[str, Service]]:
    def load(name: str) -> tuple[Catalog, Balance]:
        client = work.panels.client(name)
        with ThreadPoolExecutor(max_workers=1) as other:  # both at once: one round trip, not two
            balance = other.submit(client.balance)
            return client.catalog(), balance.result()

    catalogs: dict[str, dict[str, Service]] = {}
    work.asked_after_read |= bool(names)
    for name, result in work.panels.each(sorted(names), load).items():
        if isinstance(result, PanelError):
            work.report.panel_failed(name, result)
            continue
        catalog, work.report.balances[name] = result
        catalogs[name] = {service.id: service for service in catalog.services}
        work.refused[name] = {entry.id: entry.reason for entry in catalog.refused if entry.id}
    return catalogs


def _apply_plan(work: _Pass, plan: Plan) -> None:
    report = work.report
    for mark in plan.marks:
        if mark.row.mark(mark.status, mark.message) and mark.status == RowStatus.INVALID:
            report.add(Tally.INVALID)  # a row that stays Invalid as it was is no new problem
        if mark.status == RowStatus.NEEDS_APPROVAL:
            report.add(Tally.NEEDS_APPROVAL)
    _apply_approvals(work, plan)
    for note in plan.notes:
        if note.row.note(note.message):
            report.add(Tally.SKIPPED)
        report.problems.append(f"row {note.row.number}: {note.message}")
    report.add(Tally.WAITING, plan.marked(RowStatus.WAITING))
    for held in plan.held:
        if held.row.panel_name(work.default_panel) in report.panel_errors:
            report.add(Tally.HELD_BACK)  # the panel refuses us (a wrong key): not the row's business
        else:
            _hold(work, held.row, held.reason)
    report.problems.extend(plan.problems)
    report.notices.extend(plan.notices)
    for panel, estimated in plan.estimated.items():
        spend = report.spend_on(panel)
        spend.estimated += estimated
        balance = report.balances.get(panel)
        if balance is not None:
            spend.currency = balance.currency


# --- settling what may have been placed ------------------------------------------------

SETTLE_ROUNDS = 3  # times a pass places again what was proven absent (each settled after)


# How long an order of another sheet that never reached it holds a new row asking the same
# (the sheet renamed or moved after a pass that could not write: found again soon, or never).
PLACED_ELSEWHERE = timedelta(days=7)

RESEND_WITHIN = 24 * 3600  # seconds a panel is trusted to remember an idempotency key


def _settle_before(work: _Pass, rows: list[SheetRow]) -> None:
    """Rows left Uncertain by earlier passes: sent again under their key (an add that carried
    one, lately), or settled from the order IDs around them; a row proven absent is placed in
    this pass."""
    uncertain = [] if work.options.dry_run else uncertain_rows(rows)
    if not uncertain:
        return
    entries = {row.ref: entry for row in uncertain if (entry := work.journal.get(row.ref)) is not None}
    keyed = _keyed_adds(work, {entry.panel for entry in entries.values()})
    for row in uncertain:
        if row.ref not in keyed:
            continue
        sent_to, routed_to = entries[row.ref].panel, row.panel_name(work.default_panel)
        if sent_to != routed_to:
            row.mark(
                RowStatus.UNCERTAIN,
                f"sent to panel {sent_to!r} without a clear answer, and now routed to panel "
                f"{routed_to!r}, where its key means nothing: it is not sent again. Check panel "
                f"{sent_to!r}: type the order's ID in order_id, or retry in status",
            )
        elif entries[row.ref].fingerprint == fingerprint(row):
            work.resend.add(row.ref)
            row.mark(None, None)
        else:
            row.mark(
                RowStatus.UNCERTAIN,
                "edited since it was sent without a clear answer: it cannot be sent again under "
                "the same key. Check the panel: type the order's ID in order_id, or retry in status",
            )
    _settle_rows(work, rows)


def _still_uncertain(work: _Pass, rows: list[SheetRow]) -> None:
    """Rows that were to be sent again under their key and were not (a stop, a budget, a
    panel that stopped taking orders): Uncertain again, as their journal entries are."""
    if not work.resend:
        return
    for row in rows:
        if row.ref in work.resend and not row.order_id and row.status != RowStatus.UNCERTAIN:
            entry = work.journal.get(row.ref)
            if entry is not None and entry.state.unresolved:
                row.mark_uncertain(entry.error or "sent before without a clear answer", entry.updated_at)


def _keyed_adds(work: _Pass, panels: set[str]) -> set[str]:
    """The refs of these panels' ambiguous adds that carried an idempotency key, sent recently
    enough for the panel to remember it, to a panel that still takes one."""
    now = time.time()
    found: set[str] = set()
    for name in panels:
        panel = work.config.panels.get(name)
        if panel is None or not panel.idempotency_field:
            continue
        for record in work.journal.probe_records(name):
            recent = record.sent_clock is not None and now - record.sent_clock < RESEND_WITHIN
            if record.state == EntryState.AMBIGUOUS and record.keyed and recent:
                found.add(record.ref)
    return found


def _settle_after(work: _Pass, rows: list[SheetRow], orders: list[PlannedOrder]) -> None:
    """Once this pass's orders bound their windows: settle the Uncertain rows, and place again
    those proven never made (by the normal path: journaled, the same rules), one at a time, so
    that each has the one before it as its lower bound and the one after as its upper bound;
    a few rounds, each settled, as placing them again bounds the others. A journal that fails
    here stops the sending, and what was placed is written back all the same."""
    if work.options.dry_run or not orders:
        return
    planned = {id(order.row): order for order in orders}
    try:
        for rounds_left in range(SETTLE_ROUNDS, -1, -1):
            if not work.sending:
                return
            again = []
            for row in _settle_rows(work, rows):
                order = planned.get(id(row))
                if rounds_left and order is not None and _may_place(work, order.request.panel):
                    again.append(order)
                else:  # placed by a later pass
                    row.note(f"{row.text('error')}; the next pass places it")
            if not again:
                return
            for order in again:
                _place(work, [order])
    except JournalError as error:
        work.journal_failure = work.journal_failure or error


def _may_place(work: _Pass, panel: str) -> bool:
    """Whether this pass may still send orders to `panel` (it did not stop taking them)."""
    return not work.report.panel_down(panel) and panel not in work.stopped_by


def _settle_rows(work: _Pass, rows: list[SheetRow]) -> list[SheetRow]:
    """Settle what can be of the journal's ambiguous adds on these rows' panels; the rows
    proven absent (their status cleared, to be placed)."""
    uncertain = [row for row in uncertain_rows(rows) if row.ref not in work.resend]
    if not uncertain or not work.sending:
        return []
    names = {entry.panel for row in uncertain if (entry := work.journal.get(row.ref)) is not None}
    work.asked_after_read = True
    settlement = settle(work.journal, work.panels, work.config, names)
    shown = show(settlement, uncertain)
    _count_settlement(work, settlement, shown)
    for row in shown.found:
        work.written_refs.add(row.ref)
    for row in shown.absent:
        work.placed_again[row.ref] = settlement.notes[row.ref]
    return shown.absent


def _probed(panel: PanelConfig) -> bool:
    """Whether the order-ID search settles this panel's unclear orders."""
    return panel.probe and not panel.idempotency_field


def _count_settlement(work: _Pass, settlement: Settlement, shown: RowsSettled) -> None:
    """This sheet's rows settled (another sheet's count in that sheet's pass)."""
    report = work.report
    for row in (*shown.found, *shown.absent):
        if row.ref in work.newly_uncertain:  # no new problem after all
            work.newly_uncertain.discard(row.ref)
            report.add(Tally.UNCERTAIN, -1)
    report.add(Tally.FOUND, len(shown.found))
    report.add(Tally.PROVEN_ABSENT, len(shown.absent))
    report.notices.extend(settlement.notices)
    for panel, error in settlement.failures.items():
        report.notices.append(f"panel {panel!r}: the order-ID search could not ask it ({error.message})")


# --- execute --------------------------------------------------------------------------


def _apply_approvals(work: _Pass, plan: Plan) -> None:
    for row, cost in plan.estimates:
        row.show_estimate(cost)
    for void in plan.voided:
        void.row.void_approval(void.message)
        work.report.add(Tally.NEEDS_APPROVAL)
        work.report.notices.append(f"row {void.row.number}: {void.message}")
    if not work.options.dry_run:
        for row in plan.approved:
            if not row.ref:
                row.assign_ref(work.journal.new_ref())


def _remember_approvals(work: _Pass, plan: Plan) -> None:
    """Once the sheet shows them (a row not written, or a pass that stopped before, records
    nothing): the approvals seen for the first time, and those an edit made void."""
    shown = [row for row in plan.approved if row not in work.lost]
    voided = [void.row.ref for void in plan.voided if void.row not in work.lost]
    if voided:
        work.journal.approvals.forget(voided)
    if shown:
        work.journal.approvals.record(work.key, {row.ref: fingerprint(row) for row in shown})


def _hold(work: _Pass, row: SheetRow, reason: str) -> None:
    """A valid row left for a later pass, and why; a row that becomes Held is a new problem
    (one that stays Held is not, even if the figures of its reason change)."""
    if row.status != RowStatus.HELD:
        work.report.add(Tally.NEWLY_HELD)
    row.mark(RowStatus.HELD, reason)
    work.report.add(Tally.HELD_BACK)


def _place(work: _Pass, orders: list[PlannedOrder]) -> None:
    work.asked_after_read |= bool(orders)
    sender = OrderSender(
        work.journal,
        work.panels,
        work.key,
        lambda panel: work.config.panel(panel).concurrency,
        work.options.on_progress,
        work.options.stop,
        lambda: stamp(work.options.clock()),
        lambda panel: balance.currency if (balance := work.report.balances.get(panel)) else "",
        idempotency_field=lambda panel: work.config.panel(panel).idempotency_field,
        resend=frozenset(work.resend),
        # Proven by this pass, or by an earlier one (of any sheet): a panel that then says the
        # order exists shows the proof wrong.
        proven_absent=frozenset(work.placed_again)
        | frozenset(work.journal.proven_absent(order.row.ref for order in orders if order.row.ref)),
        paced=lambda panel: _probed(work.config.panel(panel)),
        grace=lambda panel: work.config.panel(panel).probe_grace,
    )
    for placement in sender.send(orders):
        _count_placement(work, placement)
    work.journal_failure = work.journal_failure or sender.journal_failure


def _count_placement(work: _Pass, placement: Placement) -> None:
    report, row = work.report, placement.order.row
    if placement.not_sent is not None:
        report.add(Tally.NOT_SENT)
        row.mark(RowStatus.HELD, placement.not_sent)
    elif placement.skipped:
        _skipped(work, placement)
    elif placement.order_id is not None:
        report.add(Tally.ORDERED)
        work.placed.append((row.number, placement.order_id))
        if placement.ref in work.placed_again:
            row.note(work.placed_again.pop(placement.ref))
        if placement.journal_error is not None:
            report.problems.append(
                f"row {row.number}: order {placement.order_id} placed, {placement.journal_error}"
            )
        else:
            work.written_refs.add(placement.ref)
    elif placement.error is not None:
        _refused(work, placement, placement.error)
        if placement.contradicts:
            _proof_contradicted(work, placement)


def _skipped(work: _Pass, placement: Placement) -> None:
    """Not sent: an earlier answer of its panel stopped the orders to it in this pass."""
    panel = placement.order.request.panel
    if panel in work.report.panel_errors:  # the panel refuses us (a wrong key): not the row's business
        work.report.add(Tally.HELD_BACK)
        return
    why = work.report.unreachable.get(panel) or work.stopped_by.get(panel) or "it could not take more"
    reason = f"not sent: panel {panel!r} stopped taking orders in this pass ({why}); a later run places it"
    _hold(work, placement.order.row, reason)


def _proof_contradicted(work: _Pass, placement: Placement) -> None:
    """The panel's answer shows an order the search had proven never made: the search is not
    to be trusted on that panel."""
    panel = placement.order.request.panel
    work.placed_again.pop(placement.ref, None)
    reason = f"an order it proved never made was there after all (row {placement.order.row.number})"
    work.journal.set_probe_off(panel, reason)
    work.report.notices.append(
        f"panel {panel!r}: the order-ID search is turned off for this panel: {reason}. "
        f"`sheetorders uncertain --probe-on {panel}` turns it on again"
    )


def _refused(work: _Pass, placement: Placement, error: PanelError) -> None:
    """An error answer to an `add`: what it means comes from the outcome table."""
    report, row, panel = work.report, placement.order.row, placement.order.request.panel
    outcome = outcome_of(error)
    if isinstance(error, NotEnoughFunds):
        work.stopped_by.setdefault(panel, error.message)
        _hold(work, row, f"panel {panel!r} answered {error.message!r}; a later run places it")
        if placement.stopped_panel:
            report.notices.append(
                f"panel {panel!r} answered {error.message!r}: stopped ordering from it; "
                "the remaining rows are left for the next run"
            )
    elif isinstance(error, PanelUnavailable):  # surely not sent: the row says why
        _hold(
            work,
            row,
            f"not sent: panel {panel!r} could not be reached ({error.message}); a later run places it",
        )
    elif not isinstance(error, AmbiguousOrder) or placement.newly_uncertain:
        report.add(outcome.tally)
        if isinstance(error, AmbiguousOrder):
            work.newly_uncertain.add(placement.ref)
    if outcome.panel_failed:
        report.panel_failed(panel, error)
    if outcome.problem:
        report.problems.append(outcome.problem.format(row=row.number, message=error.message))


def _actions(work: _Pass, rows: list[SheetRow], catalogs: Catalogs) -> None:
    """Refills and cancels typed in the `action` column."""
    plan = plan_actions(rows, work.journal.requests(work.key), catalogs, default_panel=work.default_panel)
    for row, request in plan.shown:
        _show_request(work, row, request)
    for row, message in plan.errors:
        _action_error(work, row, message)
    for (panel, action), action_rows in plan.send.items():
        if work.report.panel_down(panel) or work.options.stopping:
            continue
        work.asked_after_read = True
        client = work.panels.client(panel)
        result = send_action(work.journal, client, work.key, panel, action, action_rows, lambda: work.sending)
        for row, message in result.errors:
            _action_error(work, row, message)
        for row, request in result.shown:
            _show_request(work, row, request)
        if result.failure is not None:
            work.report.panel_failed(panel, result.failure)


def _show_request(work: _Pass, row: SheetRow, request: JournalRequest) -> None:
    work.written_requests.add(request.id)
    row.request_ids.append(request.id)
    action = request.action
    if request.state == EntryState.ACCEPTED:
        if action == "refill":
            row.show_action(
                f"{action} sent", refill_id=request.result, refill_status=RowStatus.PENDING, error=None
            )
            work.report.add(Tally.REFILLS)
        else:
            row.show_action(f"{action} sent", status=RowStatus.CANCEL_REQUESTED, error=None)
            work.report.add(Tally.CANCELS)
    elif request.state == EntryState.REJECTED:
        row.show_action(f"{action} refused")
        _action_error(work, row, f"{action}: {request.error}")
    elif request.state.unresolved:
        row.show_action(f"{action} uncertain")
        _action_error(
            work, row, f"{action} may have been sent (interrupted); check the panel before typing it again"
        )
    else:
        work.written_requests.discard(request.id)
        row.show_action(None)


def _action_error(work: _Pass, row: SheetRow, message: str) -> None:
    if row.action_error(message):  # a problem the row already showed is not a new one
        work.report.add(Tally.ACTION_ERRORS)
    work.report.problems.append(f"row {row.number}, {message}")


# --- after execute ----------------------------------------------------------------------


def _refresh(work: _Pass, rows: list[SheetRow], known: Answers) -> None:
    result = refresh(
        rows,
        known,
        work.panels,
        default_panel=work.default_panel,
        usable=[name for name in work.config.panels if not work.report.panel_down(name)],
        new_refs=work.written_refs,
    )
    work.asked_after_read |= result.asked
    work.note_failures(result.answers.failures)
    _remember_statuses(work, result.answers)
    work.report.add(Tally.REFRESHED, result.refreshed)
    for panel, (charged, currency) in result.actual.items():
        spend: PanelSpend = work.report.spend_on(panel)
        spend.actual += charged
        spend.currency = currency or spend.currency


def _write_back(work: _Pass, backend: SheetBackend, read: SheetRead) -> None:
    try:
        written = write_back(
            backend,
            read.table,
            read.columns,
            read.rows,
            aliases=work.config.columns,
            may_have_moved=work.asked_after_read,
        )
    except SheetError as error:
        report = work.report
        placed = report.ordered + report.refills + report.cancels
        if work.journal_failure is not None:
            raise type(error)(f"{error} — {_journal_failure_message(work)}") from error
        if not placed:
            raise
        raise type(error)(
            f"{error} — {placed} order(s)/request(s) of this pass are kept in the journal; "
            "the next run writes them into the sheet (they are not sent again)"
        ) from error
    work.lost = written.lost
    for row in written.lost:
        work.written_refs.discard(row.ref)
        work.written_requests.difference_update(row.request_ids)
    work.report.notices.extend(written.notices)
    try:
        if work.written_refs:
            work.journal.mark_written(work.written_refs)
        if work.written_requests:
            work.journal.mark_requests_written(work.written_requests)
    except JournalError as error:
        if work.journal_failure is None:
            raise
        log.debug("not marked as written: %s", error)  # the next pass finds them by ref


def _journal_failure_message(work: _Pass) -> str:
    placed = ", ".join(f"{order_id} (row {row})" for row, order_id in work.placed) or "none"
    return (
        f"{work.journal_failure}: no more orders were sent. Orders placed in this pass: {placed}; "
        "they are not sent again (their IDs are in the sheet if it could be written)"
    )
