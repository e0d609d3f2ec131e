"""CSV files: the whole file is the one worksheet, every value a string.

The smallest backend: read every row into memory, change the cells in memory,
rewrite the file atomically. The delimiter (",", ";" or tab), a UTF-8 byte-order
mark and the line endings are kept as the file had them. A CSV file has no place for
the mark of the journal tracking it: a hidden file beside it holds the mark.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sheetorders.errors import SheetError
from sheetorders.sheets.base import Cell, CellWrite, SheetTable
from sheetorders.sheets.files import LocalFileBackend, atomic_write, is_url, read_unlocked

BOM = "\ufeff"


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # never "1E-8"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # as Excel writes them
    text = str(value)
    if isinstance(value, str) and text[:1] in FORMULA_STARTS:
        # A spreadsheet opening the file would run it as a formula: keep it text, as Excel does.
        return "'" + text
    return text


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvBackend(LocalFileBackend):
    """A local .csv file; `worksheet` is ignored."""

    @classmethod
    def accepts(cls, source: str) -> bool:
        return not is_url(source) and source.lower().endswith(".csv")

    def __init__(self, source: str, worksheet: str | None = None, options: Mapping[str, Any] | None = None):
        super().__init__(source, worksheet, options)
        self._rows: list[list[str]] | None = None
        self._delimiter = ","
        self._bom = False
        self._newline = "\r\n"

    @property
    def description(self) -> str:
        return self.source

    def _mark_path(self) -> Path:
        real = Path(os.path.realpath(self.path))
        return real.with_name(f".{real.name}.sheetorders-journal")

    def owner(self) -> str | None:
        """The mark in the hidden file beside the CSV file (`.NAME.sheetorders-journal`)."""
        path = self._mark_path()
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SheetError(f"cannot read {path} (which journal tracks {self.path}): {exc}") from exc

    def claim(self, owner: str) -> None:
        path = self._mark_path()
        data = owner.encode("utf-8")
        try:
            path.touch()  # atomic_write replaces a file; an empty one, if this stops here, marks nothing
        except OSError as exc:
            raise SheetError(f"cannot write {path} (which journal tracks {self.path}): {exc}") from exc
        atomic_write(path, lambda handle: handle.write(data))

    def read(self) -> SheetTable:
        stamp, data = read_unlocked(self.path)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SheetError(f"{self.path} is not UTF-8 text: save it as 'CSV UTF-8'") from exc

        first_line = text.split("\n", 1)[0]
        self._delimiter = max((",", ";", "\t"), key=first_line.count) if first_line.strip() else ","
        self._bom = data.startswith(BOM.encode())
        self._newline = "\r\n" if "\r\n" in text or "\n" not in text else "\n"
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self._delimiter))
        except csv.Error as exc:
            raise SheetError(f"{self.path} is not a valid CSV file: {exc}") from exc
        while rows and not any(rows[-1]):
            rows.pop()
        self._rows, self._stamp = rows, stamp

        table: list[list[Cell]] = [[value or None for value in row] for row in rows]
        for row in table:
            while row and row[-1] is None:
                row.pop()
        return SheetTable(headers=table[0] if table else [], rows=table[1:])

    def write(self, cells: list[CellWrite]) -> None:
        if self._rows is None:
            self.read()
        self._check_before_save()
        rows = self._rows
        assert rows is not None
        for write in cells:
            if write.row < 1 or write.column < 1:
                raise ValueError(f"cells are numbered from 1, not {write}")
            while len(rows) < write.row:
                rows.append([])
            row = rows[write.row - 1]
            row.extend([""] * (write.column - len(row)))
            row[write.column - 1] = _text(write.value)

        out = io.StringIO(newline="")
        if self._bom:
            out.write(BOM)
        csv.writer(out, delimiter=self._delimiter, lineterminator=self._newline).writerows(rows)
        data = out.getvalue().encode("utf-8")
        self._save(lambda handle: handle.write(data))
