"""A sheet edited while orders go out: the write-back lands where the rows and columns are now,
and over nothing a person typed meanwhile."""

from __future__ import annotations

from openpyxl import load_workbook

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.testing.workbooks import plain_workbook, read_sheet, set_cells, write_config
from tests.test_settle import setup


def _while(panel, action, edit):
    """Run `edit` when the panel is asked `action` (once), as a person editing during the pass."""
    original = panel.handle
    done = []

    def handle(form):
        if form.get("action") == action and not done:
            done.append(True)
            edit()
        return original(form)

    panel.handle = handle
    return lambda: setattr(panel, "handle", original)


def test_a_column_added_during_the_pass_is_not_overwritten_by_new_output_columns(tmp_path, panel):
    sheet = plain_workbook(
        tmp_path / "orders.xlsx", ["service", "link", "quantity"], [[2, "https://instagram.com/p/x", 100]]
    )
    config = load_config(write_config(tmp_path, panel.url, sheet))

    def add_a_column() -> None:
        workbook = load_workbook(sheet)
        workbook["Orders"]["D1"] = "note"
        workbook["Orders"]["D2"] = "call the client first"
        workbook.save(sheet)

    restore = _while(panel, "add", add_a_column)
    run_sheets(config)
    restore()

    headers = [cell.value for cell in load_workbook(sheet)["Orders"][1]]
    assert headers[3] == "note" and "ref" in headers[4:] and "order_id" in headers[4:]
    run_sheets(config)  # the row was edited during the pass: the next one writes its order
    row = read_sheet(sheet)[0]
    assert row["note"] == "call the client first"
    assert row["order_id"] == next(iter(panel.ledger.orders)) and row["status"] == "Pending"


def test_a_copied_ref_sends_no_results_of_its_order_to_the_copy(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/dup", "quantity": 100}])
    run_sheets(config)
    # A person copies row 2, its ref with it, to row 3 to order the same again.
    workbook = load_workbook(sheet)
    sheet_rows = workbook["Orders"]
    headers = [cell.value for cell in sheet_rows[1]]
    for column, name in enumerate(headers, start=1):
        if name not in ("order_id", "status", "charge", "currency", "updated_at"):
            sheet_rows.cell(3, column).value = sheet_rows.cell(2, column).value
    workbook.save(sheet)
    set_cells(sheet, {(4, "service"): 2, (4, "link"): "https://instagram.com/other", (4, "quantity"): 100})
    copied = {name: read_sheet(sheet)[1][name] for name in ("remains", "start_count")}
    panel.advance(3600)  # the first order moves on: its row has new figures to show
    restore = _while(panel, "services", lambda: set_cells(sheet, {(2, "note"): "typed during the pass"}))
    report = run_sheets(config)
    restore()

    rows = {row["_row"]: row for row in read_sheet(sheet)}
    assert rows[3]["order_id"] is None and rows[3]["status"] == "Uncertain"
    assert {name: rows[3][name] for name in copied} == copied  # not the first order's new ones
    assert any("row 2 was not found again" in notice for notice in report.sheets[0].notices)
    run_sheets(config)
    rows = {row["_row"]: row for row in read_sheet(sheet)}
    assert rows[2]["status"] != "Pending" and rows[2]["note"] == "typed during the pass"
    assert {name: rows[3][name] for name in copied} == copied


def test_a_row_copied_with_its_ref_while_its_order_goes_out_gets_its_order_id(tmp_path, panel):
    row = {"service": 2, "link": "https://instagram.com/p/copied-during", "quantity": 100}
    config, sheet = setup(tmp_path, panel, [row], probe=False)
    panel.faults.queue("html", actions=["add"])  # unclear, made nothing
    run_sheets(config)
    assert read_sheet(sheet)[0]["status"] == "Uncertain"
    set_cells(sheet, {(2, "status"): "retry"})  # the person checked the panel: nothing there

    def copy_row() -> None:  # meanwhile a person copies row 2 (ref and all) to row 3
        workbook = load_workbook(sheet)
        ws = workbook["Orders"]
        for column in range(1, ws.max_column + 1):
            ws.cell(3, column).value = ws.cell(2, column).value
        workbook.save(sheet)

    restore = _while(panel, "add", copy_row)
    run_sheets(config)
    restore()
    assert len(panel.ledger.orders) == 1
    order = next(iter(panel.ledger.orders))

    run_sheets(config)  # the next pass: "the journal keeps both for the next pass"
    found = read_sheet(sheet)
    shown = [(r["_row"], r["order_id"], r["status"], r["error"]) for r in found]
    assert any(str(r["order_id"]) == order for r in found), shown
    assert len(panel.ledger.orders) == 1
    copies = [r for r in found if str(r["order_id"]) != order]
    assert len(copies) == 1 and "this row was copied; clear its ref cell" in copies[0]["error"]
