"""One tab of an .xlsx/.xlsm read the fast way, for a pass that may write nothing.

openpyxl's read-only mode streams the values out of the worksheet's XML without building a cell
object for each cell: about half the time and a fraction of the memory of a full load. It leaves
out what a full load gives besides the values; of that, the pass needs the merged ranges (no
result goes into a covered cell), found here in the XML after the cells.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import IO, Any, cast

from openpyxl import load_workbook
from openpyxl.cell.rich_text import CellRichText
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet.cell_range import CellRange
from openpyxl.worksheet.formula import ArrayFormula

from sheetorders.cells import Cell

_CHUNK = 1 << 20
_MERGE = re.compile(rb"<(?:[\w.-]+:)?mergeCell\b[^>]*?\bref=\"([^\"]+)\"")


def open_read_only(data: bytes) -> Workbook:
    """The workbook in `data`, read-only (whatever openpyxl raises on a damaged file)."""
    return load_workbook(io.BytesIO(data), read_only=True, data_only=False)


def plain(value: Any) -> Cell:
    """A cell value as the table gives it: rich text and array formulas as plain text, "" as None."""
    if isinstance(value, CellRichText):
        value = str(value)
    elif isinstance(value, ArrayFormula):
        value = value.text
    return None if value == "" else value


def grid(sheet: ReadOnlyWorksheet) -> list[list[Cell]]:
    """Every row of `sheet` up to the last one with a value, each up to its last value (the
    dimension the file states is not trusted: some writers get it wrong)."""
    source = cast(Any, sheet)  # the stubs give it Worksheet's signatures
    source.reset_dimensions()
    rows: list[list[Cell]] = []
    last = 0
    for values in source.iter_rows(values_only=True):
        row = [plain(value) for value in values]
        while row and row[-1] is None:
            row.pop()
        rows.append(row)
        if row:
            last = len(rows)
    del rows[last:]
    return rows


def merged_ranges(sheet: ReadOnlyWorksheet) -> list[CellRange]:
    """The merged ranges of `sheet`, from its XML (they follow the cells there)."""
    with cast(Any, sheet)._get_source() as source:  # the worksheet part of the archive
        return [CellRange(ref.decode()) for ref in _merge_refs(source)]


def _merge_refs(source: IO[bytes]) -> Iterator[bytes]:
    tail = b""
    for chunk in iter(lambda: source.read(_CHUNK), b""):
        text = tail + chunk
        found = text.find(b"mergeCell")
        if found >= 0:
            yield from _MERGE.findall(text[max(0, found - 64) :] + source.read())
            return
        tail = text[-64:]
