"""Excel workbooks (.xlsx, .xlsm) through openpyxl, edited in place.

The workbook is loaded once in full (not read-only) and the same object is
modified and saved by `write`, so the user's formatting is kept: fonts, fills,
column widths, freeze panes, data validation, conditional formatting, number
formats, formulas, rich text, merged cells, tables, comments and the other
worksheets. Saving goes to a temporary file in the same folder that then
replaces the original, so a crash never leaves half a workbook.

What openpyxl cannot keep (shapes, text boxes, sparklines, slicers, form and
ActiveX controls: `xlsx_losses`) a save would delete: such a workbook is refused
before anything is saved. Charts are kept, pictures with Pillow installed. Data
validations and conditional formats that Excel 2010+ stores as extensions (a
dropdown listing another tab) are put back on save (`xlsx_extensions`). VBA
macros in an .xlsm are kept (`keep_vba`). Formulas are stored as text; their
cached results are dropped, and Excel recalculates them when it next opens the
file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Mapping
from copy import copy
from datetime import datetime
from typing import IO, Any, cast

from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.cell.rich_text import CellRichText
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Font
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.formula import ArrayFormula
from openpyxl.worksheet.worksheet import Worksheet

from sheetorders.errors import SheetError, SheetNotWritable
from sheetorders.sheets.base import Cell, CellWrite, SheetTable, a1, cells_are
from sheetorders.sheets.files import LocalFileBackend, is_url, read_unlocked
from sheetorders.sheets.xlsx_extensions import Extensions, extensions_of, keeping
from sheetorders.sheets.xlsx_losses import has_pictures, lost_on_save

# Legacy .xls files and encrypted .xlsx files are OLE compound documents, not zips.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_COLUMN = 16_384  # XFD


def _plain(value: Any) -> Cell:
    """A cell value as the table gives it: rich text and array formulas as plain text, "" as None."""
    if isinstance(value, CellRichText):
        value = str(value)
    elif isinstance(value, ArrayFormula):
        value = value.text
    return None if value == "" else value


def _grid(sheet: Worksheet) -> list[list[Cell]]:
    """Every row of `sheet` up to the last one with a value, each up to its last value.

    Walks the cells openpyxl holds instead of `iter_rows`, which would create an empty
    cell at every gap (slow, and one stray formatted cell far away would make it huge).
    """
    by_row: dict[int, dict[int, Cell]] = {}
    for (row, column), cell in sheet._cells.items():
        value = _plain(cell.value)
        if value is not None:
            by_row.setdefault(row, {})[column] = value
    grid: list[list[Cell]] = []
    for row in range(1, max(by_row, default=0) + 1):
        columns = by_row.get(row, {})
        values: list[Cell] = [None] * max(columns, default=0)
        for column, value in columns.items():
            values[column - 1] = value
        grid.append(values)
    return grid


class ExcelBackend(LocalFileBackend):
    """One worksheet of a local .xlsx or .xlsm workbook."""

    @classmethod
    def accepts(cls, source: str) -> bool:
        return not is_url(source) and source.lower().endswith((".xlsx", ".xlsm"))

    def __init__(self, source: str, worksheet: str | None = None, options: Mapping[str, Any] | None = None):
        super().__init__(source, worksheet, options)
        self._workbook: Workbook | None = None
        self._sheet: Worksheet | None = None
        self._header_count = 0
        self._extensions: Extensions = {}  # what openpyxl drops, put back on save
        self._losses: list[str] = []  # what openpyxl drops and a save would delete
        self._has_pictures = False
        self._before_save: list[Callable[[Workbook], None]] = []

    def read(self) -> SheetTable:
        stamp, data = read_unlocked(self.path)
        try:
            workbook = load_workbook(
                io.BytesIO(data),
                keep_vba=self.path.suffix.lower() == ".xlsm",
                data_only=False,
                rich_text=True,
            )
        except Exception as exc:  # openpyxl fails on bad input in many ways; all mean the same here
            hint = (
                " (it looks like an old .xls file or a password-protected workbook)"
                if data.startswith(OLE_MAGIC)
                else f": {exc}"
            )
            raise SheetError(
                f"{self.path} is not a valid Excel workbook (.xlsx/.xlsm) or is damaged{hint}"
            ) from exc
        if workbook.vba_archive is not None:
            # openpyxl keeps the macros in a zip open for appending over a BytesIO; when both
            # are garbage-collected together the zip may try to finish itself on the closed
            # buffer. A read-only copy has nothing to finish.
            buffer = workbook.vba_archive.fp
            assert isinstance(buffer, io.BytesIO)  # openpyxl builds it over one
            workbook.vba_archive.close()
            workbook.vba_archive = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
        sheet = self._pick_sheet(workbook)

        rows = _grid(sheet)
        headers = rows[0] if rows else []

        self._workbook, self._sheet = workbook, sheet
        self._stamp = stamp
        self._extensions = extensions_of(data)
        self._losses = lost_on_save(data)
        self._has_pictures = has_pictures(data)
        self._header_count = len(headers)
        # A merged range holds its value in its first cell; new columns go after all of it.
        merged = max((r.max_col for r in sheet.merged_cells.ranges), default=0)
        return SheetTable(headers=headers, rows=rows[1:], used_width=merged)

    def _pick_sheet(self, workbook: Workbook) -> Worksheet:
        if not workbook.worksheets:
            raise SheetError(f"{self.path} has no worksheet")
        if self.worksheet is None:
            # The first tab, not the active one: which tab was active depends on where the
            # user last clicked before saving.
            return workbook.worksheets[0]
        names = workbook.sheetnames
        # Excel tab names are unique ignoring case, so a case-insensitive match is unambiguous.
        name = next((n for n in names if n == self.worksheet), None) or next(
            (n for n in names if n.casefold() == self.worksheet.casefold()), None
        )
        if name is None:
            tabs = ", ".join(repr(n) for n in names)
            raise SheetError(f"{self.path} has no tab {self.worksheet!r}; its tabs are: {tabs}")
        sheet = workbook[name]
        if not isinstance(sheet, Worksheet):
            raise SheetError(f"tab {name!r} of {self.path} is a chart, not a worksheet")
        return sheet

    def _owner_property(self) -> str:
        assert self._sheet is not None
        return f"sheetorders.journal {self._sheet.title}"

    def owner(self) -> str | None:
        """A custom document property per tab holds the mark of the journal tracking it."""
        if self._workbook is None:
            self.read()
        assert self._workbook is not None
        props = self._workbook.custom_doc_props  # type: ignore[attr-defined]  # not in the stubs
        name = self._owner_property()
        return next((str(p.value) for p in props.props if p.name == name), None)

    def claim(self, owner: str) -> None:
        if self._workbook is None:
            self.read()
        workbook = self._workbook
        assert workbook is not None
        name = self._owner_property()
        props = workbook.custom_doc_props  # type: ignore[attr-defined]  # not in the stubs
        props.props = [p for p in props.props if p.name != name]
        props.append(StringProperty(name=name, value=owner))
        self._refuse_losses()
        self._check_before_save()
        self._save(keeping(workbook.save, self._extensions))

    def check_writable(self, cells: Iterable[tuple[int, int]] = ()) -> None:
        """Besides the file (see LocalFileBackend), refuse cells past Excel's last column (XFD)
        and cells covered by a merged range, whose value Excel keeps in the range's first cell
        (openpyxl refuses to set them; the first cell itself may be written)."""
        super().check_writable()
        if self._sheet is None:
            self.read()
        self._refuse_losses()
        self._check_cells((row, column) for row, column in cells)

    def _refuse_losses(self) -> None:
        """Refuse to save a workbook holding what the save would delete."""
        if self._losses:
            raise SheetNotWritable(
                f"{self.path} holds what saving it here would delete ({', '.join(self._losses)}): "
                "nothing was written. Move them to another workbook, or delete them, and run again"
            )

    def _check_cells(self, cells: Iterable[tuple[int, int]]) -> None:
        sheet = self._sheet
        assert sheet is not None
        outside: list[tuple[int, int]] = []
        merged: list[tuple[int, int]] = []
        covered = {
            cell
            for span in sheet.merged_cells.ranges
            for cell in span.cells
            if cell != (span.min_row, span.min_col)
        }
        for row, column in cells:  # streamed: a pass's cells are many, the problems few
            if row < 1 or column < 1:
                raise ValueError(f"cells are numbered from 1, not ({row}, {column})")
            if column > MAX_COLUMN:
                outside.append((row, column))
            elif covered and (row, column) in covered:
                merged.append((row, column))
        outside = sorted(set(outside))
        merged = sorted(set(merged))
        if outside:
            raise SheetNotWritable(
                f"{self.description}: {cells_are(outside)} past Excel's last column XFD: "
                "clear the far-right cells, or add the output columns further left"
            )
        if merged:
            named = [a1(row, column) for row, column in merged[:5]]
            ranges = sorted({str(r) for r in sheet.merged_cells.ranges for name in named if name in r})
            raise SheetNotWritable(
                f"{self.description}: {cells_are(merged)} merged ({', '.join(ranges)}), and results "
                "go there: unmerge them or move the output columns"
            )

    def write(self, cells: list[CellWrite]) -> None:
        if self._workbook is None:
            self.read()
        self._refuse_losses()
        self._check_before_save()
        self._check_cells((write.row, write.column) for write in cells)
        workbook, sheet = self._workbook, self._sheet
        assert workbook is not None and sheet is not None
        # A cell's font reads as a proxy; copying it gives the Font itself.
        header_font = cast(Font, copy(sheet.cell(1, self._header_count).font)) if self._header_count else None
        for write in cells:
            cell = sheet.cell(write.row, write.column)
            value = write.value
            if isinstance(value, str):
                cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
                # The setter makes "=..." a formula and "#N/A" an error; the tool only writes data.
                cell.data_type = "s"
            elif isinstance(value, datetime) and value.tzinfo is not None:
                # Excel has no time zones: show the time as the user's clock reads it.
                cell.value = value.astimezone().replace(tzinfo=None)
            else:
                cell.value = value
            if (
                write.row == 1
                and write.column > self._header_count
                and value is not None
                and header_font is not None
                and not cell.has_style
            ):
                cell.font = copy(header_font)

        self._save(keeping(workbook.save, self._extensions))
        self._header_count = max(
            self._header_count,
            max((w.column for w in cells if w.row == 1 and w.value is not None), default=0),
        )

    @property
    def tab_title(self) -> str:
        """The title of this backend's tab, as the workbook spells it."""
        if self._sheet is None:
            self.read()
        assert self._sheet is not None
        return self._sheet.title

    def tab(self, title: str) -> Worksheet | None:
        """Another worksheet of the workbook as last read (tab names count without their case);
        None when there is none of that name."""
        if self._workbook is None:
            self.read()
        assert self._workbook is not None
        found = next((s for s in self._workbook.worksheets if s.title.casefold() == title.casefold()), None)
        return found if isinstance(found, Worksheet) else None

    def before_save(self, prepare: Callable[[Workbook], None]) -> None:
        """Have `prepare` change the workbook right before every later save of this backend (the
        pass's write-back, `save`): another tab the tool keeps goes out in the same save."""
        self._before_save.append(prepare)

    def save(self) -> None:
        """Save the workbook as it is (what `before_save` prepares), writing no cell of this tab."""
        self.write([])

    def _save(self, write: Callable[[IO[bytes]], object]) -> None:
        if self._workbook is not None:
            for prepare in self._before_save:
                prepare(self._workbook)
        super()._save(write)
        if self._has_pictures:
            # openpyxl reads a loaded picture's bytes once, as it saves: a second save of the same
            # workbook object fails. The next save (the write-back after the mark) starts anew.
            self.read()

    def close(self) -> None:
        self._workbook = self._sheet = None
