from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import JournalError
from sheetorders.journal import Journal
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, set_cells, write_config


@pytest.fixture
def panel() -> Iterator[PanelServer]:
    with PanelServer(key=TEST_KEY, balance="1000") as server:
        yield server


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("TEST_PANEL_KEY", TEST_KEY)


def book(path: Path, header, rows):
    wb = Workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_a_journal_failing_at_a_refill_still_writes_back_the_orders_placed(tmp_path, panel, monkeypatch):
    sheet = book(
        tmp_path / "o.xlsx", ["service", "link", "quantity", "action"], [[2, "https://instagram.com/j1", 100]]
    )
    path = write_config(tmp_path, panel.url, sheet)
    run_sheets(load_config(path))
    assert read_sheet(sheet)[0]["order_id"]
    wb = load_workbook(sheet)
    ws = wb["Orders"]
    ws.append([2, "https://instagram.com/j2", 100])
    wb.save(sheet)
    set_cells(sheet, {(2, "action"): "refill"})

    def full(self, **kw):
        raise JournalError("journal: cannot record in the journal (database or disk is full)")

    monkeypatch.setattr(Journal, "begin_request", full)
    report = run_sheets(load_config(path))
    print(report.sheets[0].error)
    rows = read_sheet(sheet)
    new_id = [o for o in panel.ledger.orders if o != rows[0]["order_id"]]
    assert len(new_id) == 1
    assert rows[1]["order_id"] == new_id[0], (rows[1], report.sheets[0].error)
