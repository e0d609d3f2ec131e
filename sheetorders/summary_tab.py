"""The summary tab (`summary_tab:` of a sheet): that sheet's spend per day and per status, from the
journal, as `sheetorders history --summary` sums it.

sheetorders owns the tab: it is created when missing and rewritten whole. A pass rewrites it only
when what it would show changed, so a pass with nothing new leaves the sheet (and an Excel file's
time and bytes) as they were. In Excel the tab, with a bar chart of spend per day, goes out in the
same save as the pass's results (or in a save of its own when the results need none); in Google
Sheets its values are written right after the results (no chart). A summary that cannot be
written is a notice: the results of the pass are never held up by it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from sheetorders.cells import Cell, cell_text
from sheetorders.errors import SheetError
from sheetorders.history import select, summary
from sheetorders.journal import Journal
from sheetorders.sheets.base import CellWrite, SheetBackend, SheetTable
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.sheets.google import GoogleSheetsBackend

BY_DAY, BY_STATUS = "Spend per day (UTC)", "Spend per status"
COLUMNS = ("orders", "spend", "of which estimated", "currency")
FIRST_DAY_ROW = 3  # the title, the header, then one row per day
CHART_ANCHOR = "H2"

Grid = list[list[Cell]]


def summary_grid(journal: Journal, sheet_key: str) -> Grid:
    """What the tab shows: spend per day, then per status, each with its total line, of every
    order of the sheet the journal accounts for (sent, placed or uncertain)."""
    orders = select(journal.ledger.history("", sheet=sheet_key))
    return [
        *_section(BY_DAY, "day", summary(orders, "day")),
        [],
        *_section(BY_STATUS, "status", summary(orders, "status")),
    ]


def _section(title: str, by: str, lines: list[dict[str, Any]]) -> Grid:
    rows: Grid = [[title], [by, *COLUMNS]]
    for line in lines:
        cost, estimated = Decimal(line["cost"]), Decimal(line["of_which_estimated"])
        rows.append([line["group"], line["orders"], cost, estimated, line["currency"]])
    return rows


def day_count(grid: Grid) -> int:
    """The day rows of the grid (the total line aside)."""
    end = next(i for i, row in enumerate(grid) if row and row[0] == "total")
    return end - (FIRST_DAY_ROW - 1)


def keep_summary(
    journal: Journal, sheet_key: str, title: str, backend: SheetBackend, notices: list[str], *, pending: bool
) -> None:
    """Bring tab `title` of the sheet `backend` works on up to date with the journal, when it is
    not already. `pending`: the pass's write-back is about to write the sheet (the summary then
    goes with it, or right after it); notices (a failure) are added to `notices`, maybe later."""
    try:
        grid = summary_grid(journal, sheet_key)
        if title.casefold() == backend_tab(backend).casefold():
            raise SheetError(f"summary_tab {title!r} is the order tab itself: name another tab")
        if isinstance(backend, ExcelBackend):
            _keep_excel(backend, title, grid, notices, pending=pending)
        elif isinstance(backend, GoogleSheetsBackend):
            _keep_google(backend, title, grid, notices, pending=pending)
        else:
            raise SheetError(f"{backend.description} has no other tabs to hold a summary")
    except Exception as error:  # the summary never costs the pass its results
        notices.append(_not_written(title, error))


def backend_tab(backend: SheetBackend) -> str:
    """The title of the tab the backend works on (after its read)."""
    if isinstance(backend, ExcelBackend | GoogleSheetsBackend):
        return backend.tab_title
    return backend.worksheet or ""


def _not_written(title: str, error: Exception) -> str:
    return f"summary tab {title!r} not brought up to date: {error} (the order results are not affected)"


def _guarded(title: str, notices: list[str], job: Callable[..., object]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            job(*args)
        except Exception as error:  # reported, never raised into the write of the results
            notices.append(_not_written(title, error))

    return run


# --- Excel ---------------------------------------------------------------------------


def _keep_excel(backend: ExcelBackend, title: str, grid: Grid, notices: list[str], *, pending: bool) -> None:
    current = backend.tab(title)
    if current is not None and _texts(_values(current)) == _texts(grid) and _has_chart(current, grid):
        return
    backend.before_save(_guarded(title, notices, lambda workbook: render(workbook, title, grid)))
    if not pending:
        backend.save()


def _values(sheet: Worksheet) -> list[list[object]]:
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def _has_chart(sheet: Worksheet, grid: Grid) -> bool:
    """A day to chart has its chart (openpyxl reads back the charts it wrote)."""
    return not day_count(grid) or bool(getattr(sheet, "_charts", None))


def render(workbook: Workbook, title: str, grid: Grid) -> Worksheet:
    """Replace tab `title` (made after the others when missing) with `grid` and its chart."""
    old = next((s for s in workbook.worksheets if s.title.casefold() == title.casefold()), None)
    index = workbook.sheetnames.index(old.title) if old is not None else len(workbook.sheetnames)
    if old is not None:
        title = old.title
        workbook.remove(old)
    sheet: Worksheet = workbook.create_sheet(title, index)
    for row in grid:
        sheet.append(row)
    for number, row in enumerate(grid, start=1):
        if row and (len(row) == 1 or row[0] in ("day", "status", "total")):
            for cell in sheet[number]:
                cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 22
    for letter in "BCDE":
        sheet.column_dimensions[letter].width = 14
    days = day_count(grid)
    if days:
        sheet.add_chart(_chart(sheet, days), CHART_ANCHOR)
    return sheet


def _chart(sheet: Worksheet, days: int) -> BarChart:
    chart = BarChart()
    chart.title = "Spend per day"
    chart.legend = None
    last = FIRST_DAY_ROW + days - 1
    spend = Reference(sheet, min_col=3, min_row=FIRST_DAY_ROW - 1, max_row=last)
    chart.add_data(spend, titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=FIRST_DAY_ROW, max_row=last))
    return chart


# --- Google Sheets ----------------------------------------------------------------------


def _keep_google(
    backend: GoogleSheetsBackend, title: str, grid: Grid, notices: list[str], *, pending: bool
) -> None:
    tab = backend.other_tab(title)
    write = _guarded(title, notices, lambda: _write_google(tab, grid))
    if pending:
        backend.after_write(write)
    else:
        write()


def _write_google(tab: GoogleSheetsBackend, grid: Grid) -> None:
    try:
        current = tab.read()
    except SheetError:
        if not tab.add_tab():
            raise
        current = SheetTable(headers=[])
    cells = changed_cells([current.headers, *current.rows], grid)
    if cells:
        tab.write(cells)


def changed_cells(current: Sequence[Sequence[Cell]], grid: Grid) -> list[CellWrite]:
    """The cells that make `current` show `grid` (None clears one)."""
    cells = []
    for number in range(1, max(len(current), len(grid)) + 1):
        old = current[number - 1] if number <= len(current) else []
        new = grid[number - 1] if number <= len(grid) else []
        for column in range(1, max(len(old), len(new)) + 1):
            was = old[column - 1] if column <= len(old) else None
            value = new[column - 1] if column <= len(new) else None
            if cell_text(was) != cell_text(value):
                cells.append(CellWrite(number, column, value))
    return cells


def _texts(grid: Sequence[Sequence[object]]) -> list[list[str]]:
    rows = [[cell_text(value) for value in row] for row in grid]
    for row in rows:
        while row and not row[-1]:
            row.pop()
    while rows and not rows[-1]:
        rows.pop()
    return rows
