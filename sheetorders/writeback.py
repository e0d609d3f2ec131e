"""Write every changed cell back in one write, to the rows where they are now.

People may move, insert or sort rows while orders go out: when the sheet changed since it
was read, each changed row is found again (by its ref, else by its content) before anything
is written, and a row that cannot be found is left for the next pass (the journal keeps it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sheetorders.columns import ACTION_COLUMN, OUTPUT_COLUMNS, map_headers
from sheetorders.errors import RowsNotFound, SheetError
from sheetorders.rows import CORE_OUTPUT_COLUMNS, SheetRead, SheetRow, content_key, rows_from_table
from sheetorders.sheets.base import CellWrite, SheetBackend, SheetTable


@dataclass
class WrittenBack:
    lost: list[SheetRow] = field(default_factory=list)  # not found again: written by the next pass
    notices: list[str] = field(default_factory=list)


def write_back(
    backend: SheetBackend,
    table: SheetTable,
    columns: Mapping[str, int],
    rows: Sequence[SheetRow],
    *,
    aliases: Mapping[str, str],
    may_have_moved: bool,
) -> WrittenBack:
    """`aliases`: the config's header mapping; `may_have_moved`: panels were asked something
    after the read, so people had time to edit (a backend whose change check is free checks anyway)."""
    result = WrittenBack()
    changed = [row for row in rows if row.changes]
    if not changed:
        return result
    targets: dict[int, int] = {row.number: row.number for row in changed}
    if (backend.change_check_is_free or may_have_moved) and backend.changed_since_read():
        # New output columns then go after the columns in use now: one added meanwhile is kept.
        targets, table = _relocate(backend, columns, changed, aliases)
    columns, header_cells = _with_output_columns(table, columns, changed)
    cells = list(header_cells)
    written: dict[int, SheetRow] = {}
    for row in changed:
        target = targets.get(row.number)
        if target is None:
            _lost(result, row)
            continue
        written[target] = row
        cells.extend(CellWrite(target, columns[name] + 1, value) for name, value in row.changes.items())
    try:
        backend.write(cells)
    except RowsNotFound as error:  # moved while the write was retried: every other row was written
        for target in error.rows:
            if target in written:
                _lost(result, written[target])
    return result


def _lost(result: WrittenBack, row: SheetRow) -> None:
    result.lost.append(row)
    result.notices.append(
        f"row {row.number} was not found again after the sheet was edited during the pass; "
        "its results will be written by the next pass"
    )


def cells_to_check(read: SheetRead, rows: Iterable[SheetRow]) -> Iterator[tuple[int, int]]:
    """Every cell a write-back of these rows may need: header cells of new output columns, and
    the rows' output cells (checked before anything is sent, see SheetBackend.check_writable).
    Made as they are checked: a big sheet's are too many to keep."""
    names = (*OUTPUT_COLUMNS, ACTION_COLUMN)
    columns, header_cells = _appended(read.table, read.columns, names)
    yield from ((cell.row, cell.column) for cell in header_cells)
    indexes = [columns[name] + 1 for name in names]
    yield from ((row.number, index) for row in rows for index in indexes)


def _with_output_columns(
    table: SheetTable, columns: Mapping[str, int], changed: Sequence[SheetRow]
) -> tuple[dict[str, int], list[CellWrite]]:
    """The columns with the output columns this write needs, and the header cells for new ones."""
    needed = set(CORE_OUTPUT_COLUMNS) | {name for row in changed for name in row.changes}
    return _appended(table, columns, [name for name in (*OUTPUT_COLUMNS, ACTION_COLUMN) if name in needed])


def _appended(
    table: SheetTable, columns: Mapping[str, int], names: Iterable[str]
) -> tuple[dict[str, int], list[CellWrite]]:
    """`columns` with those of `names` the sheet lacks, after the last column in use (never over
    a user's unlabeled cells), and the header cells that name them."""
    columns = dict(columns)
    width = max(table.used_width, len(table.headers))
    header_cells = []
    for name in names:
        if name not in columns:
            columns[name] = width
            width += 1
            header_cells.append(CellWrite(1, columns[name] + 1, name))
    return columns, header_cells


def _relocate(
    backend: SheetBackend, columns: Mapping[str, int], changed: Sequence[SheetRow], aliases: Mapping[str, str]
) -> tuple[dict[int, int], SheetTable]:
    """Where each changed row is now, after someone edited the sheet during the pass, and the
    sheet as it is now.

    `columns`: the columns as read; a header row that changed since makes every target unsure."""
    fresh = backend.read()
    fresh_columns = map_headers(fresh.headers, aliases)
    if fresh_columns != dict(columns):
        raise SheetError(
            f"{backend.description}: the header row changed during the pass; nothing was written, "
            "the journal keeps every result for the next pass"
        )
    fresh_rows = rows_from_table(fresh, fresh_columns)
    by_ref: dict[str, list[SheetRow]] = defaultdict(list)
    by_content: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for row in fresh_rows:
        if row.ref:
            by_ref[row.ref].append(row)
        by_content[content_key(row.raw)].append(row.number)
    targets: dict[int, int] = {}
    for row in changed:
        holders = by_ref.get(row.read_ref) if row.read_ref else None
        if holders:
            # A ref in several rows (one copied with it): the one still as it was read; of copies
            # alike, the first (the next pass tells the owner from the copy by its order ID).
            if len(holders) > 1:
                holders = [held for held in holders if content_key(held.raw) == content_key(row.raw)][:1]
            if len(holders) == 1:
                targets[row.number] = holders[0].number
            continue
        numbers = by_content.get(content_key(row.raw))
        if numbers:
            targets[row.number] = numbers.pop(0)
    # Two rows found in one place: neither is sure (the journal keeps both for the next pass).
    found = Counter(targets.values())
    return {row: target for row, target in targets.items() if found[target] == 1}, fresh
