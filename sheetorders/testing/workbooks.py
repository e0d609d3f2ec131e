"""Helpers for tests and benchmarks: read an order sheet back, write a config for a local panel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from openpyxl import Workbook, load_workbook

from sheetorders.cells import Cell
from sheetorders.columns import map_headers

# The API key of the local test panel; configs written by `write_config` read it from
# the TEST_PANEL_KEY environment variable.
TEST_KEY = "test-key-abc123"


def read_sheet(path: Path, worksheet: str = "Orders") -> list[dict[str, Any]]:
    """The non-empty data rows as {column: value}, `_row` being the sheet row number.

    Known columns are named canonically (`Order ID` -> `order_id`), the user's own by their header.
    """
    workbook = load_workbook(path, read_only=True)
    try:
        values = list(workbook[worksheet].iter_rows(values_only=True))
    finally:
        workbook.close()
    headers = list(values[0])
    columns = map_headers(headers)
    columns.update({str(h): i for i, h in enumerate(headers) if h is not None and i not in columns.values()})
    rows = []
    for number, raw in enumerate(values[1:], start=2):
        if all(v is None for v in raw):
            continue
        row: dict[str, Any] = {
            name: raw[index] if index < len(raw) else None for name, index in columns.items()
        }
        row["_row"] = number
        rows.append(row)
    return rows


def write_config(
    folder: Path, panel_url: str, sheet: str | Path, *, key_variable: str = "TEST_PANEL_KEY", **extra: Any
) -> Path:
    """A sheetorders.yaml in `folder` for one panel (key read from `key_variable`) and one sheet."""
    data: dict[str, Any] = {
        "panels": {"main": {"url": panel_url, "key": f"${{{key_variable}}}", "concurrency": 4}},
        "sheet": {"source": str(sheet), "worksheet": "Orders"},
        "journal": str(folder / ".sheetorders" / "journal.sqlite"),
        **extra,
    }
    path = folder / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def set_cells(sheet: Path, values: Mapping[tuple[int, str], Cell], worksheet: str = "Orders") -> None:
    """Type into the sheet like a person: {(row, column name): value}."""
    workbook = load_workbook(sheet)
    ws = workbook[worksheet]
    header = [c.value for c in ws[1]]
    for (row, name), value in values.items():
        ws.cell(row=row, column=header.index(name) + 1).value = value  # None clears the cell
    workbook.save(sheet)


def plain_workbook(path: Path, header: Sequence[Cell], rows: Iterable[Sequence[Cell]] = ()) -> Path:
    """An .xlsx whose "Orders" tab holds just `header` and `rows`, no styles: a sheet as a
    person might start one."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Orders"
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path
