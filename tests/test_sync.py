"""`sync`: statuses kept true across passes, refills and cancels typed in the sheet, the lock,
several sheets, and `--every` stopping cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY

from sheetorders.app import run_sheets, sheet_lock, sync_every
from sheetorders.config import load_config
from sheetorders.errors import ExitCode, LockHeld
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.testing.workbooks import read_sheet, set_cells, write_config
from sheetorders.workbook import build_order_workbook


def test_statuses_move_through_the_sheet_across_passes(sheet_setup, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/st{i}", "quantity": 100} for i in range(5)]
    config, sheet = sheet_setup(rows)
    run_sheets(config)
    seen = [{r["status"] for r in read_sheet(sheet)}]
    assert seen[0] == {"Pending"}
    panel.advance(10)  # past Pending
    run_sheets(config)
    seen.append({r["status"] for r in read_sheet(sheet)})
    assert seen[1] == {"In progress"}
    in_progress = read_sheet(sheet)
    assert all(r["start_count"] is not None for r in in_progress)
    panel.advance(3600)
    run_sheets(config)
    final = read_sheet(sheet)
    assert {r["status"] for r in final} <= {"Completed", "Partial"}
    assert "Completed" in {r["status"] for r in final}
    assert all(r["updated_at"] for r in final)


def test_250_open_orders_take_3_status_calls_and_finished_ones_are_not_asked_again(sheet_setup, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/b{i}", "quantity": 100} for i in range(250)]
    config, _sheet = sheet_setup(rows)
    run_sheets(config)
    assert panel.ledger.calls["add"] == 250
    panel.reset_calls()
    run_sheets(config)
    assert panel.ledger.calls["status"] == 3
    panel.advance(3600)
    panel.reset_calls()
    run_sheets(config)
    assert panel.ledger.calls["status"] == 3
    panel.reset_calls()
    report = run_sheets(config)
    assert panel.ledger.calls["status"] == 0
    assert report.sheets[0].refreshed == 0


def test_a_row_whose_status_did_not_change_is_not_written(sheet_setup, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/w{i}", "quantity": 100} for i in range(2)]
    config, sheet = sheet_setup(rows)
    run_sheets(config)
    panel.advance(3600)
    run_sheets(config)
    before = sheet.stat().st_mtime_ns
    time.sleep(0.01)
    run_sheets(config)  # everything final: nothing to write
    assert sheet.stat().st_mtime_ns == before


def test_refill_and_cancel_typed_in_the_sheet_are_sent_once(sheet_setup, panel):
    rows = [
        {"service": 2, "link": "https://instagram.com/refill-me", "quantity": 100},
        {"service": 2, "link": "https://instagram.com/cancel-me", "quantity": 100},
    ]
    config, sheet = sheet_setup(rows)
    run_sheets(config)
    first = read_sheet(sheet)
    # Cancel the second while it runs; complete the first, then ask for its refill.
    set_cells(sheet, {(3, "action"): "cancel"})
    report = run_sheets(config)
    assert report.sheets[0].cancels == 1
    assert panel.ledger.calls["cancel"] == 1
    panel.advance(3600)
    set_cells(sheet, {(2, "action"): "refill"})
    report = run_sheets(config)
    assert report.sheets[0].refills == 1
    assert panel.ledger.calls["refill"] == 1
    result = read_sheet(sheet)
    assert result[0]["refill_id"] and result[0]["action"] == "refill sent"
    assert panel.ledger.refills[str(result[0]["refill_id"])].order_id == first[0]["order_id"]
    assert result[1]["status"] in ("Canceled", "Cancelled") and result[1]["action"] == "cancel sent"

    run_sheets(config)
    run_sheets(config)
    assert panel.ledger.calls["refill"] == 1 and panel.ledger.calls["cancel"] == 1
    panel.advance(3600)
    run_sheets(config)
    assert read_sheet(sheet)[0]["refill_status"] == "Completed"


def test_refill_sent_but_not_saved_is_not_sent_again(sheet_setup, panel, monkeypatch):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/rk", "quantity": 100}])
    run_sheets(config)
    panel.advance(3600)
    run_sheets(config)
    set_cells(sheet, {(2, "action"): "refill"})

    def die_before_saving(self, cells):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ExcelBackend, "write", die_before_saving)
        with pytest.raises(KeyboardInterrupt):
            run_sheets(config)
    assert panel.ledger.calls["refill"] == 1
    assert read_sheet(sheet)[0]["action"] == "refill"  # the sheet never heard back

    run_sheets(config)
    assert panel.ledger.calls["refill"] == 1
    row = read_sheet(sheet)[0]
    assert row["refill_id"] == next(iter(panel.ledger.refills))
    assert row["action"] == "refill sent"


def test_refused_refill_shows_the_panel_message(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/early", "quantity": 100}])
    run_sheets(config)
    set_cells(sheet, {(2, "action"): "refill"})  # not completed yet
    report = run_sheets(config)
    assert report.exit_code == ExitCode.ROWS_FAILED
    row = read_sheet(sheet)[0]
    assert "Order is not completed" in row["error"]
    assert row["action"] == "refill refused"


def test_refill_of_a_service_without_refill_is_refused_from_the_catalog(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 1, "link": "https://instagram.com/norefill", "quantity": 100}])
    run_sheets(config)
    set_cells(sheet, {(2, "action"): "refill"})
    run_sheets(config)
    assert panel.ledger.calls["refill"] == 0
    assert "does not allow refill" in read_sheet(sheet)[0]["error"]


def test_a_second_sync_on_the_same_journal_is_refused(sheet_setup, panel):
    config, _ = sheet_setup([{"service": 2, "link": "https://instagram.com/lock", "quantity": 100}])
    with sheet_lock(config.journal):
        with pytest.raises(LockHeld) as refused:
            run_sheets(config)
        assert f"pid {os.getpid()}" in str(refused.value)
        assert "--wait" in str(refused.value)
    assert panel.ledger.calls["add"] == 0
    run_sheets(config)  # free again
    assert panel.ledger.calls["add"] == 1


def test_wait_queues_behind_the_holder(sheet_setup, panel):
    config, _ = sheet_setup([{"service": 2, "link": "https://instagram.com/q", "quantity": 100}])
    holder = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with sheet_lock(config.journal):
            holder.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    holder.wait(5)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    run_sheets(config, wait=True)
    assert time.monotonic() - started >= 0.25
    thread.join()
    assert panel.ledger.calls["add"] == 1


def test_many_sheets_one_pass_each_failure_isolated(tmp_path, panel):
    good = build_order_workbook(
        tmp_path / "team-a.xlsx", [{"service": 2, "link": "https://x.com/a", "quantity": 100}]
    )
    other = build_order_workbook(
        tmp_path / "team-b.xlsx", [{"service": 2, "link": "https://x.com/b", "quantity": 100}]
    )
    config_path = write_config(tmp_path, panel.url, good)
    text = config_path.read_text().split("sheet:")[0]
    text += (
        "sheets:\n"
        f"  - {{name: team-a, source: {good}, worksheet: Orders}}\n"
        f"  - {{name: broken, source: {tmp_path / 'missing.xlsx'}}}\n"
        f"  - {{name: team-b, source: {other}, worksheet: Orders}}\n"
        f"journal: {tmp_path / 'journal.sqlite'}\n"
    )
    config_path.write_text(text)
    config = load_config(config_path)
    report = run_sheets(config)
    assert [s.sheet for s in report.sheets] == ["team-a", "broken", "team-b"]
    assert report.sheets[0].ordered == 1 and report.sheets[2].ordered == 1
    assert "not found" in report.sheets[1].error
    assert report.exit_code == ExitCode.USAGE  # a missing file: the same code as with one sheet

    narrowed = run_sheets(config.with_sheet_source("team-b"))
    assert [s.sheet for s in narrowed.sheets] == ["team-b"]


def test_sync_every_repeats_until_stopped(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/ev", "quantity": 100}])
    stop = threading.Event()
    passes = []

    def on_pass(report):
        passes.append(report)
        panel.advance(20)
        if len(passes) == 3:
            stop.set()

    sync_every(config, 0.01, on_pass, stop)
    assert len(passes) == 3
    assert panel.ledger.calls["add"] == 1
    assert read_sheet(sheet)[0]["status"] in ("In progress", "Completed", "Partial")


def test_sync_every_stops_cleanly_on_sigterm(tmp_path, panel):
    sheet = build_order_workbook(
        tmp_path / "orders.xlsx", [{"service": 2, "link": "https://instagram.com/term", "quantity": 100}]
    )
    config = write_config(tmp_path, panel.url, sheet)
    process = subprocess.Popen(
        [sys.executable, "-m", "sheetorders", "sync", "-c", str(config), "--every", "0.2s"],
        env={**os.environ, "TEST_PANEL_KEY": TEST_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while panel.ledger.calls["status"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert panel.ledger.calls["status"] >= 3, "sync did not repeat its pass"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "sync stopped" in stderr
    assert stdout.count("ordered") >= 3  # a line per pass
    assert panel.ledger.calls["add"] == 1
    row = read_sheet(sheet)[0]
    assert row["order_id"]
    assert not Path(f"{tmp_path / '.sheetorders' / 'journal.sqlite'}.lock.owner").exists()


KILL_BEFORE_SAVING = """
import os, signal, sys
from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.sheets.excel import ExcelBackend

def killed_before_saving(self, cells):
    os.kill(os.getpid(), signal.SIGKILL)

ExcelBackend.write = killed_before_saving
run_sheets(load_config(sys.argv[1]))
"""


def run_killed_before_saving(config_path: Path) -> int:
    process = subprocess.run(
        [sys.executable, "-c", KILL_BEFORE_SAVING, str(config_path)],
        env={**os.environ, "TEST_PANEL_KEY": TEST_KEY},
        capture_output=True,
        timeout=60,
    )
    return process.returncode


def test_orders_and_refills_of_a_process_killed_before_saving_are_neither_resent_nor_lost(tmp_path, panel):
    sheet = build_order_workbook(
        tmp_path / "orders.xlsx",
        [{"service": 2, "link": f"https://instagram.com/kill{i}", "quantity": 100} for i in range(3)],
    )
    config_path = write_config(tmp_path, panel.url, sheet)
    assert run_killed_before_saving(config_path) == -signal.SIGKILL
    assert panel.ledger.calls["add"] == 3
    assert all(row["order_id"] is None for row in read_sheet(sheet))  # the sheet never heard back

    config = load_config(config_path)
    report = run_sheets(config)
    assert report.sheets[0].recovered == 3 and report.sheets[0].ordered == 0
    assert panel.ledger.calls["add"] == 3
    assert {row["order_id"] for row in read_sheet(sheet)} == set(panel.ledger.orders)

    panel.advance(3600)
    run_sheets(config)
    set_cells(sheet, {(2, "action"): "refill", (3, "action"): "refill"})
    assert run_killed_before_saving(config_path) == -signal.SIGKILL
    assert panel.ledger.calls["refill"] == 1  # one batch of two
    assert len(panel.ledger.refills) == 2

    run_sheets(config)
    run_sheets(config)
    assert panel.ledger.calls["refill"] == 1
    rows = read_sheet(sheet)
    assert {rows[0]["refill_id"], rows[1]["refill_id"]} == set(panel.ledger.refills)
    assert rows[0]["action"] == rows[1]["action"] == "refill sent"


def test_a_per_order_error_of_a_batch_lands_on_that_row_only(sheet_setup, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/pe{i}", "quantity": 100} for i in range(3)]
    config, sheet = sheet_setup(rows)
    run_sheets(config)
    set_cells(sheet, {(3, "order_id"): "999999"})  # an ID the panel never gave
    panel.advance(10)
    run_sheets(config)
    result = read_sheet(sheet)
    assert result[1]["error"] == "order 999999: Incorrect order ID"
    assert result[0]["error"] is None and result[2]["error"] is None
    assert result[0]["status"] == result[2]["status"] == "In progress"


def test_a_named_sheet_keeps_its_journal_history_when_the_file_moves(tmp_path, panel):
    first = build_order_workbook(
        tmp_path / "a.xlsx", [{"service": 2, "link": "https://x.com/mv", "quantity": 100}]
    )
    config_path = write_config(tmp_path, panel.url, first)
    text = config_path.read_text().replace("worksheet: Orders", "worksheet: Orders\n  name: team-a")
    config_path.write_text(text)
    config = load_config(config_path)

    def die_before_saving(self, cells):
        raise KeyboardInterrupt

    original = ExcelBackend.write
    ExcelBackend.write = die_before_saving
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sheets(config)
    finally:
        ExcelBackend.write = original
    moved = first.rename(tmp_path / "moved.xlsx")
    config_path.write_text(text.replace(str(first), str(moved)))
    report = run_sheets(load_config(config_path))
    assert report.sheets[0].recovered == 1 and report.sheets[0].ordered == 0
    assert len(panel.ledger.orders) == 1
