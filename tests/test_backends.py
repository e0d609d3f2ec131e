"""Backends are plugins: chosen by source, registered through entry points, one interface."""

from __future__ import annotations

import sys
import textwrap

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.sheets.base import available_backends, open_backend
from sheetorders.sheets.csvfile import CsvBackend
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.sheets.google import GoogleSheetsBackend
from sheetorders.testing.workbooks import write_config


def test_the_backend_is_picked_from_the_source():
    assert isinstance(open_backend("orders.xlsx"), ExcelBackend)
    assert isinstance(open_backend("Team Orders.XLSM"), ExcelBackend)
    assert isinstance(open_backend("orders.csv"), CsvBackend)
    key = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
    assert isinstance(
        open_backend(f"https://docs.google.com/spreadsheets/d/{key}/edit#gid=0"), GoogleSheetsBackend
    )
    assert isinstance(open_backend(key), GoogleSheetsBackend)


def test_a_third_party_backend_registered_by_entry_point_is_used(tmp_path, monkeypatch):
    package = tmp_path / "memory_sheets.py"
    package.write_text(
        textwrap.dedent(
            """
            from sheetorders.sheets.base import SheetBackend, SheetTable

            class MemoryBackend(SheetBackend):
                @classmethod
                def accepts(cls, source):
                    return source.startswith("memory://")

                def read(self):
                    return SheetTable(headers=["service", "link", "quantity"], rows=[])

                def changed_since_read(self):
                    return False

                def write(self, cells):
                    pass
            """
        )
    )
    info = tmp_path / "memory_sheets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memory-sheets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sheetorders.backends]\nmemory = memory_sheets:MemoryBackend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        backend = open_backend("memory://team-a")
        assert type(backend).__name__ == "MemoryBackend"
        assert backend.read().headers == ["service", "link", "quantity"]
        backend.check_writable([(1, 4), (2, 4)])  # a backend that checks nothing accepts everything
        assert type(backend) in available_backends()
    finally:
        sys.modules.pop("memory_sheets", None)


def test_run_on_a_csv_sheet(tmp_path, panel):
    sheet = tmp_path / "orders.csv"
    sheet.write_text(
        "Service,Link,Quantity,My notes\n"
        "2,https://instagram.com/csv1,100,first\n"
        "2,https://instagram.com/csv2,10,too few\n"
    )
    config = load_config(write_config(tmp_path, panel.url, sheet))
    report = run_sheets(config)
    assert report.sheets[0].ordered == 1 and report.sheets[0].invalid == 1
    table = CsvBackend(str(sheet)).read()
    header = [str(h) for h in table.headers]
    assert header[:4] == ["Service", "Link", "Quantity", "My notes"]
    first = dict(zip(header, table.rows[0], strict=False))
    second = dict(zip(header, table.rows[1], strict=False))
    assert first["order_id"] == next(iter(panel.ledger.orders)) and first["My notes"] == "first"
    assert second["status"] == "Invalid" and "below the minimum 50" in second["error"]
    run_sheets(config)
    assert len(panel.ledger.orders) == 1
