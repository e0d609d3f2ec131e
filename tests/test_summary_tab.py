"""`summary_tab:`: a tab the tool keeps with the sheet's spend per day and per status, from the
journal; in Excel with a bar chart, in the same save as the results; in Google Sheets after them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from openpyxl import load_workbook

from sheetorders import summary_tab
from sheetorders.app import run_sheets
from sheetorders.config import Config, load_config
from sheetorders.errors import ExitCode
from sheetorders.journal import Journal
from sheetorders.pipeline import PassOptions
from sheetorders.sheets import files
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.sheets_server import FakeSheetsServer, google_options
from sheetorders.testing.workbooks import read_sheet, set_cells, write_config
from sheetorders.workbook import TEMPLATE_COLUMNS, build_order_workbook

DAY_1 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
DAY_2 = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


def on(day: datetime) -> PassOptions:
    return PassOptions(clock=lambda: day)


def rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"service": 2, "link": f"https://instagram.com/sum{i}", "quantity": 100 + 100 * i}
        for i in range(start, start + count)
    ]


def excel_config(tmp_path: Path, panel: PanelServer, count: int, summary: str | None = "Summary") -> Config:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(count))
    return with_summary(write_config(tmp_path, panel.url, sheet), summary)


def with_summary(path: Path, summary: str | None) -> Config:
    data = yaml.safe_load(path.read_text())
    data["sheet"].pop("summary_tab", None)
    if summary is not None:
        data["sheet"]["summary_tab"] = summary
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def sheet_path(config: Config) -> Path:
    return Path(config.sheets[0].source)


def tab_values(path: Path, title: str = "Summary") -> list[list[Any]]:
    workbook = load_workbook(path)
    found = [list(row) for row in workbook[title].iter_rows(values_only=True)]
    while found and all(v is None for v in found[-1]):
        found.pop()
    return [row[: max((i + 1 for i, v in enumerate(row) if v is not None), default=0)] for row in found]


def section(values: list[list[Any]], title: str) -> list[list[Any]]:
    """The lines of one section (after its title and header), its total line last."""
    start = next(i for i, row in enumerate(values) if row and row[0] == title) + 2
    end = next(i for i in range(start, len(values)) if values[i][0] == "total")
    return values[start : end + 1]


def journal_figures(config: Config) -> tuple[int, Decimal]:
    """Orders the journal accounts for, and what they cost (charge, else estimate)."""
    with Journal(config.journal) as journal:
        return len(journal.ledger.history("")), journal.ledger.spent("")


def charts(path: Path, title: str = "Summary") -> list[Any]:
    return list(load_workbook(path)[title]._charts)


# --- Excel -------------------------------------------------------------------------------


def test_a_pass_with_orders_writes_the_summary_tab_with_its_chart(tmp_path, panel) -> None:
    config = excel_config(tmp_path, panel, 3)
    report = run_sheets(config, on(DAY_1))
    assert report.exit_code == ExitCode.OK and report.sheets[0].ordered == 3
    path = sheet_path(config)
    values = tab_values(path)

    count, spent = journal_figures(config)
    days = section(values, summary_tab.BY_DAY)
    assert [line[:2] for line in days] == [["2026-03-01", 3], ["total", 3]]
    assert Decimal(str(days[-1][2])) == spent and count == 3
    statuses = section(values, summary_tab.BY_STATUS)
    assert [line[:2] for line in statuses] == [["Pending", 3], ["total", 3]]
    assert Decimal(str(statuses[-1][2])) == spent and days[-1][4] == "USD"

    (chart,) = charts(path)
    assert chart.series[0].val.numRef.f == "'Summary'!$C$3"  # the day row, not the total
    assert all(row["order_id"] for row in read_sheet(path))  # the results are there too


def test_a_later_pass_with_more_orders_rebuilds_the_tab_and_its_chart(tmp_path, panel) -> None:
    config = excel_config(tmp_path, panel, 3)
    run_sheets(config, on(DAY_1))
    path = sheet_path(config)
    set_cells(path, {(5 + i, k): v for i, row in enumerate(rows(2, start=3)) for k, v in row.items()})

    report = run_sheets(config, on(DAY_2))

    assert report.sheets[0].ordered == 2
    workbook = load_workbook(path)
    assert [name.casefold() for name in workbook.sheetnames].count("summary") == 1
    count, spent = journal_figures(config)
    days = section(tab_values(path), summary_tab.BY_DAY)
    assert [line[:2] for line in days] == [["2026-03-01", 3], ["2026-03-02", 2], ["total", 5]]
    assert Decimal(str(days[-1][2])) == spent and count == 5
    assert sum(Decimal(str(line[2])) for line in days[:-1]) == spent
    (chart,) = charts(path)  # one chart, over both days
    assert chart.series[0].val.numRef.f == "'Summary'!$C$3:$C$4"


def test_the_summary_goes_out_in_the_save_of_the_results(tmp_path, panel, monkeypatch) -> None:
    config = excel_config(tmp_path, panel, 2)
    run_sheets(config, on(DAY_1))
    path = sheet_path(config)
    set_cells(path, {(4, k): v for k, v in rows(1, start=2)[0].items()})
    saves: list[Path] = []
    original = files.atomic_write

    def counted(target: Path, *args: Any, **kwargs: Any) -> Any:
        saves.append(target)
        return original(target, *args, **kwargs)

    monkeypatch.setattr(files, "atomic_write", counted)
    run_sheets(config, on(DAY_2))

    assert len(saves) == 1  # the new order's results and the summary: one save
    assert section(tab_values(path), summary_tab.BY_DAY)[-1][:2] == ["total", 3]


def test_an_unchanged_pass_leaves_the_file_alone(tmp_path, panel) -> None:
    config = excel_config(tmp_path, panel, 3)
    run_sheets(config)  # placed: Pending
    run_sheets(config)  # statuses read back once
    path = sheet_path(config)
    before = os.stat(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns - 10_000_000_000))
    stamped = os.stat(path).st_mtime_ns

    report = run_sheets(config)  # the panel's clock stands still: nothing changed

    assert report.sheets[0].refreshed == 3 and report.sheets[0].notices == []
    assert os.stat(path).st_mtime_ns == stamped


def test_a_summary_alone_is_saved_and_the_order_tab_keeps_its_cells_and_styles(tmp_path, panel) -> None:
    config = excel_config(tmp_path, panel, 3, summary=None)
    run_sheets(config)
    run_sheets(config)  # nothing left to write in the order tab
    path = sheet_path(config)
    before = _orders_tab(path)
    config = with_summary(Path(str(config.path)), "Summary")

    report = run_sheets(config)

    assert report.sheets[0].notices == []
    assert section(tab_values(path), summary_tab.BY_STATUS)[-1][:2] == ["total", 3]
    assert _orders_tab(path) == before
    assert load_workbook(path).sheetnames[0] == "Orders"


def _orders_tab(path: Path) -> dict[str, Any]:
    sheet = load_workbook(path)["Orders"]
    cells = {
        cell.coordinate: (cell.value, cell.font.b, cell.fill.fgColor.rgb, cell.number_format)
        for row in sheet.iter_rows()
        for cell in row
    }
    widths = {key: dim.width for key, dim in sheet.column_dimensions.items()}
    rules = [str(rule) for rule in sheet.conditional_formatting]
    return {
        "cells": cells,
        "widths": widths,
        "validations": len(sheet.data_validations.dataValidation),
        "rules": rules,
        "freeze": sheet.freeze_panes,
    }


def test_a_summary_that_cannot_be_made_is_a_notice_and_the_results_are_written(
    tmp_path, panel, monkeypatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("no room for a chart")

    monkeypatch.setattr(summary_tab, "render", broken)
    config = excel_config(tmp_path, panel, 2)

    report = run_sheets(config)

    assert report.exit_code == ExitCode.OK and report.sheets[0].ordered == 2
    assert all(row["order_id"] for row in read_sheet(sheet_path(config)))
    (notice,) = report.sheets[0].notices
    assert "summary tab 'Summary'" in notice and "no room for a chart" in notice
    assert "Summary" not in load_workbook(sheet_path(config)).sheetnames


def test_a_summary_tab_that_names_the_order_tab_is_refused(tmp_path, panel) -> None:
    config = excel_config(tmp_path, panel, 2, summary="orders")

    report = run_sheets(config)

    assert report.sheets[0].ordered == 2
    assert any("is the order tab itself" in notice for notice in report.sheets[0].notices)
    assert all(row["order_id"] and row["service"] == 2 for row in read_sheet(sheet_path(config)))


# --- Google Sheets -------------------------------------------------------------------------


@pytest.fixture
def sheets() -> Iterator[FakeSheetsServer]:
    with FakeSheetsServer() as server:
        yield server


def google_config(
    tmp_path: Path, sheets: FakeSheetsServer, panel: PanelServer, count: int
) -> tuple[str, Config]:
    header = list(TEMPLATE_COLUMNS)
    grid = [header] + [[row.get(name) for name in header] for row in rows(count)]
    key = sheets.create_spreadsheet("Team orders", {"Orders": grid})
    data = {
        "panels": {"main": {"url": panel.url, "key": "${TEST_PANEL_KEY}"}},
        "sheet": {
            "source": f"https://docs.google.com/spreadsheets/d/{key}/edit",
            "worksheet": "Orders",
            "summary_tab": "Summary",
        },
        "journal": str(tmp_path / "journal.sqlite"),
        "google": google_options(sheets, tmp_path),
    }
    path = tmp_path / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data))
    return key, load_config(path)


def written_tabs(sheets: FakeSheetsServer) -> list[str]:
    """The tab of each range of each values:batchUpdate, in order."""
    return [
        item["range"].split("!")[0].strip("'")
        for request in sheets.requests
        if request.kind == "values.batchUpdate"
        for item in request.json()["data"]
    ]


def test_a_google_sheet_gets_its_summary_tab_after_the_results(tmp_path, sheets, panel) -> None:
    key, config = google_config(tmp_path, sheets, panel, 3)

    report = run_sheets(config, on(DAY_1))

    assert report.exit_code == ExitCode.OK and report.sheets[0].notices == []
    assert "Summary" in sheets.tabs(key)
    tabs = written_tabs(sheets)
    assert tabs[0] == "Orders" and set(tabs[tabs.index("Summary") :]) == {"Summary"}  # results first
    count, spent = journal_figures(config)
    days = section(sheets.values(key, "Summary"), summary_tab.BY_DAY)
    assert [line[:2] for line in days] == [["2026-03-01", 3], ["total", 3]]
    assert Decimal(str(days[-1][2])) == spent and count == 3


def test_a_google_summary_is_rewritten_when_it_changes_and_only_then(tmp_path, sheets, panel) -> None:
    key, config = google_config(tmp_path, sheets, panel, 3)
    run_sheets(config, on(DAY_1))
    header = sheets.values(key, "Orders")[0]
    for name, value in rows(1, start=3)[0].items():
        sheets.set_cell(key, "Orders", 5, header.index(name) + 1, value)

    run_sheets(config, on(DAY_2))

    count, spent = journal_figures(config)
    values = sheets.values(key, "Summary")
    days = section(values, summary_tab.BY_DAY)
    assert [line[:2] for line in days] == [["2026-03-01", 3], ["2026-03-02", 1], ["total", 4]]
    assert Decimal(str(days[-1][2])) == spent and count == 4
    assert section(values, summary_tab.BY_STATUS)[-1][:2] == ["total", 4]

    sheets.reset_calls()
    run_sheets(config, on(DAY_2))  # nothing new: the summary is read, not written
    assert "Summary" not in written_tabs(sheets)


def test_a_save_of_the_results_alone_keeps_the_chart(tmp_path, panel) -> None:
    config = excel_config(tmp_path, panel, 2)
    run_sheets(config, on(DAY_1))
    panel.advance(10)  # In progress: the statuses change, and the summary with them
    run_sheets(config, on(DAY_1))
    path = sheet_path(config)
    summary_before = tab_values(path)
    remains_before = [row["remains"] for row in read_sheet(path)]
    panel.advance(5)  # only `remains` moves on: the results change, the summary does not

    run_sheets(config, on(DAY_1))

    assert [row["remains"] for row in read_sheet(path)] != remains_before  # the file was saved
    assert tab_values(path) == summary_before
    (chart,) = charts(path)
    assert chart.series[0].val.numRef.f == "'Summary'!$C$3"


def test_a_csv_sheet_has_no_tab_for_a_summary(tmp_path, panel) -> None:
    sheet = tmp_path / "orders.csv"
    sheet.write_text("service,link,quantity\n2,https://instagram.com/csv1,100\n")
    config = with_summary(write_config(tmp_path, panel.url, sheet), "Summary")

    report = run_sheets(config)

    assert report.sheets[0].ordered == 1
    assert any("no other tabs" in notice for notice in report.sheets[0].notices)


def test_a_summary_tab_configured_for_an_idle_sheet_is_written_by_the_next_pass(tmp_path, panel) -> None:
    invalid = {"service": 2, "link": "not a link", "quantity": 500}
    sheet = build_order_workbook(tmp_path / "orders.xlsx", [invalid])
    path = write_config(tmp_path, panel.url, sheet)
    config = load_config(path)
    run_sheets(config)  # an Invalid row
    assert run_sheets(config).sheets[0].unchanged is False  # the same row: ends idle
    assert run_sheets(config).sheets[0].unchanged
    config = with_summary(path, "Summary")

    report = run_sheets(config)

    assert not report.sheets[0].unchanged and report.sheets[0].notices == []
    assert "Summary" in load_workbook(sheet).sheetnames
    assert run_sheets(config).sheets[0].unchanged  # idle again, the tab included
