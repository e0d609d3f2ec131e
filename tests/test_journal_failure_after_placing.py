from __future__ import annotations

from openpyxl import load_workbook

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import JournalError
from sheetorders.journal import Journal
from sheetorders.testing.workbooks import plain_workbook, read_sheet, set_cells, write_config


def test_a_journal_failing_at_a_refill_still_writes_back_the_orders_placed(tmp_path, panel, monkeypatch):
    sheet = plain_workbook(
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
