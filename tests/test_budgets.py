"""Budgets over time, counted from the journal across passes and processes; held rows say why."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import ExitCode
from sheetorders.pipeline import PassOptions
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, write_config
from sheetorders.workbook import build_order_workbook

# Service 2 costs 2.40 per 1000: each of these rows is 0.24 USD.
EACH = "0.24"


def rows(count: int, tag: str = "b") -> list[dict[str, Any]]:
    return [{"service": 2, "link": f"https://instagram.com/{tag}{i}", "quantity": 100} for i in range(count)]


def setup(tmp_path: Path, panel: PanelServer, count: int, **config: Any) -> tuple[Path, Path]:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(count))
    path = write_config(tmp_path, panel.url, sheet)
    data = yaml.safe_load(path.read_text())
    for key, value in config.items():
        if key == "panel_budget":
            data["panels"]["main"]["budget"] = value
        elif key == "sheet":
            data["sheet"].update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path, sheet


def at(text: str):
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return lambda: moment


def held(sheet: Path) -> list[dict[str, Any]]:
    return [r for r in read_sheet(sheet) if r["status"] == "Held"]


def test_a_daily_budget_holds_rows_until_local_midnight(tmp_path: Path, panel: PanelServer) -> None:
    path, sheet = setup(tmp_path, panel, 6, budget={"daily": "1.00", "timezone": "Europe/Berlin"})
    config = load_config(path)
    evening = PassOptions(clock=at("2026-12-01T21:00:00"))  # 22:00 in Berlin

    first = run_sheets(config, evening)
    assert len(panel.ledger.orders) == 4  # 4 × 0.24 = 0.96; a fifth would be 1.20
    assert first.exit_code == ExitCode.ROWS_FAILED  # rows became Held: someone should know
    waiting = held(sheet)
    assert len(waiting) == 2
    assert waiting[0]["error"] == "daily budget: 1.00 USD, spent 0.96 today; row 6 needs 0.24"

    again = run_sheets(config, PassOptions(clock=at("2026-12-01T22:30:00")))  # 23:30 in Berlin
    assert len(panel.ledger.orders) == 4
    assert again.exit_code == ExitCode.OK  # still Held, as they were: no new problem

    after_midnight = run_sheets(config, PassOptions(clock=at("2026-12-01T23:05:00")))  # 00:05 Berlin
    assert len(panel.ledger.orders) == 6 and after_midnight.sheets[0].ordered == 2
    assert not held(sheet) and all(r["order_id"] and not r["error"] for r in read_sheet(sheet))


def test_a_budget_counts_what_another_process_spent(tmp_path: Path, panel: PanelServer) -> None:
    path, sheet = setup(tmp_path, panel, 2, budget={"daily": "0.50"})
    other = build_order_workbook(tmp_path / "other.xlsx", rows(2, "o"))
    subprocess.run(
        [sys.executable, "-m", "sheetorders", "run", "--sheet", str(other), "-c", str(path)],
        env={**os.environ, "TEST_PANEL_KEY": TEST_KEY},
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert len(panel.ledger.orders) == 2  # 0.48 spent today by the other process
    run_sheets(load_config(path))
    assert len(panel.ledger.orders) == 2
    assert held(sheet)[0]["error"].startswith("daily budget: 0.50 USD, spent 0.48 today")


def test_the_tightest_of_panel_and_sheet_budgets_wins(tmp_path: Path, panel: PanelServer) -> None:
    path, sheet = setup(
        tmp_path,
        panel,
        5,
        budget={"monthly": "100"},
        panel_budget={"daily": "0.72"},
        sheet={"name": "team-a", "budget": {"monthly": "0.50"}},
    )
    run_sheets(load_config(path))
    assert len(panel.ledger.orders) == 2
    errors = [r["error"] for r in held(sheet)]
    assert errors[0] == "monthly budget of sheet team-a: 0.50 USD, spent 0.48 this month; row 4 needs 0.24"


def test_an_uncertain_order_counts_as_spent(tmp_path: Path, panel: PanelServer) -> None:
    path, sheet = setup(tmp_path, panel, 3, budget={"daily": "0.50"})
    panel.faults.queue("drop", actions=["add"])  # the first order is created, its answer lost
    report = run_sheets(load_config(path))
    assert report.sheets[0].uncertain == 1
    assert len(panel.ledger.orders) == 2  # the uncertain one and one more: 0.48
    assert len(held(sheet)) == 1


def test_max_spend_of_one_pass_holds_the_rest_with_the_figures(tmp_path: Path, panel: PanelServer) -> None:
    path, sheet = setup(tmp_path, panel, 4)
    run_sheets(load_config(path), PassOptions(max_spend=Decimal("0.50")))
    assert len(panel.ledger.orders) == 2
    assert held(sheet)[0]["error"] == "max_spend of this pass: 0.50, planned 0.48; row 4 needs 0.24"


def test_the_budget_command_shows_each_limit_spent_and_left(tmp_path: Path, panel: PanelServer) -> None:
    import json

    from click.testing import CliRunner

    from sheetorders.cli import cli

    path, _ = setup(
        tmp_path, panel, 3, budget={"daily": "1.00", "monthly": "10"}, panel_budget={"daily": "0.50"}
    )
    run_sheets(load_config(path))  # 2 placed (0.48), the third held by the panel's budget
    result = CliRunner().invoke(cli, ["budget", "-c", str(path), "--json"], env={"TEST_PANEL_KEY": TEST_KEY})
    assert result.exit_code == 0, result.output
    shown = {entry["limit"]: entry for entry in json.loads(result.output)}
    assert set(shown) == {"daily budget", "monthly budget", "daily budget of panel main"}
    assert shown["daily budget of panel main"]["spent"] == "0.48"
    assert shown["daily budget of panel main"]["left"] == "0.02"
    assert shown["monthly budget"]["left"] == "9.52"
    table = CliRunner().invoke(cli, ["budget", "-c", str(path)], env={"TEST_PANEL_KEY": TEST_KEY})
    assert "daily budget of panel main" in table.output and "9.52" in table.output


def test_a_subscription_is_priced_for_every_post_it_may_take(tmp_path: Path, panel: PanelServer) -> None:
    sub = {"service": 18, "username": "big", "min": 5000, "max": 10000, "delay": 0, "posts": 100}
    unbounded = {"service": 18, "username": "open", "min": 100, "max": 200, "delay": 0}
    sheet = build_order_workbook(tmp_path / "orders.xlsx", [sub, unbounded])
    path = write_config(tmp_path, panel.url, sheet, budget={"daily": "5"})
    run_sheets(load_config(path))
    assert not panel.ledger.orders  # 0.95 × 10000 × 100 / 1000 = 950, not 0.95
    big, open_ended = read_sheet(sheet)
    assert big["status"] == "Held" and "needs 950.00" in big["error"]
    assert open_ended["status"] == "Held" and "no upper bound" in open_ended["error"]


def test_a_monthly_budget_starts_again_at_the_first_local_midnight_of_the_month(
    tmp_path: Path, panel: PanelServer
) -> None:
    path, sheet = setup(tmp_path, panel, 4, budget={"monthly": "0.50", "timezone": "Europe/Berlin"})
    config = load_config(path)
    run_sheets(config, PassOptions(clock=at("2026-11-30T22:30:00")))  # 23:30 on 30 November in Berlin
    assert len(panel.ledger.orders) == 2 and len(held(sheet)) == 2
    assert held(sheet)[0]["error"].startswith("monthly budget: 0.50 USD, spent 0.48 this month")
    run_sheets(config, PassOptions(clock=at("2026-11-30T22:50:00")))  # still November there
    assert len(panel.ledger.orders) == 2
    run_sheets(config, PassOptions(clock=at("2026-11-30T23:10:00")))  # 00:10 on 1 December in Berlin
    assert len(panel.ledger.orders) == 4 and not held(sheet)
