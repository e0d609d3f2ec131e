"""Excel workbooks (.xlsx, .xlsm) through openpyxl, edited in place.

A read streams the tab's values in openpyxl's read-only mode (`xlsx_read`); the
first write (or claim) loads the same bytes in full, and that object is
modified and saved by `write`, so the user's formatting is kept: fonts, fills,
column widths, freeze panes, data validation, conditional formatting, number
formats, formulas, rich text, merged cells, tables, comments and the other
worksheets. Saving goes to a temporary file in the same folder that then
replaces the original, so a crash never leaves half a workbook.

What openpyxl cannot keep and a write therefore drops: images, charts, shapes
and other drawings, slicers, sparklines, form and ActiveX controls. Data
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
from typing import IO, Any, TypeVar, cast

from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Font
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet.cell_range import CellRange
from openpyxl.worksheet.worksheet import Worksheet

from sheetorders.errors import SheetError, SheetNotWritable
from sheetorders.sheets.base import CellWrite, SheetTable, a1, cells_are
from sheetorders.sheets.files import LocalFileBackend, is_url, read_unlocked
from sheetorders.sheets.xlsx_extensions import Extensions, extensions_of, keeping
from sheetorders.sheets.xlsx_read import grid, merged_ranges, open_read_only

# Legacy .xls files and encrypted .xlsx files are OLE compound documents, not zips.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_COLUMN = 16_384  # XFD
T = TypeVar("T")


def _owner_property(title: str) -> str:
    return f"sheetorders.journal {title}"


def _custom_property(workbook: Workbook, name: str) -> str | None:
    props = workbook.custom_doc_props  # type: ignore[attr-defined]  # not in the stubs
    return next((str(p.value) for p in props.props if p.name == name), None)


class ExcelBackend(LocalFileBackend):
    """One worksheet of a local .xlsx or .xlsm workbook."""

    @classmethod
    def accepts(cls, source: str) -> bool:
        return not is_url(source) and source.lower().endswith((".xlsx", ".xlsm"))

    def __init__(self, source: str, worksheet: str | None = None, options: Mapping[str, Any] | None = None):
        super().__init__(source, worksheet, options)
        self._book: Workbook | None = None  # the editable workbook, see `_workbook`
        self._book_sheet: Worksheet | None = None
        self._data: bytes | None = None  # the file as last read
        self._title: str | None = None  # the tab's title, once read
        self._merged: list[CellRange] = []
        self._mark: str | None = None  # the journal's mark the tab carries
        self._header_count = 0
        self._extensions: Extensions = {}  # what openpyxl drops, put back on save
        self._before_save: list[Callable[[Workbook], None]] = []

    def read(self) -> SheetTable:
        """The tab's values, read-only: the editable workbook is loaded when a write needs it."""
        stamp, data = read_unlocked(self.path)
        workbook = self._opened(data, open_read_only)
        try:
            sheet = cast(ReadOnlyWorksheet, self._pick_sheet(workbook))
            rows, merged = self._opened(data, lambda _: (grid(sheet), merged_ranges(sheet)))
            mark = _custom_property(workbook, _owner_property(sheet.title))
        finally:
            workbook.close()
        self._workbook = self._sheet = None
        self._data, self._title, self._merged, self._mark = data, sheet.title, merged, mark
        headers = rows[0] if rows else []
        self._stamp = stamp
        self._extensions = extensions_of(data)
        self._header_count = len(headers)
        # A merged range holds its value in its first cell; new columns go after all of it.
        width = max((r.max_col for r in merged), default=0)
        return SheetTable(headers=headers, rows=rows[1:], used_width=width)

    def _opened(self, data: bytes, load: Callable[[bytes], T]) -> T:
        """`load(data)`, any failure of openpyxl on bad input taken for a damaged workbook."""
        try:
            return load(data)
        except SheetError:
            raise
        except Exception as exc:  # openpyxl fails on bad input in many ways; all mean the same here
            hint = (
                " (it looks like an old .xls file or a password-protected workbook)"
                if data.startswith(OLE_MAGIC)
                else f": {exc}"
            )
            raise SheetError(
                f"{self.path} is not a valid Excel workbook (.xlsx/.xlsm) or is damaged{hint}"
            ) from exc

    def _editable(self, data: bytes) -> Workbook:
        workbook = load_workbook(
            io.BytesIO(data),
            keep_vba=self.path.suffix.lower() == ".xlsm",
            data_only=False,
            rich_text=True,
        )
        if workbook.vba_archive is not None:
            # openpyxl keeps the macros in a zip open for appending over a BytesIO; when both
            # are garbage-collected together the zip may try to finish itself on the closed
            # buffer. A read-only copy has nothing to finish.
            buffer = workbook.vba_archive.fp
            assert isinstance(buffer, io.BytesIO)  # openpyxl builds it over one
            workbook.vba_archive.close()
            workbook.vba_archive = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
        return workbook

    @property
    def _workbook(self) -> Workbook | None:
        """The editable workbook of the version read, loaded in full the first time something
        needs it (a write, a claim); None before a read."""
        if self._book is None and self._data is not None:
            book = self._opened(self._data, self._editable)
            self._book_sheet = cast(Worksheet, self._pick_sheet(book))
            self._book = book
        return self._book

    @_workbook.setter
    def _workbook(self, workbook: Workbook | None) -> None:
        self._book = workbook

    @property
    def _sheet(self) -> Worksheet | None:
        """The tab in the editable workbook (loading it, see `_workbook`)."""
        return self._book_sheet if self._workbook is not None else None

    @_sheet.setter
    def _sheet(self, sheet: Worksheet | None) -> None:
        self._book_sheet = sheet

    def _pick_sheet(self, workbook: Workbook) -> Worksheet | ReadOnlyWorksheet:
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
        if not isinstance(sheet, Worksheet | ReadOnlyWorksheet):
            raise SheetError(f"tab {name!r} of {self.path} is a chart, not a worksheet")
        return sheet

    def owner(self) -> str | None:
        """A custom document property per tab holds the mark of the journal tracking it."""
        if self._title is None:
            self.read()
        return self._mark

    def claim(self, owner: str) -> None:
        if self._workbook is None:
            self.read()
        workbook = self._workbook
        assert workbook is not None
        assert self._title is not None
        name = _owner_property(self._title)
        props = workbook.custom_doc_props  # type: ignore[attr-defined]  # not in the stubs
        props.props = [p for p in props.props if p.name != name]
        props.append(StringProperty(name=name, value=owner))
        self._check_before_save()
        self._save(keeping(workbook.save, self._extensions))
        self._mark = owner

    def check_writable(self, cells: Iterable[tuple[int, int]] = ()) -> None:
        """Besides the file (see LocalFileBackend), refuse cells past Excel's last column (XFD)
        and cells covered by a merged range, whose value Excel keeps in the range's first cell
        (openpyxl refuses to set them; the first cell itself may be written)."""
        super().check_writable()
        if self._title is None:
            self.read()
        self._check_cells((row, column) for row, column in cells)

    def _check_cells(self, cells: Iterable[tuple[int, int]]) -> None:
        outside: list[tuple[int, int]] = []
        merged: list[tuple[int, int]] = []
        covered = {
            cell for span in self._merged for cell in span.cells if cell != (span.min_row, span.min_col)
        }
        for row, column in set(cells):
            if row < 1 or column < 1:
                raise ValueError(f"cells are numbered from 1, not ({row}, {column})")
            if column > MAX_COLUMN:
                outside.append((row, column))
            elif (row, column) in covered:
                merged.append((row, column))
        outside.sort()
        merged.sort()
        if outside:
            raise SheetNotWritable(
                f"{self.description}: {cells_are(outside)} past Excel's last column XFD: "
                "clear the far-right cells, or add the output columns further left"
            )
        if merged:
            named = [a1(row, column) for row, column in merged[:5]]
            ranges = sorted({str(r) for r in self._merged for name in named if name in r})
            raise SheetNotWritable(
                f"{self.description}: {cells_are(merged)} merged ({', '.join(ranges)}), and results "
                "go there: unmerge them or move the output columns"
            )

    def write(self, cells: list[CellWrite]) -> None:
        if self._workbook is None:
            self.read()
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

    def close(self) -> None:
        self._workbook = self._sheet = None
        self._data = self._title = None
