"""Write every changed cell back in one write, to the rows where they are now.

People may move, insert or sort rows while orders go out: when the sheet changed since it
was read, each changed row is found again (by its ref, else by its content) before anything
is written, and a row that cannot be found is left for the next pass (the journal keeps it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sheetorders.columns import ACTION_COLUMN, OUTPUT_COLUMNS, map_headers
from sheetorders.errors import SheetError
from sheetorders.rows import CORE_OUTPUT_COLUMNS, SheetRow, content_key, rows_from_table
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
        targets = _relocate(backend, columns, changed, aliases)
    columns, header_cells = _with_output_columns(table, columns, changed)
    cells = list(header_cells)
    for row in changed:
        target = targets.get(row.number)
        if target is None:
            result.lost.append(row)
            result.notices.append(
                f"row {row.number} was not found again after the sheet was edited during the pass; "
                "its results will be written by the next pass"
            )
            continue
        cells.extend(CellWrite(target, columns[name] + 1, value) for name, value in row.changes.items())
    backend.write(cells)
    return result


def _with_output_columns(
    table: SheetTable, columns: Mapping[str, int], changed: Sequence[SheetRow]
) -> tuple[dict[str, int], list[CellWrite]]:
    """The columns with the output columns this write needs, and the header cells for new ones."""
    columns = dict(columns)
    width = len(table.headers)
    needed = set(CORE_OUTPUT_COLUMNS) | {name for row in changed for name in row.changes}
    header_cells = []
    for name in (*OUTPUT_COLUMNS, ACTION_COLUMN):
        if name in needed and name not in columns:
            columns[name] = width
            width += 1
            header_cells.append(CellWrite(1, columns[name] + 1, name))
    return columns, header_cells


def _relocate(
    backend: SheetBackend, columns: Mapping[str, int], changed: Sequence[SheetRow], aliases: Mapping[str, str]
) -> dict[int, int]:
    """Where each changed row is now, after someone edited the sheet during the pass.

    `columns`: the columns as read; a header row that changed since makes every target unsure."""
    fresh = backend.read()
    fresh_columns = map_headers(fresh.headers, aliases)
    if fresh_columns != dict(columns):
        raise SheetError(
            f"{backend.description}: the header row changed during the pass; nothing was written, "
            "the journal keeps every result for the next pass"
        )
    fresh_rows = rows_from_table(fresh, fresh_columns)
    by_ref = {row.ref: row.number for row in fresh_rows if row.ref}
    by_content: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for row in fresh_rows:
        by_content[content_key(row.raw)].append(row.number)
    targets = {}
    for row in changed:
        ref = row.read_ref
        if ref and ref in by_ref:
            targets[row.number] = by_ref[ref]
            continue
        numbers = by_content.get(content_key(row.raw))
        if numbers:
            targets[row.number] = numbers.pop(0)
    return targets
