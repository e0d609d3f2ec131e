"""On a terminal, a run shows what it is about to spend and asks before placing anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.terminal import Terminal
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, write_config
from sheetorders.workbook import build_order_workbook

ENV = {"TEST_PANEL_KEY": TEST_KEY}


def setup(tmp_path: Path, panel: PanelServer, **extra: object) -> tuple[Path, Path]:
    rows = [{"service": 2, "link": f"https://instagram.com/ask{i}", "quantity": 100} for i in range(3)]
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows)
    return write_config(tmp_path, panel.url, sheet, **extra), sheet


@pytest.mark.parametrize("command", ["run", "sync"])
@pytest.mark.parametrize("answer", ["", "n", "no", "sure"])
def test_anything_but_yes_places_nothing_and_writes_nothing(
    tmp_path: Path, panel: PanelServer, command: str, answer: str
) -> None:
    config, sheet = setup(tmp_path, panel)
    before = read_sheet(sheet)
    terminal = Terminal(command, "-c", str(config), cwd=tmp_path, env=ENV)
    terminal.expect("about to order")
    terminal.expect("3")  # orders
    terminal.expect("0.72 USD")  # 3 × 0.24, estimated
    terminal.expect("999.28 USD")  # the balance after
    terminal.expect("Place these 3 order(s)? [y/N]")
    terminal.answer(answer)
    code, _ = terminal.finish()
    assert code == 0
    assert panel.ledger.calls["add"] == 0
    assert read_sheet(sheet) == before


@pytest.mark.parametrize("answer", ["y", "yes", "YES"])
def test_yes_places_them(tmp_path: Path, panel: PanelServer, answer: str) -> None:
    config, sheet = setup(tmp_path, panel)
    terminal = Terminal("run", "-c", str(config), cwd=tmp_path, env=ENV)
    terminal.expect("Place these 3 order(s)? [y/N]")
    terminal.answer(answer)
    code, _ = terminal.finish()
    assert code == 0 and len(panel.ledger.orders) == 3
    assert all(r["order_id"] for r in read_sheet(sheet))


@pytest.mark.parametrize("how", [["--yes"], ["-y"], "config"])
def test_no_question_when_told_so(tmp_path: Path, panel: PanelServer, how: object) -> None:
    config, _ = setup(tmp_path, panel, **({"confirm": False} if how == "config" else {}))
    flags = how if isinstance(how, list) else []
    terminal = Terminal("run", "-c", str(config), *flags, cwd=tmp_path, env=ENV)
    code, seen = terminal.finish()
    assert code == 0, seen
    assert "Place these" not in seen
    assert len(panel.ledger.orders) == 3


def test_without_a_terminal_nothing_is_asked(tmp_path: Path, panel: PanelServer) -> None:
    config, _ = setup(tmp_path, panel)
    done = subprocess.run(
        [sys.executable, "-m", "sheetorders", "run", "-c", str(config)],
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Place these" not in done.stderr + done.stdout
    assert len(panel.ledger.orders) == 3
    assert yaml.safe_load(config.read_text()).get("confirm") is None  # the default asks, where it can
