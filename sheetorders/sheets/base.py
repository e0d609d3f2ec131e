"""The interface every sheet backend implements, and how a backend is chosen.

A pass reads the whole worksheet once (`read`) and writes every changed cell once
(`write`). Backends are plugins registered under the entry-point group
`sheetorders.backends`; the first whose `accepts(source)` is true opens the sheet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from sheetorders.cells import Cell
from sheetorders.errors import SheetError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Cell",
    "CellWrite",
    "SheetBackend",
    "SheetTable",
    "a1",
    "available_backends",
    "cells_are",
    "column_letter",
    "open_backend",
]

ENTRY_POINT_GROUP = "sheetorders.backends"


def column_letter(column: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while column > 0:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def a1(row: int, column: int) -> str:
    """A cell's A1 name: a1(5, 27) == "AA5"."""
    return f"{column_letter(column)}{row}"


def cells_are(cells: list[tuple[int, int]], listed: int = 5) -> str:
    """The start of a sentence about (row, column) cells: "cell B2 is", "cells B2, C5 are",
    "cells B2, C5, D1, D2, D3 and 7 more are"."""
    names = ", ".join(a1(row, column) for row, column in cells[:listed])
    if len(cells) > listed:
        names += f" and {len(cells) - listed} more"
    return f"cell {names} is" if len(cells) == 1 else f"cells {names} are"


def _width(row: list[Cell]) -> int:
    end = len(row)
    while end and (row[end - 1] is None or row[end - 1] == ""):
        end -= 1
    return end


@dataclass
class SheetTable:
    """What one read of a worksheet returned.

    `headers` is row 1; `rows[i]` is sheet row `i + 2`. Rows may be shorter than
    the header row (trailing empty cells are not padded). Formulas are returned as
    their text, starting with "=", where the backend can see them.

    `used_width` is the number of the last column that holds anything, in any row (data
    beyond the last header included): new columns go after it, never over a person's
    unlabeled cells. It is at least the widest row; a backend may make it larger for
    what the rows do not show (Excel counts merged cells).
    """

    headers: list[Cell]
    rows: list[list[Cell]] = field(default_factory=list)
    used_width: int = 0

    def __post_init__(self) -> None:
        widest = max((_width(row) for row in (self.headers, *self.rows)), default=0)
        self.used_width = max(self.used_width, widest)

    def cell(self, row: int, column: int) -> Cell:
        """The value at 1-based sheet `row` and 1-based `column` (row 1 = headers)."""
        values = self.headers if row == 1 else self.rows[row - 2] if row - 2 < len(self.rows) else []
        return values[column - 1] if column - 1 < len(values) else None


@dataclass(frozen=True, slots=True)  # a pass writes many: slots keep each small
class CellWrite:
    """Put `value` at 1-based sheet `row` and 1-based `column`. Values are data, never formulas."""

    row: int
    column: int
    value: Cell


class SheetBackend(ABC):
    """One worksheet of one spreadsheet."""

    # Whether `changed_since_read` costs nothing (a file's stat) rather than a request.
    change_check_is_free: bool = True
    # Whether `check_writable` cannot tell if this account may edit the sheet at all (a share
    # as Viewer): a pass that places then puts its mark again first, a write refused if not.
    edit_rights_unknown: bool = False

    @classmethod
    @abstractmethod
    def accepts(cls, source: str) -> bool:
        """Whether this backend handles `source` (a path, a URL, a key...)."""

    def __init__(self, source: str, worksheet: str | None = None, options: Mapping[str, Any] | None = None):
        self.source = source
        self.worksheet = worksheet
        self.options: Mapping[str, Any] = options or {}

    @property
    def description(self) -> str:
        """How to name this sheet to a person (no secrets)."""
        return f"{self.source} [{self.worksheet}]" if self.worksheet else self.source

    @property
    def identity(self) -> str:
        """What this sheet is, however its source was spelled: the journal files its rows under
        it. Backends give the resolved file or document; tab names count without their case."""
        return f"{self.source}#{(self.worksheet or '').casefold()}"

    @property
    def former_identities(self) -> tuple[str, ...]:
        """What earlier versions filed this sheet under, when it was not `identity`: a pass
        moves those entries to `identity`."""
        return ()

    def content_stamp(self) -> str | None:
        """A cheap stamp of the sheet's whole content, without reading it as a table (None: the
        backend cannot tell; every pass then reads the sheet). Two equal stamps mean the same
        content."""
        return None

    def owner(self) -> str | None:
        """The mark of the journal that tracks this sheet, as the sheet itself carries it (None:
        no journal yet, or a backend that cannot carry one). Read after `read`."""
        return None

    def claim(self, owner: str) -> None:  # noqa: B027 - optional
        """Put `owner` (a journal's mark) into the sheet, before any order of its is placed, so
        that a second journal finds it and refuses. A backend that cannot carry one keeps nothing."""

    @abstractmethod
    def read(self) -> SheetTable:
        """Read the whole worksheet, in one call where the storage allows."""

    @abstractmethod
    def changed_since_read(self) -> bool:
        """Whether someone may have changed the sheet since the last `read` (cheap check).

        The pipeline calls this right before `write`; when true it reads again and
        moves its writes to where the rows are now, so a person's edit made during
        a pass is never overwritten.
        """

    @abstractmethod
    def write(self, cells: list[CellWrite]) -> None:
        """Write all the cells at once (atomically where the storage allows).

        A cell in row 1 beyond the existing headers adds a column. Cells not named
        are left as they are, with their formatting. Rows are numbered as the last
        `read` returned them. Someone may edit the sheet while it is being written:
        a backend then raises SheetChanged when it saved nothing (or nothing more),
        and RowsNotFound (naming them) when only some rows could not be placed.
        """

    def check_writable(self, cells: Iterable[tuple[int, int]] = ()) -> None:  # noqa: B027 - optional
        """Raise SheetNotWritable (one line) when a later `write` of these cells would fail.

        `cells` are 1-based (row, column) pairs as `write` will name them: the header cells
        of new output columns and the output cells of the rows about to be ordered. Called
        after `read` and before anything is ordered, so that a sheet that cannot take the
        results is refused while no money has moved. It writes nothing, and costs no
        request. Backends check what they can see (file permissions, merged cells, the
        column limit); this default accepts everything.
        """

    def hold(self, wait: bool = False) -> AbstractContextManager[None]:
        """While inside, no other sheetorders process (whatever its journal) works on this sheet;
        raises LockHeld (or waits) when one does. Backends that cannot lock hold nothing."""
        return nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release whatever the backend holds."""

    def __enter__(self) -> SheetBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _builtin_backends() -> list[type[SheetBackend]]:
    from sheetorders.sheets.csvfile import CsvBackend
    from sheetorders.sheets.excel import ExcelBackend
    from sheetorders.sheets.google import GoogleSheetsBackend

    return [GoogleSheetsBackend, ExcelBackend, CsvBackend]


def available_backends() -> list[type[SheetBackend]]:
    """Registered backends; the built-in ones also when the package is not installed."""
    found: list[type[SheetBackend]] = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        backend = entry.load()
        if backend not in found:
            found.append(backend)
    for backend in _builtin_backends():
        if backend not in found:
            found.append(backend)
    return found


def open_backend(
    source: str, worksheet: str | None = None, options: Mapping[str, Any] | None = None
) -> SheetBackend:
    for backend in available_backends():
        if backend.accepts(source):
            return backend(source, worksheet, options)
    raise SheetError(
        f"no sheet backend understands {source!r}: give an .xlsx or .csv path or a Google Sheets URL"
    )
