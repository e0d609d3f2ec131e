from __future__ import annotations

import signal
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
    t.process.send_signal(signal.SIGINT)
    t.expect("stopping")  # the first one is taken: nothing new will be sent
    if signals == 2:
        t.process.send_signal(signal.SIGINT)  # the second stops at once
    if signals == 1:
        t.answer("")
    code, out = t.finish()
    print(repr(out))
    assert panel.ledger.calls["add"] == 0
    assert code == 130, code
