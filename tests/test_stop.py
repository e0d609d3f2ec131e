"""A stop request (Ctrl-C, SIGTERM) stops spending at once: nothing new is sent after it, what
was placed is written back, and a later run continues where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sheetorders.app import run_sheets
from sheetorders.errors import ExitCode
from sheetorders.pipeline import PassOptions
from sheetorders.stopping import StopRequest
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, write_config
from sheetorders.workbook import build_order_workbook


def rows(count: int, tag: str = "stop") -> list[dict[str, Any]]:
    return [{"service": 2, "link": f"https://instagram.com/{tag}{i}", "quantity": 100} for i in range(count)]


def stop_after_adds(panel: PanelServer, stop: StopRequest, adds: int, signum: int) -> list[int]:
    """The stop arrives once the panel has placed `adds` orders; returns [orders placed by then]."""
    original = panel.handle
    seen: list[int] = []

    def handle(form: Any) -> Any:
        answer = original(form)
        if form.get("action") == "add" and len(panel.ledger.orders) >= adds and not stop.is_set():
            seen.append(len(panel.ledger.orders))
            stop.request(signum)
        return answer

    panel.handle = handle
    return seen


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_after_a_stop_request_nothing_new_is_sent_and_what_was_placed_is_written_back(
    sheet_setup, panel: PanelServer, signum: int, code: int
) -> None:
    config, sheet = sheet_setup(rows(60))
    stop = StopRequest()
    seen = stop_after_adds(panel, stop, 3, signum)

    report = run_sheets(config, PassOptions(stop=stop))

    concurrency = config.panel("main").concurrency
    placed = len(panel.ledger.orders)
    assert seen and seen[0] <= placed <= seen[0] + concurrency - 1  # only requests already in flight
    assert report.exit_code == code
    assert report.sheets[0].ordered == placed
    assert report.sheets[0].not_sent == 60 - placed
    after = read_sheet(sheet)
    assert sorted(r["order_id"] for r in after if r["order_id"]) == sorted(panel.ledger.orders)
    left = [r for r in after if not r["order_id"]]
    assert len(left) == 60 - placed
    assert all(r["status"] == "Held" and "stopped" in r["error"] for r in left)

    panel.handle = PanelServer.handle.__get__(panel)
    again = run_sheets(config)
    assert again.exit_code == ExitCode.OK
    assert len(panel.ledger.orders) == 60  # the rest, each once
    assert all(r["order_id"] and r["status"] == "Pending" and not r["error"] for r in read_sheet(sheet))


def test_a_stop_before_the_next_sheet_leaves_it_alone(tmp_path: Path, panel: PanelServer) -> None:
    first = build_order_workbook(tmp_path / "a.xlsx", rows(1, "a"))
    second = build_order_workbook(tmp_path / "b.xlsx", rows(2, "b"))
    path = write_config(tmp_path, panel.url, first)
    text = path.read_text().split("sheet:")[0] + (
        f"sheets:\n  - {{name: a, source: {first}}}\n  - {{name: b, source: {second}}}\n"
    )
    path.write_text(text)
    from sheetorders.config import load_config

    stop = StopRequest()
    stop_after_adds(panel, stop, 1, signal.SIGINT)
    report = run_sheets(load_config(path), PassOptions(stop=stop))
    assert [s.sheet for s in report.sheets] == ["a"]
    assert len(panel.ledger.orders) == 1
    assert report.exit_code == ExitCode.INTERRUPTED


def run_and_signal(config: Path, panel: PanelServer, command: list[str], signum: int) -> tuple[int, str]:
    """Run the CLI; send `signum` once the panel has answered 3 orders."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sheetorders", *command, "-c", str(config)],
        env={**os.environ, "TEST_PANEL_KEY": TEST_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(panel.ledger.orders) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


@pytest.mark.parametrize(
    ("command", "signum", "code"),
    [(["run"], signal.SIGINT, 130), (["sync"], signal.SIGTERM, 143)],
)
def test_the_cli_stops_sending_on_the_first_signal_and_says_what_it_did(
    tmp_path: Path, panel: PanelServer, command: list[str], signum: int, code: int
) -> None:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(60))
    config = write_config(tmp_path, panel.url, sheet)
    panel.faults.latency = 0.2  # each order takes a while: the signal lands while orders go out

    returncode, stderr = run_and_signal(config, panel, command, signum)

    placed = len(panel.ledger.orders)
    assert returncode == code, stderr
    assert placed < 20, f"{placed} orders placed: sending went on after the signal"
    assert f"stopped: {placed} order(s) placed and written back, {60 - placed} not sent" in stderr
    written = [r["order_id"] for r in read_sheet(sheet) if r["order_id"]]
    assert sorted(written) == sorted(panel.ledger.orders)
