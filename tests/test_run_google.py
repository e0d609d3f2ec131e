"""`run` and `sync` on a Google Sheet: the real gspread client against the local Sheets API fake."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_kill_resume import run_cli
from test_run_excel import valid_example_rows

from sheetorders.app import run_sheets
from sheetorders.columns import map_headers
from sheetorders.config import Config, load_config
from sheetorders.errors import ExitCode
from sheetorders.journal import Journal
from sheetorders.pipeline import Panels, PassOptions, run_pass
from sheetorders.sheets.google import GoogleSheetsBackend
from sheetorders.testing.panel_server import SERVICE_TYPES, default_catalog
from sheetorders.testing.sheets_server import FakeSheetsServer, google_options
from sheetorders.workbook import TEMPLATE_COLUMNS


@pytest.fixture
def sheets() -> Iterator[FakeSheetsServer]:
    with FakeSheetsServer() as server:
        yield server


class GoogleSheet:
    def __init__(self, server: FakeSheetsServer, key: str, config: Config, config_path: Path) -> None:
        self.server = server
        self.key = key
        self.config = config
        self.config_path = config_path

    def rows(self) -> list[dict[str, Any]]:
        values = self.server.values(self.key, "Orders")
        columns = map_headers(values[0])
        columns.update({str(h): i for i, h in enumerate(values[0]) if h and i not in columns.values()})
        result = []
        for number, raw in enumerate(values[1:], start=2):
            if not any(v not in (None, "") for v in raw):
                continue
            row = {name: (raw[i] if i < len(raw) and raw[i] != "" else None) for name, i in columns.items()}
            row["_row"] = number
            result.append(row)
        return result

    def type(self, row: int, column: str, value: Any) -> None:
        header = self.server.values(self.key, "Orders")[0]
        self.server.set_cell(self.key, "Orders", row, header.index(column) + 1, value)


def make_google_sheet(
    tmp_path: Path, sheets: FakeSheetsServer, panel_url: str, rows: Sequence[Mapping[str, Any]], **extra: Any
) -> GoogleSheet:
    header = list(TEMPLATE_COLUMNS)
    grid = [header] + [[row.get(name) for name in header] for row in rows]
    key = sheets.create_spreadsheet("Team orders", {"Orders": grid})
    google = google_options(sheets, tmp_path)
    data = {
        "panels": {"main": {"url": panel_url, "key": "${TEST_PANEL_KEY}"}},
        "sheet": {
            "source": f"https://docs.google.com/spreadsheets/d/{key}/edit#gid=0",
            "worksheet": "Orders",
        },
        "journal": str(tmp_path / "journal.sqlite"),
        "google": {**google, **extra},
    }
    config_path = tmp_path / "sheetorders.yaml"
    config_path.write_text(yaml.safe_dump(data))
    return GoogleSheet(sheets, key, load_config(config_path), config_path)


def test_every_service_type_is_ordered_from_a_google_sheet(tmp_path, sheets, panel):
    rows = [row for row in valid_example_rows() if "waits" not in row["note"]]
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows)
    report = run_sheets(sheet.config)
    assert report.exit_code == ExitCode.OK, report.as_dict()
    result = sheet.rows()
    assert all(r["order_id"] for r in result)
    assert {panel.order(r["order_id"]).type for r in result} == set(SERVICE_TYPES)
    assert all(r["status"] in ("Pending", "In progress") for r in result)
    assert sheets.calls["values.batchUpdate"] == 1  # one write per pass


def test_validation_messages_land_in_the_google_sheet(tmp_path, sheets, panel):
    sheet = make_google_sheet(
        tmp_path,
        sheets,
        panel.url,
        [
            {"service": 2, "link": "https://instagram.com/a", "quantity": 10},
            {"service": 2, "link": "https://instagram.com/b", "quantity": "=A1*2"},
        ],
    )
    report = run_sheets(sheet.config)
    assert report.exit_code == ExitCode.ROWS_FAILED
    first, second = sheet.rows()
    assert first["status"] == "Invalid" and "quantity: 10 is below the minimum 50" in first["error"]
    assert second["status"] == "Invalid" and "formula" in second["error"]
    assert panel.ledger.calls["add"] == 0


def test_values_written_are_data_never_formulas(tmp_path, sheets, panel):
    sheet = make_google_sheet(
        tmp_path, sheets, panel.url, [{"service": 2, "link": "https://x.com/f", "quantity": 100}]
    )
    original = panel.handle

    def refuse_with_formula(form):
        if form.get("action") == "add":
            return 200, {"error": '=HYPERLINK("http://evil")'}
        return original(form)

    panel.handle = refuse_with_formula
    run_sheets(sheet.config)
    row = sheet.rows()[0]
    assert row["status"] == "Rejected" and row["error"].startswith("=HYPERLINK")
    header = sheets.values(sheet.key, "Orders")[0]
    assert not sheets.is_formula(sheet.key, "Orders", 2, header.index("error") + 1)


def test_refill_and_cancel_from_a_google_sheet(tmp_path, sheets, panel):
    sheet = make_google_sheet(
        tmp_path,
        sheets,
        panel.url,
        [
            {"service": 2, "link": "https://instagram.com/r", "quantity": 100},
            {"service": 2, "link": "https://instagram.com/c", "quantity": 100},
        ],
    )
    run_sheets(sheet.config)
    sheet.type(3, "action", "cancel")
    run_sheets(sheet.config)
    panel.advance(3600)
    sheet.type(2, "action", "refill")
    run_sheets(sheet.config)
    run_sheets(sheet.config)
    refill_row, cancel_row = sheet.rows()
    assert refill_row["refill_id"] and refill_row["action"] == "refill sent"
    assert cancel_row["status"] == "Canceled" and cancel_row["action"] == "cancel sent"
    assert panel.ledger.calls["refill"] == 1 and panel.ledger.calls["cancel"] == 1


def test_a_pass_that_meets_429s_finishes(tmp_path, sheets, panel):
    sheet = make_google_sheet(
        tmp_path, sheets, panel.url, [{"service": 2, "link": "https://x.com/q", "quantity": 100}]
    )
    waits: list[float] = []
    sheets.fail_next(429, count=2, retry_after=2, kind="values.batchGet")
    sheets.fail_next(429, count=1, retry_after=1, kind="values.batchUpdate")
    backend = GoogleSheetsBackend(
        sheet.config.sheets[0].source, "Orders", {**sheet.config.google, "sleep": waits.append}
    )
    with Journal(sheet.config.journal) as journal, Panels(sheet.config) as panels:
        report = run_pass(sheet.config, sheet.config.sheets[0], journal, panels, PassOptions(), backend)
    assert report.ordered == 1
    assert sheet.rows()[0]["order_id"]
    assert sorted(waits)[-2:] == [2, 2] or all(w >= 1 for w in waits)
    assert len(waits) == 3 and sum(1 for w in waits if w >= 2) == 2


def test_a_pass_over_1000_rows_reads_once_and_writes_once(tmp_path, sheets, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/k{i}", "quantity": 100} for i in range(1000)]
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows)
    run_sheets(sheet.config)  # places the 1,000 orders
    assert panel.ledger.calls["add"] == 1000
    # Placing took time: people may have moved rows, so that pass checked once more before writing.
    assert sheets.calls["values.batchGet"] == 2 and sheets.calls["values.batchUpdate"] == 1
    # The extra calls are the journal-mark read (one per pass) and, on a fresh sheet, its claim.
    assert sheets.calls["metadata"] == 1 and sheets.calls["batchUpdate"] == 1
    panel.advance(10)
    sheets.reset_calls()
    panel.reset_calls()
    report = run_sheets(sheet.config)  # refreshes them: every row changes
    assert report.sheets[0].refreshed == 1000
    assert panel.ledger.calls["status"] == 10
    calls = Counter({kind: n for kind, n in sheets.calls.items() if kind != "token"})
    # The extra metadata call is the journal-mark read; the sheet is marked already, no claim.
    assert calls == Counter({"values.batchGet": 1, "values.batchUpdate": 1, "metadata": 1}), calls
    assert sheets.calls["token"] <= 1
    assert all(r["status"] == "In progress" for r in sheet.rows())


def test_a_row_inserted_during_a_pass_is_not_overwritten_or_shifted(tmp_path, sheets, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/i{i}", "quantity": 100} for i in range(3)]
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows)
    original = panel.handle
    inserted = []

    def person_inserts_a_row(form):
        if form.get("action") == "add" and not inserted:
            inserted.append(True)
            sheets.insert_rows(
                sheet.key, "Orders", 2, [["", 2, "https://instagram.com/typed-by-a-person", 500]]
            )
        return original(form)

    panel.handle = person_inserts_a_row
    run_sheets(sheet.config)
    result = sheet.rows()
    person = next(r for r in result if r["link"] == "https://instagram.com/typed-by-a-person")
    assert person["_row"] == 2 and person["order_id"] is None and person["status"] is None
    for row in result:
        if row is person:
            continue
        order = panel.order(row["order_id"])
        assert order.link == row["link"], "an order ID landed on the wrong row"
    run_sheets(sheet.config)  # the person's row is ordered by the next pass
    assert sheet.rows()[0]["order_id"]
    assert len(panel.ledger.orders) == 4


def test_killed_runs_on_a_google_sheet_resume_without_duplicates(tmp_path, sheets, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/gk{i}", "quantity": 100} for i in range(25)]
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows)
    panel.faults.latency = 0.02
    rng = random.Random(7)
    # Once while orders are going out for sure, then at random moments; then to the end.
    killed = int(run_cli(sheet.config_path, None, kill_when=lambda: panel.ledger.calls["add"] >= 5) is None)
    for _ in range(3):
        killed += run_cli(sheet.config_path, kill_after=rng.uniform(0.5, 3.0)) is None
    for _ in range(2):
        run_cli(sheet.config_path, kill_after=None)
    result = sheet.rows()
    per_link = Counter(order.link for order in panel.ledger.orders.values())
    assert max(per_link.values()) == 1, "an order was placed twice"
    in_sheet = {r["order_id"] for r in result if r["order_id"]}
    uncertain = {r["link"] for r in result if r["status"] == "Uncertain"}
    lost = [oid for oid, o in panel.ledger.orders.items() if oid not in in_sheet and o.link not in uncertain]
    assert not lost
    assert len(in_sheet) + len(uncertain) == len(rows)
    assert killed >= 1


def test_demo_catalog_covers_every_type():
    assert {s["type"] for s in default_catalog()} == set(SERVICE_TYPES)


def test_a_google_sheet_whose_result_columns_are_protected_is_refused_before_any_order(
    tmp_path, sheets, panel
):
    rows = [{"service": 2, "link": f"https://instagram.com/p/locked-{i}", "quantity": 100} for i in range(3)]
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows)
    header = sheets.values(sheet.key, "Orders")[0]
    order_id = header.index("order_id")
    sheets.protect(sheet.key, "Orders", {"startColumnIndex": order_id, "endColumnIndex": order_id + 1})

    report = run_sheets(sheet.config)

    assert report.exit_code == ExitCode.USAGE
    assert panel.ledger.calls["add"] == 0  # the write-back would have been refused after ordering
    assert "in a protected range this account may not edit" in report.sheets[0].error

    sheets.let_edit(sheet.key, "Orders")  # the owner adds the account as an editor of the range
    placed = run_sheets(sheet.config)
    assert placed.exit_code == ExitCode.OK and all(row["order_id"] for row in sheet.rows())


def test_a_sheet_shared_as_viewer_is_refused_before_any_order(tmp_path, sheets, panel):
    first = {"service": 2, "link": "https://instagram.com/v0", "quantity": 100}
    sheet = make_google_sheet(tmp_path, sheets, panel.url, [first])
    run_sheets(sheet.config)  # the tab carries this journal's mark now
    assert len(panel.ledger.orders) == 1
    sheets.share(sheet.key, editable=False)  # the share turned to Viewer since
    new_row = {"service": 2, "link": "https://instagram.com/v1", "quantity": 100}
    sheets.insert_rows(sheet.key, "Orders", 3, [[new_row.get(name) for name in TEMPLATE_COLUMNS]])

    report = run_sheets(sheet.config)

    assert len(panel.ledger.orders) == 1  # nothing placed that could not be written back
    assert report.exit_code != ExitCode.OK
    assert "not shared with" in str(report.as_dict()) and "as Editor" in str(report.as_dict())
