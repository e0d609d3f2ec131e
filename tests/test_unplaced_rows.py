"""Every row that is not placed says why in its own row; a fixed Invalid row is placed."""

from __future__ import annotations

from sheetorders.app import run_sheets
from sheetorders.errors import ExitCode
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet, set_cells


def test_a_row_whose_status_holds_something_else_says_why_it_is_not_placed(sheet_setup, panel: PanelServer):
    config, sheet = sheet_setup(
        [
            {"service": 2, "link": "https://instagram.com/copied", "quantity": 100, "status": "Completed"},
            {"service": 2, "link": "https://instagram.com/todo", "quantity": 100, "status": "todo"},
            {"service": 2, "link": "https://instagram.com/fine", "quantity": 100},
        ]
    )
    first = run_sheets(config)
    rows = read_sheet(sheet)
    assert len(panel.ledger.orders) == 1 and rows[2]["order_id"]
    for row, status in ((rows[0], "Completed"), (rows[1], "todo")):
        assert not row["order_id"] and row["status"] == status  # the user's word is kept
        assert f"status says '{status}' but the row has no order_id" in row["error"]
        assert "clear status to order this row" in row["error"]
    assert first.exit_code == ExitCode.ROWS_FAILED  # rows newly left unplaced
    assert first.sheets[0].skipped == 2 and len(first.sheets[0].problems) == 2

    again = run_sheets(config)
    assert again.exit_code == ExitCode.OK  # the same standing rows: no new problem
    assert len(again.sheets[0].problems) == 2  # still listed

    set_cells(sheet, {(2, "status"): None})
    third = run_sheets(config)
    assert third.sheets[0].error is None, third.sheets[0].error
    assert read_sheet(sheet)[0]["order_id"] and len(panel.ledger.orders) == 2


def test_an_invalid_row_once_fixed_is_placed_without_clearing_its_status(sheet_setup, panel: PanelServer):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/fix", "quantity": 10}])
    first = run_sheets(config)
    assert read_sheet(sheet)[0]["status"] == "Invalid" and first.sheets[0].invalid == 1
    assert run_sheets(config).sheets[0].invalid == 0  # still Invalid, as it was: not new
    set_cells(sheet, {(2, "quantity"): 100})
    run_sheets(config)
    row = read_sheet(sheet)[0]
    assert row["order_id"] and row["status"] == "Pending" and not row["error"]
    assert len(panel.ledger.orders) == 1


def test_a_refill_the_catalog_does_not_allow_is_a_new_problem_once(sheet_setup, panel: PanelServer):
    config, sheet = sheet_setup([{"service": 4, "link": "https://instagram.com/pkg"}])
    run_sheets(config)
    set_cells(sheet, {(2, "action"): "refill"})  # service 4 does not allow refills
    first = run_sheets(config)
    assert "does not allow refill" in read_sheet(sheet)[0]["error"]
    assert first.exit_code == ExitCode.ROWS_FAILED
    again = run_sheets(config)
    assert again.exit_code == ExitCode.OK and again.sheets[0].problems  # listed, not new


def test_a_row_copied_with_its_ref_says_to_clear_the_ref_and_is_placed_once_it_is(
    sheet_setup, panel: PanelServer
):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/twice", "quantity": 100}])
    run_sheets(config)
    ordered = read_sheet(sheet)[0]
    # A person copies the ordered row, its ref with it, to order the same again.
    set_cells(sheet, {(3, "service"): 2, (3, "link"): "https://instagram.com/twice", (3, "quantity"): 100})
    set_cells(sheet, {(3, "ref"): ordered["ref"]})

    run_sheets(config)
    copy = read_sheet(sheet)[1]
    assert copy["status"] == "Uncertain" and not copy["order_id"]
    advice = "this row was copied; clear its ref cell to order it as a new row"
    assert copy["error"] == f"ref {ordered['ref']} is also in row 2: {advice}"
    run_sheets(config)  # the advice stands until it is followed
    assert read_sheet(sheet)[1]["error"] == copy["error"]

    set_cells(sheet, {(3, "ref"): None, (3, "status"): None, (3, "error"): None})
    panel.advance(10**7)  # the first order is done (the next pass shows it): the link is free again
    run_sheets(config)
    assert read_sheet(sheet)[0]["status"] == "Completed"
    run_sheets(config)
    copy = read_sheet(sheet)[1]
    assert copy["order_id"] and copy["order_id"] != ordered["order_id"], (copy["status"], copy["error"])
    assert len(panel.ledger.orders) == 2
