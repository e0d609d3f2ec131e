"""A pass whose open orders did not change writes nothing and does not save the file."""

from __future__ import annotations

import os
from decimal import Decimal

from sheetorders.app import run_sheets
from sheetorders.cells import cell_text


def test_a_charge_the_panel_spells_with_trailing_zeros_is_the_number_the_sheet_holds() -> None:
    assert cell_text(Decimal("0.09000")) == cell_text(0.09) == "0.09"
    assert cell_text(Decimal("100.00")) == cell_text(100.0) == "100"


def test_an_unchanged_open_orders_pass_writes_nothing(sheet_setup, panel, monkeypatch) -> None:
    from sheetorders.testing import panel_server

    # Like many panels: money with five decimals ("0.24000"), which the sheet reads back as 0.24.
    monkeypatch.setattr(panel_server, "_money", lambda value: format(value.quantize(Decimal("0.00001")), "f"))
    rows = [{"service": 2, "link": f"https://instagram.com/same{i}", "quantity": 100} for i in range(5)]
    config, sheet = sheet_setup(rows)
    run_sheets(config)  # placed: Pending
    run_sheets(config)  # statuses read back once
    before = os.stat(sheet)
    os.utime(sheet, ns=(before.st_atime_ns, before.st_mtime_ns - 10_000_000_000))
    stamped = os.stat(sheet).st_mtime_ns

    report = run_sheets(config)  # the panel's clock stands still: nothing changed

    assert report.sheets[0].refreshed == 5
    assert os.stat(sheet).st_mtime_ns == stamped  # not saved
    assert os.stat(sheet).st_size == before.st_size


def test_a_finished_sheet_that_nobody_changed_is_not_even_read(sheet_setup, panel, monkeypatch) -> None:
    from sheetorders.sheets.excel import ExcelBackend
    from sheetorders.testing.workbooks import set_cells

    rows = [{"service": 2, "link": f"https://instagram.com/idle{i}", "quantity": 100} for i in range(3)]
    config, sheet = sheet_setup(rows)
    run_sheets(config)
    panel.advance(10 * 24 * 3600)  # every order finishes
    run_sheets(config)  # the final statuses are written: nothing is open any more
    reads: list[object] = []
    original = ExcelBackend.read

    def counted(self: ExcelBackend):
        reads.append(self)
        return original(self)

    monkeypatch.setattr(ExcelBackend, "read", counted)
    panel.reset_calls()
    report = run_sheets(config)
    assert report.sheets[0].unchanged and reads == [] and sum(panel.ledger.calls.values()) == 0

    set_cells(sheet, {(5, "service"): 2, (5, "link"): "https://instagram.com/new", (5, "quantity"): 100})
    report = run_sheets(config)  # someone added a row: read, and placed
    assert not report.sheets[0].unchanged and len(reads) == 1
    assert report.sheets[0].ordered == 1
