"""`approval: true`: a row is placed only once approved, for what it asked when approved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from openpyxl import Workbook

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import ExitCode
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet, set_cells, write_config

HEADER = ["service", "link", "quantity", "approved", "estimate"]


def setup(tmp_path: Path, panel: PanelServer, rows: list[list[Any]], **extra: Any) -> tuple[Path, Path]:
    workbook = Workbook()
    ws = workbook.active
    ws.title = "Orders"
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    sheet = tmp_path / "orders.xlsx"
    workbook.save(sheet)
    path = write_config(tmp_path, panel.url, sheet, approval=True, **extra)
    return path, sheet


def test_rows_wait_for_approval_showing_their_price_and_are_placed_once_approved(
    tmp_path: Path, panel: PanelServer
) -> None:
    path, sheet = setup(
        tmp_path, panel, [[2, "https://instagram.com/ap1", 100], [2, "https://instagram.com/ap2", 200, "x"]]
    )
    report = run_sheets(load_config(path))
    first, second = read_sheet(sheet)
    assert first["status"] == "Needs approval" and first["estimate"] == 0.24
    assert first["error"] == "estimated 0.24 USD: type yes in approved to place it"
    assert second["order_id"] in panel.ledger.orders and len(panel.ledger.orders) == 1
    assert report.exit_code == ExitCode.OK and report.sheets[0].needs_approval == 1

    set_cells(sheet, {(2, "approved"): True})  # a ticked checkbox
    run_sheets(load_config(path))
    first = read_sheet(sheet)[0]
    assert first["order_id"] and first["status"] == "Pending" and not first["error"]
    assert len(panel.ledger.orders) == 2


def test_an_approved_row_edited_before_it_is_placed_needs_approval_again(
    tmp_path: Path, panel: PanelServer
) -> None:
    path, sheet = setup(
        tmp_path, panel, [[2, "https://instagram.com/edit", 100, "yes"]], budget={"daily": "0.10"}
    )
    run_sheets(load_config(path))  # approved, but held by the budget
    row = read_sheet(sheet)[0]
    assert row["status"] == "Held" and row["ref"] and not panel.ledger.orders

    set_cells(sheet, {(2, "quantity"): 5000})  # someone raises the quantity afterwards
    data = yaml.safe_load(path.read_text())
    del data["budget"]
    path.write_text(yaml.safe_dump(data))
    report = run_sheets(load_config(path))

    row = read_sheet(sheet)[0]
    assert not panel.ledger.orders  # the approved order was for 100, not 5000
    assert row["status"] == "Needs approval" and row["approved"] is None
    assert "edited after it was approved" in row["error"] and "12.00" in row["error"]
    assert any("edited after it was approved" in notice for notice in report.sheets[0].notices)

    set_cells(sheet, {(2, "approved"): "yes"})
    run_sheets(load_config(path))
    (order,) = panel.ledger.orders.values()
    assert order.fields["quantity"] == "5000"
    assert read_sheet(sheet)[0]["order_id"] == order.id
