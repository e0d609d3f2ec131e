"""`sheetorders template --google`: a Google spreadsheet set up as the order sheet, against the
local Sheets API fake, and the pass on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sheetorders.app import run_sheets
from sheetorders.cli import cli
from sheetorders.columns import map_headers
from sheetorders.config import Config, load_config
from sheetorders.errors import ExitCode
from sheetorders.pipeline import PassOptions
from sheetorders.template import (
    STATUS_COLOURS,
    estimate_formula,
    layout_from_config,
    refresh_services_tab,
    service_entry,
)
from sheetorders.template_google import write_google_template
from sheetorders.testing.panel_server import PanelServer, default_catalog
from sheetorders.testing.sheets_server import FakeSheetsServer, google_options


@pytest.fixture
def sheets() -> Iterator[FakeSheetsServer]:
    with FakeSheetsServer() as server:
        yield server


@pytest.fixture
def key(sheets: FakeSheetsServer) -> str:
    return sheets.create_spreadsheet("Team orders", {"Sheet1": []})


@pytest.fixture
def config_path(tmp_path: Path, sheets: FakeSheetsServer, panel: PanelServer, key: str) -> Path:
    data = {
        "panels": {"main": {"url": panel.url, "key": "${TEST_PANEL_KEY}"}},
        "sheet": {"source": f"https://docs.google.com/spreadsheets/d/{key}/edit", "worksheet": "Orders"},
        "journal": str(tmp_path / "journal.sqlite"),
        "google": google_options(sheets, tmp_path),
    }
    path = tmp_path / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


def state(sheets: FakeSheetsServer, key: str) -> dict[str, Any]:
    """Everything the template sets, tab by tab."""
    return {
        tab: {
            "values": sheets.values(key, tab),
            "properties": sheets.sheet_properties(key, tab),
            "validations": sheets.data_validations(key, tab),
            "rules": sheets.conditional_formats(key, tab),
            "formats": sheets.cell_formats(key, tab),
            "columns": sheets.column_properties(key, tab),
            "groups": sheets.column_groups(key, tab),
            "filter": sheets.basic_filter(key, tab),
        }
        for tab in sheets.tabs(key)
    }


def batch_requests(sheets: FakeSheetsServer) -> Counter[str]:
    (request,) = [r for r in sheets.requests if r.kind == "batchUpdate"]
    return Counter(next(iter(item)) for item in request.json()["requests"])


def test_the_template_sets_up_the_tabs_with_one_batch_update_and_one_values_write(sheets, key, config):
    layout = layout_from_config(config)
    result = write_google_template(key, config.google, layout)
    assert result.added_tabs == ["Orders", "Services", "Help"]
    assert sheets.tabs(key) == ["Orders", "Services", "Help", "Sheet1"]
    assert sheets.calls["batchUpdate"] == 1 and sheets.calls["values.batchUpdate"] == 1
    assert sheets.calls["metadata"] == 1

    values = sheets.values(key, "Orders")
    headers = values[0]
    assert headers == list(layout.names) and set(map_headers(headers)) == set(headers)
    estimate = headers.index("estimate") + 1
    assert sheets.is_formula(key, "Orders", 2, estimate)
    assert values[1][estimate - 1] == estimate_formula(layout, 2)
    assert values[layout.last_row - 1][estimate - 1] == estimate_formula(layout, layout.last_row)
    assert all(not any(row[: estimate - 1]) for row in values[1:])  # nothing filled but the formula

    services = sheets.values(key, "Services")
    assert services[0][:3] == ["panel", "id", "name"] and len(services) == len(default_catalog()) + 1
    assert [row[1] for row in services[1:]] == [int(item["service"]) for item in default_catalog()]
    assert services[1][15] == "1 — Instagram Likes | Real | Drip-feed — 0.90 / 1000"
    assert services[1][16] == "1" and not sheets.is_formula(key, "Services", 2, 17)  # text, not a number
    assert sheets.basic_filter(key, "Services")["range"]["endRowIndex"] == len(services)
    assert sheets.sheet_properties(key, "Services")["gridProperties"]["rowCount"] == len(services)
    assert sheets.values(key, "Help")[0][0] == "What to fill"


def test_validations_colours_groups_and_frozen_header(sheets, key, config):
    layout = layout_from_config(config)
    write_google_template(key, config.google, layout)
    grid = sheets.sheet_properties(key, "Orders")["gridProperties"]
    assert grid["frozenRowCount"] == 1 and grid["frozenColumnCount"] == 1
    assert grid["rowCount"] >= layout.last_row

    validations = sheets.data_validations(key, "Orders")
    by_cell = {(v["range"]["startRowIndex"], v["range"]["startColumnIndex"]): v["rule"] for v in validations}
    for index, name in enumerate(layout.names):
        assert by_cell[(0, index)]["inputMessage"], name  # an input message on every header cell
    service = by_cell[(1, layout.number("service") - 1)]
    assert service["condition"] == {
        "type": "ONE_OF_RANGE",
        "values": [{"userEnteredValue": f"='Services'!$P$2:$P${len(default_catalog()) + 1}"}],
    }
    action = by_cell[(1, layout.number("action") - 1)]
    assert [v["userEnteredValue"] for v in action["condition"]["values"]] == ["refill", "cancel"]
    quantity = by_cell[(1, layout.number("quantity") - 1)]
    assert quantity["condition"]["values"][0]["userEnteredValue"].startswith("=AND(ISNUMBER(C2),C2=INT(C2)")
    assert "Services tab" in quantity["inputMessage"]

    rules = sheets.conditional_formats(key, "Orders")
    assert len(rules) == len(STATUS_COLOURS)
    formulas = [rule["booleanRule"]["condition"]["values"][0]["userEnteredValue"] for rule in rules]
    assert '$D2="Completed"' in formulas[0] and '$D2="Needs approval"' in formulas[3]
    assert all(rule["ranges"][0]["startColumnIndex"] == layout.number("status") - 1 for rule in rules)

    groups = sheets.column_groups(key, "Orders")
    assert [(g["collapsed"], g["range"]["startIndex"]) for g in groups] == [
        (False, layout.number("runs") - 1),
        (True, layout.number("ref") - 1),
    ]
    widths = sheets.column_properties(key, "Orders")
    assert widths[layout.number("link") - 1]["pixelSize"] > widths[layout.number("quantity") - 1]["pixelSize"]


def test_running_it_twice_changes_nothing(sheets, key, config):
    layout = layout_from_config(config)
    write_google_template(key, config.google, layout)
    first = state(sheets, key)
    sheets.reset_calls()
    again = write_google_template(key, config.google, layout)
    assert again.added_tabs == []
    assert state(sheets, key) == first
    sent = batch_requests(sheets)
    assert not {"addSheet", "addConditionalFormatRule", "addDimensionGroup"} & set(sent)
    assert sheets.tabs(key) == ["Orders", "Services", "Help", "Sheet1"]


def test_the_command_sets_up_the_configured_sheet_and_the_pass_places_its_rows(
    sheets, key, config_path, panel
):
    result = CliRunner().invoke(cli, ["-c", str(config_path), "template", "--google", key])
    assert result.exit_code == 0, result.output
    assert f"Wrote Google spreadsheet {key}" in result.stdout
    assert f"Next: sheetorders -c {config_path} run --dry-run " in result.stdout  # the configured sheet

    config = load_config(config_path)
    headers = sheets.values(key, "Orders")[0]
    catalog = {str(item["service"]): item for item in default_catalog()}
    layout = layout_from_config(config)
    entry = next(service_entry(listed.service) for listed in layout.services if listed.service.id == "2")
    typed = {"service": entry, "link": "https://instagram.com/p/google", "quantity": 100}
    for name, value in typed.items():
        sheets.set_cell(key, "Orders", 2, headers.index(name) + 1, value)
    dry = run_sheets(config, PassOptions(dry_run=True)).sheets[0]
    assert dry.invalid == 0 and len(dry.would_order) == 1, dry.problems
    placed = run_sheets(config)
    assert placed.exit_code == ExitCode.OK, placed.as_dict()
    row = sheets.values(key, "Orders")[1]
    order = panel.order(row[headers.index("order_id")])
    assert order.service == "2" and catalog["2"]["name"].startswith("Instagram Followers")
    assert sheets.is_formula(key, "Orders", 2, headers.index("estimate") + 1)  # the pass left it


def test_an_orders_tab_with_other_headers_is_left_alone(sheets, config_path):
    key = sheets.create_spreadsheet(
        "In use", {"Orders": [["service", "link", "my notes"], [1, "https://a", "x"]]}
    )
    result = CliRunner().invoke(cli, ["-c", str(config_path), "template", "--google", key])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "already has other headers (service, link, my notes)" in result.stderr
    assert sheets.values(key, "Orders") == [["service", "link", "my notes"], [1, "https://a", "x"]]
    assert sheets.tabs(key) == ["Orders"] and sheets.calls["batchUpdate"] == 0


def test_the_services_tab_is_kept_current_on_google(sheets, key, config):
    layout = layout_from_config(config)
    write_google_template(key, config.google, layout)
    catalog = {listed.service.id: listed.service for listed in layout.services}
    assert refresh_services_tab(key, config.google, {"main": catalog}) == 0  # current
    catalog["1"] = replace(catalog["1"], rate=Decimal("1.05"), max=40000)
    assert refresh_services_tab(key, config.google, {"main": catalog}) == 3  # rate, max, entry
    row = sheets.values(key, "Services")[1]
    assert row[5] == 1.05 and row[7] == 40000 and row[15].endswith("— 1.05 / 1000")
    assert sheets.is_formula(key, "Orders", 2, layout.number("estimate"))
