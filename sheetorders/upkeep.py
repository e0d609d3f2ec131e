"""What a pass keeps up besides the rows, right before its write-back: the sheet's summary tab
(`summary_tab:`), and at most once a day the journal's compaction. Neither ever fails the pass:
a failure is a notice of the pass's report."""

from __future__ import annotations

from datetime import datetime

from sheetorders.config import SheetConfig
from sheetorders.errors import JournalError
from sheetorders.journal import Journal
from sheetorders.rows import SheetRead
from sheetorders.sheets.base import SheetBackend
from sheetorders.summary_tab import keep_summary


def keep_up(
    journal: Journal,
    sheet_key: str,
    sheet: SheetConfig,
    backend: SheetBackend,
    read: SheetRead,
    notices: list[str],
    now: datetime,
) -> None:
    """Call once the pass has journaled everything it did, before it writes the sheet back."""
    if sheet.summary_tab:
        pending = any(row.changes for row in read.rows)  # the write-back will write the sheet
        keep_summary(journal, sheet_key, sheet.summary_tab, backend, notices, pending=pending)
    compact_daily(journal, notices, now)


def compact_daily(journal: Journal, notices: list[str], now: datetime) -> None:
    """Compact the journal when its last compaction is a day old (see Ledger.compact_if_due)."""
    try:
        done = journal.ledger.compact_if_due(now)
    except JournalError as error:
        notices.append(f"the journal was not compacted: {error}")
        return
    if done is not None and (done.attempts or done.requests):
        notices.append(str(done))
