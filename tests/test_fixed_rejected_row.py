from __future__ import annotations

from decimal import Decimal

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.pipeline import PassOptions
from sheetorders.testing.workbooks import plain_workbook, read_sheet, set_cells, write_config


def test_a_fixed_rejected_row_that_is_held_says_held_not_the_old_rejection(tmp_path, panel):
    sheet = plain_workbook(
        tmp_path / "o.xlsx", ["service", "link", "quantity"], [[2, "https://instagram.com/r", 100]]
    )
    path = write_config(tmp_path, panel.url, sheet)
    panel.faults.queue_reply({"error": "Incorrect link"}, actions={"add"})
    run_sheets(load_config(path))
    row = read_sheet(sheet)[0]
    assert row["status"] == "Rejected"
    # the user fixes it and clears status and error, as the README says
    set_cells(sheet, {(2, "quantity"): 5000, (2, "status"): None, (2, "error"): None})
    run_sheets(load_config(path), PassOptions(max_spend=Decimal(1)))  # 12.00 > 1: Held
    row = read_sheet(sheet)[0]
    assert row["status"] == "Held", row
    run_sheets(load_config(path), PassOptions(max_spend=Decimal(1)))
    row = read_sheet(sheet)[0]
    assert row["status"] == "Held", (row["status"], row["error"])
