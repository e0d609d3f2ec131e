"""Settle the journal's ambiguous adds by asking the panel (the rules are in probe.py).

For each panel with ambiguous adds: their windows from the journal, one `status` call per
100 IDs (at most `max_calls` a pass), the verdict, and the journal's transitions — a found
order settles its entry, a proven absence releases it (to be placed again, once), anything
else leaves a note on the entry for the person who settles it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sheetorders import probe
from sheetorders.config import Config, PanelConfig
from sheetorders.errors import JournalError, PanelError
from sheetorders.journal import Journal, ProbeRecord
from sheetorders.panel import Panels
from sheetorders.rows import SheetRow
from sheetorders.states import EntryState, RowStatus

MAX_CALLS = 20  # `status` calls per panel and pass, 100 IDs each


@dataclass
class Settlement:
    found: dict[str, str] = field(default_factory=dict)  # ref -> order ID
    absent: set[str] = field(default_factory=set)  # refs proven never made: released
    notes: dict[str, str] = field(default_factory=dict)  # ref -> what its row's error says
    notices: list[str] = field(default_factory=list)
    failures: dict[str, PanelError] = field(default_factory=dict)


def settle(
    journal: Journal, panels: Panels, config: Config, names: Iterable[str], max_calls: int = MAX_CALLS
) -> Settlement:
    """Settle what can be settled of the ambiguous adds of these panels (every sheet's)."""
    result = Settlement()
    for name in sorted(set(names)):
        panel = config.panels.get(name)
        if panel is None or not panel.probe:
            continue
        try:
            _settle_panel(journal, panels, panel, max_calls, result)
        except PanelError as error:
            result.failures[name] = error
    return result


def _settle_panel(
    journal: Journal, panels: Panels, panel: PanelConfig, max_calls: int, result: Settlement
) -> None:
    records = journal.probe_records(panel.name)
    # An add that carried an idempotency key is settled by sending it again under that key.
    targets = [record for record in records if record.state == EntryState.AMBIGUOUS and not record.keyed]
    if not targets:
        return
    off = journal.probe_off(panel.name)
    if off is not None:
        for target in targets:
            result.notes[target.ref] = (
                f"not settled: the order-ID search is off for panel {panel.name!r} ({off})"
            )
        return
    windows = probe.windows(records, targets, panel.probe_grace)
    ask, covered = probe.ids_to_ask(windows, max_calls * probe.IDS_PER_CALL)
    answers: dict[int, probe.Answer] = {}
    if ask:
        for order_id, item in panels.client(panel.name).statuses(ask).items():
            answer = probe.answer_of(item)
            if answer is not None and order_id.isascii() and order_id.isdigit():
                answers[int(order_id)] = answer
    verdict = probe.judge_all(records, answers, {int(order_id) for order_id in ask}, panel.probe_grace)
    _not_searched(targets, windows, covered, result)
    if verdict.misbehaves is not None:
        journal.set_probe_off(panel.name, verdict.misbehaves)
        result.notices.append(
            f"panel {panel.name!r}: the order-ID search is turned off for this panel: {verdict.misbehaves}. "
            f"`sheetorders uncertain --probe-on {panel.name}` turns it on again"
        )
    _apply(journal, verdict, result)


def _not_searched(
    targets: list[ProbeRecord], windows: list[probe.Window], covered: list[probe.Window], result: Settlement
) -> None:
    with_window = {window.ref: window for window in windows}
    searched = {window.ref for window in covered}
    for target in targets:
        window = with_window.get(target.ref)
        if window is None:
            result.notes[target.ref] = (
                "not settled: sent before the journal kept the moments the order-ID search needs; "
                "check the panel's order list"
            )
        elif window.low is None:
            result.notes[target.ref] = (
                "not settled: no earlier order of ours on this panel bounds the order-ID search; "
                "check the panel's order list"
            )
        elif target.ref not in searched:
            result.notes[target.ref] = (
                f"not settled yet: the IDs {window.span} are too many to search in one pass"
            )


def _apply(journal: Journal, verdict: probe.Verdict, result: Settlement) -> None:
    """The verdict into the journal; an entry another process changed meanwhile is left as is."""
    for found in verdict.found:
        try:
            journal.settle(found.ref, found.order_id, found.note, by="search")
        except JournalError:
            continue
        result.found[found.ref] = found.order_id
        result.notes[found.ref] = found.note
    for absent in verdict.absent:
        try:
            journal.release(absent.ref, by="search")
        except JournalError:
            continue
        result.absent.add(absent.ref)
        result.notes[absent.ref] = absent.note
    for still in verdict.open:
        result.notes.setdefault(still.ref, still.note)
    journal.set_probe_notes(
        {
            ref: note
            for ref, note in result.notes.items()
            if ref not in result.found and ref not in result.absent
        }
    )


# --- into the sheet's rows -------------------------------------------------------------

UNTIL_THEN = (
    "Until then: if the order is on the panel, type its ID in order_id; if it is not, type retry in status"
)


@dataclass
class RowsSettled:
    """What a settlement changed in one sheet's rows."""

    found: list[SheetRow] = field(default_factory=list)
    absent: list[SheetRow] = field(default_factory=list)  # to place again (their status is cleared)


def uncertain_rows(rows: Iterable[SheetRow]) -> list[SheetRow]:
    return [row for row in rows if row.ref and not row.order_id and row.status == RowStatus.UNCERTAIN]


def show(settlement: Settlement, rows: Iterable[SheetRow]) -> RowsSettled:
    """Found orders into their rows, proven absences cleared for placing, notes on the rest."""
    shown = RowsSettled()
    for row in uncertain_rows(rows):
        note = settlement.notes.get(row.ref)
        if row.ref in settlement.found:
            row.record_order(settlement.found[row.ref])
            row.note(note or "found by the order-ID search")
            shown.found.append(row)
        elif row.ref in settlement.absent:
            row.mark(None, note)
            shown.absent.append(row)
        elif note is not None:
            row.mark(RowStatus.UNCERTAIN, f"{note}. {UNTIL_THEN}" if "retry" not in note else note)
    return shown
