from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.terminal import Terminal
from sheetorders.testing.workbooks import TEST_KEY, write_config
from sheetorders.workbook import build_order_workbook

ENV = {"TEST_PANEL_KEY": TEST_KEY}


@pytest.fixture
def panel() -> Iterator[PanelServer]:
    with PanelServer(key=TEST_KEY, balance="1000") as server:
        yield server


@pytest.mark.parametrize("signals", [1, 2])
def test_ctrl_c_at_the_question_places_nothing_and_exits_130(tmp_path, panel, signals):
    rows = [{"service": 2, "link": f"https://instagram.com/q{i}", "quantity": 100} for i in range(2)]
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows)
    config = write_config(tmp_path, panel.url, sheet)
    t = Terminal("run", "-c", str(config), cwd=tmp_path, env=ENV)
    t.expect("[y/N]")
    for _ in range(signals):
        t.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
    if signals == 1:
        t.answer("")
    code, out = t.finish()
    print(repr(out))
    assert panel.ledger.calls["add"] == 0
    assert code == 130, code
