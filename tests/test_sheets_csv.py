from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sheetorders.errors import SheetError, SheetLocked
from sheetorders.sheets import CellWrite
from sheetorders.sheets.csvfile import CsvBackend


@pytest.fixture
def sheet(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_bytes(
        b"panel,service,link,quantity\r\n"
        b'main,101,"https://example.com/a?x=1,2",1000\r\n'
        b"main,,https://example.com/b,\r\n"
        b",,,\r\n"
    )
    return path


def test_accepts() -> None:
    assert CsvBackend.accepts("orders.csv") and CsvBackend.accepts("C:\\X\\ORDERS.CSV")
    assert not CsvBackend.accepts("orders.xlsx")
    assert not CsvBackend.accepts("https://example.com/orders.csv")


def test_read_strings_empty_as_none_trailing_rows_dropped(sheet: Path) -> None:
    table = CsvBackend(str(sheet), "ignored").read()
    assert table.headers == ["panel", "service", "link", "quantity"]
    assert table.rows == [
        ["main", "101", "https://example.com/a?x=1,2", "1000"],
        ["main", None, "https://example.com/b"],
    ]


def test_read_bom_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "excel-export.csv"
    path.write_bytes('\ufeffpanel;service;comments\nmain;101;"héllo\nworld"\n'.encode())
    table = CsvBackend(str(path)).read()
    assert table.headers == ["panel", "service", "comments"]
    assert table.rows == [["main", "101", "héllo\nworld"]]


def test_write_round_trip_keeps_layout(tmp_path: Path) -> None:
    path = tmp_path / "excel-export.csv"
    path.write_bytes("\ufeffpanel;service\nmain;101\n".encode())
    backend = CsvBackend(str(path))
    backend.read()
    backend.write([CellWrite(1, 3, "order_id"), CellWrite(2, 3, 555), CellWrite(3, 1, "backup")])
    assert path.read_bytes() == "\ufeffpanel;service;order_id\nmain;101;555\nbackup\n".encode()


def test_write_values(sheet: Path) -> None:
    backend = CsvBackend(str(sheet))
    backend.read()
    backend.write(
        [
            CellWrite(1, 5, "charge"),
            CellWrite(2, 5, Decimal("0.00000001")),
            CellWrite(2, 6, datetime(2024, 5, 1, 12, 30)),
            CellWrite(2, 7, True),
            CellWrite(2, 4, None),
            CellWrite(3, 2, "=not a formula"),
        ]
    )
    table = CsvBackend(str(sheet)).read()
    assert table.headers == ["panel", "service", "link", "quantity", "charge"]
    assert table.rows[0] == [
        "main",
        "101",
        "https://example.com/a?x=1,2",
        None,
        "0.00000001",
        "2024-05-01 12:30:00",
        "TRUE",
    ]
    assert table.rows[1] == ["main", "'=not a formula", "https://example.com/b"]  # kept as text
    assert sheet.read_bytes().startswith(b'panel,service,link,quantity,charge\r\nmain,101,"https')


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match="not found"):
        CsvBackend(str(tmp_path / "nope.csv")).read()


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "ansi.csv"
    path.write_bytes("panel\ncafé\n".encode("cp1252"))
    with pytest.raises(SheetError, match="not UTF-8"):
        CsvBackend(str(path)).read()


def test_lock_file_refused(sheet: Path) -> None:
    before = sheet.read_bytes()
    backend = CsvBackend(str(sheet))
    backend.read()
    (sheet.parent / "~$orders.csv").write_text("someone")
    with pytest.raises(SheetLocked, match="open in Excel"):
        backend.read()
    with pytest.raises(SheetLocked):
        backend.write([CellWrite(2, 1, "x")])
    assert sheet.read_bytes() == before


def test_write_keeps_permissions_and_leaves_no_temp_file(sheet: Path) -> None:
    os.chmod(sheet, 0o640)
    backend = CsvBackend(str(sheet))
    backend.read()
    backend.write([CellWrite(2, 1, "first")])
    backend.write([CellWrite(3, 1, "second")])
    assert (sheet.stat().st_mode & 0o777) == 0o640
    assert [r[0] for r in CsvBackend(str(sheet)).read().rows] == ["first", "second"]
    assert [p.name for p in sheet.parent.iterdir()] == ["orders.csv"]


def test_changed_since_read_refuses_write(sheet: Path) -> None:
    backend = CsvBackend(str(sheet))
    backend.read()
    assert not backend.changed_since_read()
    sheet.write_text("panel\nsomeone else's\n")
    assert backend.changed_since_read()
    with pytest.raises(SheetError, match="changed since it was read"):
        backend.write([CellWrite(2, 1, "x")])
    assert sheet.read_text() == "panel\nsomeone else's\n"


def test_text_that_a_spreadsheet_would_run_as_a_formula_is_written_as_text(tmp_path):
    from sheetorders.sheets.base import CellWrite
    from sheetorders.sheets.csvfile import CsvBackend

    path = tmp_path / "orders.csv"
    path.write_text("service,error\n1,\n")
    backend = CsvBackend(str(path))
    backend.read()
    backend.write([CellWrite(2, 2, '=HYPERLINK("http://evil")'), CellWrite(2, 1, 5)])
    assert path.read_text().splitlines()[1] == '5,"\'=HYPERLINK(""http://evil"")"'


def test_used_width_counts_unlabeled_cells(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("service,link,quantity\n1,https://a,100\n1,https://b,100,call Bob,urgent,,\n")
    table = CsvBackend(str(path)).read()
    assert (len(table.headers), table.used_width) == (3, 5)
