"""`sheetorders doctor`: the journal against the sheets it tracks, and its compaction.

Reads every configured sheet once (nothing is written to it) and names where the sheet and the
journal disagree about placed orders: an order the journal placed and wrote whose row is gone or
shows another order ID, and a row holding a ref this journal issued but does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sheetorders.config import Config, SheetConfig
from sheetorders.errors import SheetordersError
from sheetorders.journal import Journal, JournalRow
from sheetorders.rows import SheetRow, read_sheet
from sheetorders.sheets.base import open_backend
from sheetorders.states import EntryState


@dataclass
class SheetCheck:
    sheet: str
    disagreements: list[str] = field(default_factory=list)
    error: str | None = None  # the sheet could not be read

    def as_dict(self) -> dict[str, object]:
        return {"sheet": self.sheet, "disagreements": self.disagreements, "error": self.error}


def check_sheets(config: Config, journal: Journal) -> list[SheetCheck]:
    """Each configured sheet compared with what the journal says of it."""
    return [_check_sheet(config, sheet, journal) for sheet in config.sheets]


def _check_sheet(config: Config, sheet: SheetConfig, journal: Journal) -> SheetCheck:
    found = SheetCheck(sheet.label)
    try:
        with open_backend(
            sheet.source, sheet.worksheet, {**config.google, "columns": config.columns}
        ) as backend:
            rows = read_sheet(backend, config.columns, config.ignore_columns).rows
            key = sheet.journal_key if sheet.name else backend.identity
    except SheetordersError as error:
        found.error = str(error)
        return found
    known = set(journal.approvals.seen(key))  # refs given to approved rows not placed yet
    found.disagreements = disagreements(rows, journal.rows(key), journal, known)
    return found


def disagreements(
    rows: list[SheetRow], entries: dict[str, JournalRow], journal: Journal, known: set[str]
) -> list[str]:
    """Where the sheet's rows and the journal's entries of that sheet tell different stories;
    `known`: refs the journal gave rows without an entry of theirs."""
    by_ref = {row.ref: row for row in rows if row.ref}
    found = []
    for ref, entry in sorted(entries.items(), key=lambda item: item[1].row_number or 0):
        if entry.state != EntryState.ACCEPTED or not entry.written:
            continue  # not in the sheet yet: the next pass writes it (doctor lists those apart)
        row = by_ref.get(ref)
        if row is None:
            found.append(
                f"order {entry.order_id} (ref {ref}, placed from row {entry.row_number}) is in no row "
                "of the sheet: the row was deleted, or its ref cleared"
            )
        elif row.order_id != (entry.order_id or ""):
            shown = repr(row.order_id) if row.order_id else "no order ID"
            found.append(
                f"row {row.number} (ref {ref}) shows {shown}; "
                f"the journal placed order {entry.order_id} for it"
            )
    for ref, row in by_ref.items():
        if ref not in entries and ref not in known and journal.issued(ref) and journal.get(ref) is None:
            found.append(f"row {row.number} holds ref {ref}, which this journal issued but has no entry for")
    return found
