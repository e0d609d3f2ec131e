from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from openpyxl import Workbook, load_workbook

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.panel import PanelClient
from sheetorders.pipeline import PassOptions
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, write_config


@pytest.fixture
def panel() -> Iterator[PanelServer]:
    with PanelServer(key=TEST_KEY, balance="100000") as server:
        yield server


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("TEST_PANEL_KEY", TEST_KEY)


def test_no_refill_batch_leaves_after_a_stop(tmp_path, panel, monkeypatch):
    wb = Workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(["service", "link", "quantity", "action"])
    for i in range(150):
        ws.append([2, f"https://instagram.com/s{i}", 100])
    sheet = tmp_path / "o.xlsx"
    wb.save(sheet)
    path = write_config(tmp_path, panel.url, sheet)
    run_sheets(load_config(path))
    wb = load_workbook(sheet)
    ws = wb["Orders"]
    col = [c.value for c in ws[1]].index("action") + 1
    for r in range(2, 152):
        ws.cell(row=r, column=col).value = "refill"
    wb.save(sheet)

    stop = threading.Event()
    calls = []
    original = PanelClient.refills

    def refills(self, ids):
        calls.append(len(list(ids)))
        stop.set()  # Ctrl-C arrives while the first batch is out
        return original(self, ids)

    monkeypatch.setattr(PanelClient, "refills", refills)
    run_sheets(load_config(path), PassOptions(stop=stop))
    assert calls == [100], f"refill batches sent after the stop: {calls}"
