"""`sync --every` outlives transient trouble, and holds its journal for as long as it runs."""

from __future__ import annotations

import threading

import pytest

from sheetorders.app import run_sheets, sync_every
from sheetorders.errors import LockHeld
from sheetorders.report import RunReport
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet


def test_a_sheet_open_in_excel_for_a_while_is_reported_and_tried_again(sheet_setup, panel: PanelServer):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/later", "quantity": 100}])
    lock = sheet.with_name("~$" + sheet.name)
    lock.write_bytes(b"owner")  # someone has it open in Excel
    reports: list[RunReport] = []

    def on_pass(report: RunReport) -> None:
        reports.append(report)
        lock.unlink(missing_ok=True)  # ... and closes it after the first pass

    sync_every(config, 0.0, on_pass, threading.Event(), max_passes=2)

    assert "open in Excel" in (reports[0].sheets[0].error or "")
    assert reports[1].sheets[0].error is None and reports[1].sheets[0].ordered == 1
    assert read_sheet(sheet)[0]["order_id"] in panel.ledger.orders


def test_a_second_loop_on_the_same_journal_is_refused_while_the_first_runs(sheet_setup, panel: PanelServer):
    config, _ = sheet_setup([{"service": 2, "link": "https://instagram.com/loop", "quantity": 100}])
    stop = threading.Event()
    first_pass = threading.Event()
    loop = threading.Thread(
        target=sync_every, args=(config, 30.0, lambda report: first_pass.set(), stop), daemon=True
    )
    loop.start()
    try:
        assert first_pass.wait(30)
        # Between two passes of the first loop: the journal is still its own.
        with pytest.raises(LockHeld, match="in use by"):
            run_sheets(config)
        with pytest.raises(LockHeld):
            sync_every(config, 1.0, lambda report: None, threading.Event(), max_passes=1)
    finally:
        stop.set()
        loop.join(30)
    assert not loop.is_alive()
    run_sheets(config)  # free again once it ended
