"""The pass on a template's sheet: its Services tab kept current (at most once an hour, with the
catalogs the pass loaded), and a row whose service left the catalog."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from sheetorders.app import run_sheets
from sheetorders.config import Config, load_config
from sheetorders.errors import ExitCode
from sheetorders.models import Service
from sheetorders.pipeline import PassOptions
from sheetorders.report import RunReport
from sheetorders.template import layout_from_config, service_entry
from sheetorders.template_xlsx import write_template
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet, set_cells, write_config

START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(tmp_path: Path, panel: PanelServer) -> Config:
    config = load_config(write_config(tmp_path, panel.url, tmp_path / "orders.xlsx"))
    write_template(tmp_path / "orders.xlsx", layout_from_config(config, rows=20))
    return config


def services_tab(path: Path) -> dict[int, dict[str, Any]]:
    rows = list(load_workbook(path)["Services"].values)
    return {row[1]: dict(zip(rows[0], row, strict=True)) for row in rows[1:] if row[1] is not None}


def order_row(number: int, service_id: int, panel: PanelServer) -> dict[tuple[int, str], Any]:
    entry = panel.service(service_id)
    service = Service(
        id=str(service_id), name=entry["name"], type=entry["type"], category=entry["category"],
        rate=Decimal(entry["rate"]), min=int(entry["min"]), max=int(entry["max"]),
        refill=entry["refill"], cancel=entry["cancel"], dripfeed=entry.get("dripfeed"),
    )  # fmt: skip
    link = f"https://instagram.com/p/row-{number}"
    return {(number, "service"): service_entry(service), (number, "link"): link, (number, "quantity"): 500}


def sync(config: Config, clock: Clock) -> RunReport:
    return run_sheets(config, PassOptions(clock=clock))


def test_a_pass_that_loads_the_catalog_brings_the_services_tab_up_to_date_once_an_hour(
    config: Config, panel: PanelServer, clock: Clock
) -> None:
    sheet = Path(config.sheets[0].source)
    set_cells(sheet, order_row(2, 2, panel))
    panel.service(2)["rate"] = "2.10"
    panel.reset_calls()
    placed = sync(config, clock)
    assert placed.exit_code == ExitCode.OK and placed.sheets[0].ordered == 1, placed.as_dict()
    assert panel.ledger.calls["services"] == 1  # the pass's own: the tab was refreshed with it
    row = services_tab(sheet)[2]
    assert Decimal(str(row["rate"])) == Decimal("2.10")
    assert row["entry"] == "2 — Instagram Followers | 30 days refill — 2.10 / 1000"
    assert read_sheet(sheet)[0]["order_id"]  # the Orders tab was written first, and kept

    # Within the hour: a pass that loads the catalog again leaves the tab alone.
    panel.service(2)["rate"] = "2.20"
    clock.now += timedelta(minutes=50)
    set_cells(sheet, order_row(3, 2, panel))
    sync(config, clock)
    assert Decimal(str(services_tab(sheet)[2]["rate"])) == Decimal("2.10")
    # An hour after the last refresh it is brought up to date again.
    clock.now += timedelta(minutes=11)
    set_cells(sheet, order_row(4, 1, panel))
    panel.reset_calls()
    sync(config, clock)
    assert panel.ledger.calls["services"] == 1
    assert Decimal(str(services_tab(sheet)[2]["rate"])) == Decimal("2.20")


def test_the_refresh_keeps_an_idle_sheet_idle(config: Config, panel: PanelServer, clock: Clock) -> None:
    sheet = Path(config.sheets[0].source)
    set_cells(sheet, {(2, "service"): 2, (2, "link"): "not a link", (2, "quantity"): 500})
    panel.service(2)["name"] = "Followers, renamed"
    first = sync(config, clock)
    assert first.exit_code == ExitCode.ROWS_FAILED  # an Invalid row: loads the catalog, places nothing
    assert services_tab(sheet)[2]["name"] == "Followers, renamed"
    second = sync(config, clock)  # the same Invalid row, nothing new: ends idle
    assert second.exit_code == ExitCode.OK and not second.sheets[0].unchanged
    clock.now += timedelta(hours=2)
    panel.service(2)["name"] = "Followers, renamed again"
    before = sheet.read_bytes()
    third = sync(config, clock)  # idle: not read, nothing asked, nothing written
    assert third.sheets[0].unchanged and sheet.read_bytes() == before


def test_a_refresh_written_by_an_idle_ending_pass_does_not_wake_the_next(
    config: Config, panel: PanelServer, clock: Clock
) -> None:
    sheet = Path(config.sheets[0].source)
    set_cells(sheet, {(2, "service"): 2, (2, "link"): "not a link", (2, "quantity"): 500})
    sync(config, clock)
    clock.now += timedelta(hours=2)
    panel.service(2)["rate"] = "2.30"
    refreshed = sync(config, clock)  # the standing Invalid row: idle at the end, after the refresh
    assert not refreshed.sheets[0].unchanged
    assert Decimal(str(services_tab(sheet)[2]["rate"])) == Decimal("2.30")
    panel.reset_calls()
    assert sync(config, clock).sheets[0].unchanged  # the Services write is covered by the stamp
    assert sum(panel.ledger.calls.values()) == 0


def test_a_services_tab_that_cannot_be_written_is_a_notice(
    config: Config, panel: PanelServer, clock: Clock
) -> None:
    sheet = Path(config.sheets[0].source)
    workbook = load_workbook(sheet)
    workbook["Services"].merge_cells("E3:F3")  # service 2's rate is covered: openpyxl refuses it
    workbook.save(sheet)
    set_cells(sheet, order_row(2, 2, panel))
    panel.service(2)["rate"] = "2.10"
    done = sync(config, clock)
    (report,) = done.sheets
    assert report.ordered == 1 and done.exit_code == ExitCode.OK, done.as_dict()
    assert read_sheet(sheet)[0]["order_id"]
    (notice,) = [n for n in report.notices if "Services" in n]
    assert notice.startswith("the Services tab was not brought up to date:") and "merged" in notice


def test_a_row_whose_service_left_the_catalog_says_so_and_the_tab_drops_it(
    config: Config, panel: PanelServer, clock: Clock
) -> None:
    sheet = Path(config.sheets[0].source)
    set_cells(sheet, {**order_row(2, 3, panel), **order_row(3, 2, panel)})  # picked from the dropdown
    panel.catalog[:] = [item for item in panel.catalog if str(item["service"]) != "3"]
    done = sync(config, clock)
    assert done.exit_code == ExitCode.ROWS_FAILED and done.sheets[0].ordered == 1
    gone, placed = read_sheet(sheet)[:2]
    assert gone["status"] == "Invalid" and not gone["order_id"]
    assert gone["error"] == 'service: 3 is not in the catalog of panel "main"'
    assert placed["order_id"]
    assert 3 not in services_tab(sheet) and 2 in services_tab(sheet)
