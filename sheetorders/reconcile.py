"""Bring the journal's knowledge into the rows before anything new is sent.

An order placed by a killed process is written back, never placed again; a ref copied into
another row is not that order; an entry the sheet no longer shows is re-attached to its row
by content. The journal's state changes this calls for are returned as values, and the pass
applies them (a dry run does not).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from sheetorders.journal import Journal, JournalRow
from sheetorders.rows import SheetRow, fingerprint, order_target
from sheetorders.states import RETRY, EntryState, RowStatus
from sheetorders.validate import same_target_key


@dataclass(frozen=True)
class Settle:
    """A person typed the ID of an unresolved order: that settles it."""

    ref: str
    order_id: str

    def apply(self, journal: Journal) -> None:
        journal.settle(self.ref, self.order_id, "typed in by the user")


@dataclass(frozen=True)
class Release:
    """A person typed retry: the unresolved order may be sent again."""

    ref: str

    def apply(self, journal: Journal) -> None:
        journal.release(self.ref)


@dataclass(frozen=True)
class MarkInterrupted:
    ref: str

    def apply(self, journal: Journal) -> None:
        journal.mark_interrupted(self.ref)


Transition = Settle | Release | MarkInterrupted


@dataclass
class Reconciliation:
    transitions: list[Transition] = field(default_factory=list)
    written_refs: set[str] = field(default_factory=set)  # entries the sheet shows once written back
    notices: list[str] = field(default_factory=list)
    recovered: int = 0
    uncertain: int = 0
    uncertain_refs: set[str] = field(default_factory=set)  # the rows newly marked Uncertain


def reconcile(
    rows: Sequence[SheetRow],
    journal_rows: Mapping[str, JournalRow],
    lookup: Callable[[str], JournalRow | None],
    default_panel: str,
    issued: Callable[[str], bool | None] = lambda ref: None,
    reserved: Collection[str] = (),
) -> Reconciliation:
    """`journal_rows`: the sheet's entries by ref; `lookup` finds an entry of another sheet;
    `issued` tells whether this journal issued a ref (None: the ref does not say); `reserved`
    are refs this journal gave rows that have no order yet."""
    result = Reconciliation()
    by_ref: dict[str, list[SheetRow]] = defaultdict(list)
    for row in rows:
        if row.ref:
            by_ref[row.ref].append(row)
    for ref, same_ref in by_ref.items():
        entry = journal_rows.get(ref) or lookup(ref)
        if (
            entry is not None
            and ref not in journal_rows
            and not (entry.state == EntryState.ACCEPTED or entry.state.unresolved)
        ):
            # Another sheet's ref of an order that was never placed (copied with the row): this
            # row is not that entry, and orders under a ref of its own.
            for row in same_ref:
                row.ignore_ref()
            continue
        for row in _owners(ref, same_ref, entry, result):
            if entry is None and ref in reserved:
                continue
            if entry is None and issued(ref) is False:
                _foreign(row)
            else:
                _apply_entry(row, entry, result)
    unmatched = [
        entry
        for entry in journal_rows.values()
        if not entry.written
        and entry.ref not in by_ref
        and (entry.state == EntryState.ACCEPTED or entry.state.unresolved)
    ]
    if unmatched:
        _rematch(rows, unmatched, default_panel, result)
    return result


def _owners(
    ref: str, rows: list[SheetRow], entry: JournalRow | None, result: Reconciliation
) -> list[SheetRow]:
    """The rows that own `ref`; the others were copied and are marked so."""
    if len(rows) == 1:
        return rows
    owner = next((r for r in rows if entry and r.order_id and r.order_id == entry.order_id), None)
    if owner is None and entry is not None and entry.order_id and not any(r.order_id for r in rows):
        owner = rows[0]  # copied before its order ID reached the sheet: the first gets it
    for row in rows:
        if row is not owner and not row.order_id:
            others = ", ".join(str(other.number) for other in rows if other is not row)
            row.mark(
                RowStatus.UNCERTAIN,
                f"ref {ref} is also in row {others}: this row was "
                "copied; clear its ref cell to order it as a new row",
            )
            row.ignore_ref()
    return [owner] if owner else []


def _foreign(row: SheetRow) -> None:
    if not row.order_id and row.status.lower() != RETRY:
        row.mark(
            RowStatus.UNCERTAIN,
            f"ref {row.ref} was issued by another sheetorders journal: that journal may have ordered "
            "this row. Check the panel; type retry in status to order this row here",
        )


def _apply_entry(row: SheetRow, entry: JournalRow | None, result: Reconciliation) -> None:
    status = row.status.lower()
    if entry is None:
        if not row.order_id and status != RETRY:
            row.mark(
                RowStatus.UNCERTAIN,
                f"the journal has no record of ref {row.ref}: the order may exist. "
                "Check the panel; type retry in status to order this row",
            )
    elif entry.state == EntryState.ACCEPTED:
        if not row.order_id and entry.order_id:
            row.record_order(entry.order_id)
            result.recovered += 1
        result.written_refs.add(entry.ref)
    elif entry.state.unresolved:
        _apply_unresolved(row, entry, result)
    elif entry.state == EntryState.RELEASED and not row.order_id and row.status == RowStatus.UNCERTAIN:
        # Proven never made since the row was shown Uncertain (by a pass over another sheet, say).
        row.mark(None, "the earlier attempt made no order (the order-ID search proved it): placed again")
    elif entry.state == EntryState.REJECTED and not row.awaits_order:
        if row.status != RowStatus.REJECTED:
            row.mark(RowStatus.REJECTED, entry.error or "")
        result.written_refs.add(entry.ref)


def _apply_unresolved(row: SheetRow, entry: JournalRow, result: Reconciliation) -> None:
    if row.order_id:
        result.transitions.append(Settle(entry.ref, row.order_id))
        row.clear_error()
        result.written_refs.add(entry.ref)
    elif row.status.lower() == RETRY:
        result.transitions.append(Release(entry.ref))
        row.mark(None, None)
    else:
        if entry.state == EntryState.SENDING:
            result.transitions.append(MarkInterrupted(entry.ref))
        detail = entry.error or "interrupted while waiting for the panel"
        if row.mark_uncertain(detail, entry.updated_at):
            result.uncertain += 1
            result.uncertain_refs.add(entry.ref)


def _rematch(
    rows: Sequence[SheetRow], entries: list[JournalRow], default_panel: str, result: Reconciliation
) -> None:
    """Attach orders whose ref never reached the sheet to their rows, by content."""
    candidates = [row for row in rows if not row.ref and not row.order_id and not row.is_blank]
    prints = {id(row): fingerprint(row) for row in candidates}
    taken: set[int] = set()
    for entry in sorted(entries, key=lambda e: e.created_at):
        free = [row for row in candidates if id(row) not in taken]
        match = next((row for row in free if prints[id(row)] == entry.fingerprint), None)
        if match is None:
            match = next((row for row in free if _same_target(row, entry, default_panel)), None)
            if match is not None:
                result.notices.append(
                    f"row {match.number}: matched to the order sent from row {entry.row_number} "
                    f"(ref {entry.ref}) although the row was edited since"
                )
        if match is None:
            what = f"order {entry.order_id}" if entry.order_id else "a possible order"
            result.notices.append(
                f"{what} (ref {entry.ref}, service {entry.service}, link {entry.link}) was sent from "
                f"row {entry.row_number} but no such row is in the sheet any more"
            )
            continue
        taken.add(id(match))
        match.assign_ref(entry.ref)
        _apply_entry(match, entry, result)


def _same_target(row: SheetRow, entry: JournalRow, default_panel: str) -> bool:
    """The same service for the same link (or username): an edited row is still that order.
    A match on empty values is no match."""
    target = order_target(row.cells)
    if not target or target != (entry.link or ""):
        return False
    key = same_target_key(row.panel_name(default_panel), row.text("service"), target)
    return key == (entry.panel, entry.service, target)
