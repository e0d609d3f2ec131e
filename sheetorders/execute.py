"""Carry out a plan: the one place that sends orders, refills and cancels and journals them.

Each request is journaled before it leaves and its answer after; what an error answer
means comes from `outcomes.OUTCOMES`. Results come back as values (`Placement`,
`ActionResult`) for the pass to count and show.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from sheetorders.errors import ActiveOrderExists, AmbiguousOrder, JournalError, PanelError, PanelUnavailable
from sheetorders.journal import Journal, JournalRequest, OrderDetails
from sheetorders.models import ItemError
from sheetorders.outcomes import outcome_of
from sheetorders.pacing import GRACE, paced
from sheetorders.panel import BATCH_SIZE, PanelClient, Panels
from sheetorders.plan import PlannedOrder
from sheetorders.rows import SheetRow, fingerprint, order_target
from sheetorders.states import EntryState
from sheetorders.stopping import StopSignal
from sheetorders.store import utc_now

Progress = Callable[[int, int], None]


@dataclass
class Placement:
    """What became of one planned order."""

    order: PlannedOrder
    ref: str = ""
    order_id: str | None = None
    error: PanelError | None = None
    newly_uncertain: bool = False
    journal_error: JournalError | None = None  # the journal could not record this request or its answer
    skipped: bool = False  # not sent: its panel had stopped taking orders in this pass
    not_sent: str | None = None  # not sent, and why: a stop was asked for, or the journal failed
    stopped_panel: bool = False  # its answer stopped the orders to its panel
    contradicts: bool = False  # the panel's answer shows an earlier proof of absence was wrong

    @property
    def placed(self) -> bool:
        return self.order_id is not None


STOPPED = "not sent: sheetorders was stopped before sending it; the next run places it"
KEYED_ATTEMPTS = 4  # sends of one add under one idempotency key, when the answers are unclear
NO_JOURNAL = "not sent: the journal could not record it; the next run places it"


@dataclass
class OrderSender:
    """Sends the planned orders of one sheet, panels in parallel, each with its own concurrency.

    A stop request, or a journal that cannot record, ends the sending at once for every panel:
    requests already in flight finish, nothing new leaves.
    """

    journal: Journal
    panels: Panels
    sheet_key: str
    concurrency: Callable[[str], int]
    on_progress: Progress | None = None
    stop: StopSignal | None = None
    now: Callable[[], str] = utc_now  # the time an order leaves, as the journal stores it
    currency: Callable[[str], str] = lambda panel: ""  # a panel's currency, for the history
    idempotency_field: Callable[[str], str | None] = lambda panel: None  # a panel's client-key field
    paced: Callable[[str], bool] = lambda panel: False  # adds leave as pacing.paced says
    grace: Callable[[str], float] = lambda panel: GRACE  # a panel's probe_grace, for pacing
    resend: frozenset[str] = frozenset()  # unresolved refs to send again under their key
    proven_absent: frozenset[str] = frozenset()  # refs the order-ID search proved never made
    sleep: Callable[[float], None] = time.sleep
    journal_failure: JournalError | None = None
    _done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, orders: Sequence[PlannedOrder]) -> list[Placement]:
        by_panel: dict[str, list[PlannedOrder]] = defaultdict(list)
        for order in orders:
            by_panel[order.request.panel].append(order)
        total = len(orders)
        if self.on_progress:
            self.on_progress(0, total)
        with ThreadPoolExecutor(max_workers=max(1, len(by_panel))) as pool:
            results = list(pool.map(lambda name: self._send_panel(name, by_panel[name], total), by_panel))
        return [placement for placements in results for placement in placements]

    def _send_panel(self, panel: str, orders: list[PlannedOrder], total: int) -> list[Placement]:
        client = self.panels.client(panel)
        stop = threading.Event()

        def place(order: PlannedOrder) -> Placement:
            try:
                reason = self._halted()
                if reason:
                    return Placement(order, not_sent=reason)
                if stop.is_set():
                    return Placement(order, skipped=True)
                return self._place(client, order, stop)
            finally:
                self._tick(total)

        workers = self.concurrency(panel)
        if not self.paced(panel):
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"add-{panel}") as pool:
                return list(pool.map(place, orders))
        anchored, unresolved = self.journal.has_orders(panel), self.journal.unresolved_prices(panel)
        return paced(
            orders, place, workers, f"add-{panel}", anchored, grace=self.grace(panel), unresolved=unresolved
        )

    def _halted(self) -> str | None:
        """Why nothing more may be sent, if so."""
        if self.journal_failure is not None:
            return NO_JOURNAL
        if self.stop is not None and self.stop.is_set():
            return STOPPED
        return None

    def _journal_failed(self, error: JournalError) -> None:
        with self._lock:
            self.journal_failure = self.journal_failure or error

    def _tick(self, total: int) -> None:
        with self._lock:
            self._done += 1
            if self.on_progress:
                self.on_progress(self._done, total)

    def _place(self, client: PanelClient, order: PlannedOrder, stop: threading.Event) -> Placement:
        row = order.row
        ref = row.ref or self.journal.new_ref()
        try:
            if ref in self.resend:
                self.journal.resend(ref)
            else:
                self._begin(order, ref)
        except JournalError as error:
            self._journal_failed(error)
            return Placement(order, journal_error=error, not_sent=NO_JOURNAL)
        row.assign_ref(ref)
        reason = self._halted()  # asked while the journal was writing
        if reason:
            if ref in self.resend:  # its first sending may still have made an order
                self._record(ref, EntryState.AMBIGUOUS, error=f"sent before without a clear answer; {reason}")
            else:
                self._record(ref, EntryState.NOT_SENT, error=reason)
            return Placement(order, ref, not_sent=reason)
        try:
            order_id = self._add(client, order, ref)
        except PanelError as error:
            return self._failed(order, ref, error, stop)
        try:
            holder = self.journal.accept_add(ref, order.request.panel, order_id)
        except JournalError as failure:
            self._journal_failed(failure)
            row.record_order(order_id)  # the sheet is the other place the ID is kept
            return Placement(order, ref, order_id, journal_error=failure)
        if holder is not None:
            return self._failed(order, ref, _held_elsewhere(order, order_id, holder), stop)
        row.record_order(order_id)
        return Placement(order, ref, order_id)

    def _begin(self, order: PlannedOrder, ref: str) -> None:
        row, request = order.row, order.request
        self.journal.begin_add(
            ref=ref,
            sheet=self.sheet_key,
            fingerprint=fingerprint(row),
            panel=request.panel,
            service=request.service.id,
            link=order_target(request.fields) or None,
            row_number=row.number,
            estimated_cost=str(request.estimated_cost),
            sent_at=self.now(),
            details=OrderDetails(request.service.name, request.quantity, self.currency(request.panel)),
            keyed=self.idempotency_field(request.panel) is not None,
        )

    def _add(self, client: PanelClient, order: PlannedOrder, ref: str) -> str:
        """Send the add; to a panel that takes a client key, with the ref as its key, and sent
        again under that key while the answer is unclear (the panel answers a key it has seen
        with the order it made for it), unless a stop was asked for meanwhile."""
        request = order.request
        key_field = self.idempotency_field(request.panel)
        if key_field is None:
            return client.add(request.service.id, request.fields, go_on=self._may_send)
        fields = {**request.fields, key_field: ref}
        unclear: list[AmbiguousOrder] = []  # this add's tries without a clear answer

        def attempt() -> str:
            if unclear and self._halted():  # asked for during the wait before this try
                raise unclear[-1]
            try:
                return client.add(request.service.id, fields, go_on=self._may_send)
            except AmbiguousOrder as error:
                unclear.append(error)
                raise
            except PanelError as error:
                if not unclear:
                    raise
                # A refusal (or no send at all) now says nothing of what the unclear try made.
                raise _unclear_after_all(
                    error, "to the add sent again under its key: an earlier try may have made it"
                ) from error

        retrying = Retrying(
            stop=stop_after_attempt(KEYED_ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=4),
            retry=retry_if_exception(
                lambda error: any(error is try_ for try_ in unclear) and not self._halted()
            ),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _may_send(self) -> bool:
        return self._halted() is None

    def _record(
        self,
        ref: str,
        state: EntryState,
        order_id: str | None = None,
        error: str | None = None,
        lingers: bool = False,
    ) -> JournalError | None:
        """Journal an answer; a journal that cannot is remembered, and stops the sending."""
        try:
            self.journal.finish_add(ref, state, order_id=order_id, error=error, lingers=lingers)
        except JournalError as failure:
            self._journal_failed(failure)
            return failure
        return None

    def _failed(self, order: PlannedOrder, ref: str, error: PanelError, stop: threading.Event) -> Placement:
        contradicts = ref in self.proven_absent and isinstance(error, ActiveOrderExists)
        if contradicts:
            # Proven never made, yet the panel has an active order for its link: the proof was wrong.
            error = _unclear_after_all(
                error,
                "to the add the order-ID search had proven never made: the earlier attempt may have made it",
            )
        elif ref in self.resend and not isinstance(error, AmbiguousOrder):
            # A refusal of the second sending says nothing of what the first one made.
            error = _unclear_after_all(
                error, "to the add sent again under its key: the first sending may have made it"
            )
        elif isinstance(error, PanelUnavailable) and (reason := self._halted()):
            # Its retries ended at the stop: the panel processed none of its tries.
            journal_error = self._record(ref, EntryState.NOT_SENT, error=reason)
            return Placement(order, ref, not_sent=reason, journal_error=journal_error)
        outcome = outcome_of(error)
        placement = Placement(order, ref, error=error, contradicts=contradicts)
        row = order.row
        if isinstance(error, AmbiguousOrder):
            placement.newly_uncertain = row.mark_uncertain(error.message, utc_now())
        elif outcome.row_status is not None:
            row.mark(outcome.row_status, outcome.row_message.format(message=error.message))
        lingers = isinstance(error, AmbiguousOrder) and error.lingers
        placement.journal_error = self._record(ref, outcome.add_state, error=error.message, lingers=lingers)
        if outcome.stops_panel:
            placement.stopped_panel = not stop.is_set()
            stop.set()
        return placement


def _held_elsewhere(order: PlannedOrder, order_id: str, holder: tuple[int, str]) -> AmbiguousOrder:
    """An answer naming an order the journal holds for another row (a panel that answers a
    repeated link with its running order, a proxy that replays an answer): not this row's."""
    number, sheet = holder
    return AmbiguousOrder(
        f"the panel answered with order {order_id}, which is the order of row {number} ({sheet}): "
        "this row's may not have been made, or the answer is wrong",
        panel=order.request.panel,
        action="add",
        lingers=False,
    )


def _unclear_after_all(error: PanelError, why: str) -> AmbiguousOrder:
    """A refusal that leaves it open whether an earlier sending made the order."""
    return AmbiguousOrder(
        f"the panel answered {error.message!r} {why}", panel=error.panel, action=error.action, lingers=True
    )


# --- refills and cancels -------------------------------------------------------------


@dataclass
class ActionResult:
    shown: list[tuple[SheetRow, JournalRequest]] = field(default_factory=list)
    errors: list[tuple[SheetRow, str]] = field(default_factory=list)
    failure: PanelError | None = None  # the panel failed: nothing more was sent to it


def send_action(
    journal: Journal,
    client: PanelClient,
    sheet_key: str,
    panel: str,
    action: str,
    rows: list[SheetRow],
    may_send: Callable[[], bool] = lambda: True,
) -> ActionResult:
    """Send `action` (refill or cancel) for these rows' orders, 100 a call, each journaled;
    `may_send` is asked before each call (a stop request ends the sending)."""
    result = ActionResult()
    for start in range(0, len(rows), BATCH_SIZE):
        if not may_send():
            break
        batch = rows[start : start + BATCH_SIZE]
        ids = {
            row.order_id: journal.begin_request(
                sheet=sheet_key, ref=row.ref or None, panel=panel, order_id=row.order_id, action=action
            )
            for row in batch
        }
        try:
            answers = client.refills(list(ids)) if action == "refill" else client.cancel(list(ids))
        except PanelError as error:
            _batch_failed(journal, action, batch, ids, error, result)
            if outcome_of(error).panel_failed:
                result.failure = error
                return result
            continue
        for row in batch:
            answer = answers.get(row.order_id, ItemError(row.order_id, "no answer for this order"))
            if isinstance(answer, ItemError):
                journal.finish_request(ids[row.order_id], EntryState.REJECTED, error=answer.message)
            else:
                shown = str(answer) if action == "refill" else ("1" if answer else "0")
                journal.finish_request(ids[row.order_id], EntryState.ACCEPTED, result=shown)
        sent = set(ids.values())
        by_order = {row.order_id: row for row in batch}
        result.shown.extend(
            (by_order[request.order_id], request)
            for request in journal.requests(sheet_key)
            if request.id in sent
        )
    return result


def _batch_failed(
    journal: Journal,
    action: str,
    batch: list[SheetRow],
    ids: dict[str, int],
    error: PanelError,
    result: ActionResult,
) -> None:
    state = outcome_of(error).request_state
    for row in batch:
        journal.finish_request(ids[row.order_id], state, error=error.message)
        if state == EntryState.AMBIGUOUS:
            message = (
                f"{action} may have been sent (no clear answer: {error.message}); "
                f"check the panel before typing {action} again"
            )
            result.errors.append((row, message))
        elif state == EntryState.REJECTED:
            result.errors.append((row, f"{action}: {error.message}"))
