"""Everything the write-back needs is checked before the first order leaves: merged cells,
unlabeled cells of the user's, a file that may not be written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from openpyxl import load_workbook

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import ExitCode, SheetNotWritable
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import plain_workbook, write_config


def small_sheet(
    path: Path, rows: list[list[object]], header: tuple[str, ...] = ("service", "link", "quantity")
):
    return plain_workbook(path, header, rows)


ROWS = [[2, "https://instagram.com/w1", 100], [2, "https://instagram.com/w2", 100]]


def test_a_merged_cell_where_results_go_is_refused_before_any_order(tmp_path: Path, panel: PanelServer):
    header = ("service", "link", "quantity", "order_id", "status")
    sheet = small_sheet(tmp_path / "orders.xlsx", ROWS, header)
    workbook = load_workbook(sheet)
    workbook["Orders"].merge_cells("D3:E3")  # row 3's status (E3) is covered by its order_id cell
    workbook.save(sheet)
    before = sheet.read_bytes()
    config = load_config(write_config(tmp_path, panel.url, sheet))

    report = run_sheets(config)

    failure = report.sheets[0].failure
    assert isinstance(failure, SheetNotWritable)
    assert "E3" in str(failure) and "merged" in str(failure) and "D3:E3" in str(failure)
    assert report.exit_code == ExitCode.USAGE
    assert panel.ledger.calls["add"] == 0 and not panel.ledger.orders
    assert sheet.read_bytes() == before


def test_new_output_columns_go_after_the_users_unlabeled_cells(tmp_path: Path, panel: PanelServer):
    rows = [[*ROWS[0], "call Ann", "urgent"], ROWS[1]]  # notes in D and E, without a header
    sheet = small_sheet(tmp_path / "orders.xlsx", rows)
    config = load_config(write_config(tmp_path, panel.url, sheet))

    run_sheets(config)

    ws = load_workbook(sheet)["Orders"]
    assert [ws.cell(2, column).value for column in (4, 5)] == ["call Ann", "urgent"]
    header = [c.value for c in ws[1]]
    assert header[3:5] == [None, None] and header[5] == "ref"
    assert ws.cell(2, header.index("order_id") + 1).value in panel.ledger.orders
    assert len(panel.ledger.orders) == 2


def test_a_read_only_sheet_is_refused_before_any_order(tmp_path: Path, panel: PanelServer):
    sheet = small_sheet(tmp_path / "orders.xlsx", ROWS)
    config = load_config(write_config(tmp_path, panel.url, sheet))
    os.chmod(sheet, 0o444)
    try:
        report = run_sheets(config)
    finally:
        os.chmod(sheet, 0o644)
    failure = report.sheets[0].failure
    assert isinstance(failure, SheetNotWritable), failure
    assert panel.ledger.calls["add"] == 0


@pytest.mark.parametrize("dry_run", [True])
def test_a_dry_run_of_a_read_only_sheet_still_validates(tmp_path: Path, panel: PanelServer, dry_run: bool):
    from sheetorders.pipeline import PassOptions

    sheet = small_sheet(tmp_path / "orders.xlsx", ROWS)
    config = load_config(write_config(tmp_path, panel.url, sheet))
    os.chmod(sheet, 0o444)
    try:
        report = run_sheets(config, PassOptions(dry_run=dry_run))
    finally:
        os.chmod(sheet, 0o644)
    assert report.sheets[0].failure is None and len(report.sheets[0].would_order) == 2
