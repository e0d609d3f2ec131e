"""A header that looks like one of sheetorders' columns but is not stops the pass before anything
is placed; mapped (`columns:`) or declared the user's own (`ignore_columns:`), it is fine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from openpyxl import Workbook

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import ExitCode
from sheetorders.headers import resembles
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet, write_config

DRIP_FEED = [1, "https://instagram.com/drip", 100, 5, 30]  # service 1 takes drip-feed


def sheet_with(path: Path, header: list[str], row: list[object]) -> Path:
    workbook = Workbook()
    ws = workbook.active
    ws.title = "Orders"
    ws.append(header)
    ws.append(row)
    workbook.save(path)
    return path


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("Run", "runs"), ("Intervals", "interval"), ("quantitty", "quantity"), ("Link URL", "link")],
)
def test_a_near_miss_header_is_refused_before_any_order(
    tmp_path: Path, panel: PanelServer, typed: str, meant: str
) -> None:
    header = ["service", "link", "quantity", "runs", "interval"]
    header[header.index(meant)] = typed
    sheet = sheet_with(tmp_path / "orders.xlsx", header, DRIP_FEED)
    report = run_sheets(load_config(write_config(tmp_path, panel.url, sheet)))
    error = report.sheets[0].error or ""
    assert f"{typed!r} (column" in error and f"looks like {meant!r}" in error
    assert "columns:" in error and "ignore_columns:" in error
    assert report.exit_code == ExitCode.USAGE
    assert panel.ledger.calls["add"] == 0 and not panel.ledger.orders


def test_a_mapped_near_miss_is_that_column_and_an_ignored_one_is_the_users(
    tmp_path: Path, panel: PanelServer
) -> None:
    sheet = sheet_with(
        tmp_path / "orders.xlsx",
        ["service", "link", "quantity", "Run", "interval", "Status note"],
        [*DRIP_FEED, "for Ann"],
    )
    path = write_config(tmp_path, panel.url, sheet)
    data = yaml.safe_load(path.read_text())
    data["columns"] = {"Run": "runs"}
    data["ignore_columns"] = ["Status note"]
    path.write_text(yaml.safe_dump(data))
    report = run_sheets(load_config(path))
    assert report.exit_code == ExitCode.OK, report.sheets[0].problems
    (order,) = panel.ledger.orders.values()
    assert order.fields.get("runs") == "5"  # the drip-feed kept its runs
    assert read_sheet(sheet)[0]["Status note"] == "for Ann"


@pytest.mark.parametrize("own", ["Notes", "Campaign", "Team", "Budget", "cost", "Price", "Client", "Date"])
def test_ordinary_headers_of_a_team_are_not_taken_for_ours(own: str) -> None:
    from sheetorders.columns import KNOWN_COLUMNS

    assert not any(resembles(own, name) for name in KNOWN_COLUMNS)
