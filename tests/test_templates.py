"""The files users start from: the order-sheet templates, the scheduler units, the package data."""

from __future__ import annotations

import configparser
import shlex
import warnings
import zipfile
from pathlib import Path

import click
from openpyxl import load_workbook

from sheetorders.cli import cli
from sheetorders.columns import KNOWN_COLUMNS, map_headers
from sheetorders.resources import load_schema, template_path
from sheetorders.workbook import TEMPLATE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


def parse_cli(args: list[str]) -> click.Context:
    """Parse a command line the way `sheetorders` would, without running it."""
    group_context = cli.make_context("sheetorders", list(args), resilient_parsing=False)
    with warnings.catch_warnings():  # click 8.2 deprecates protected_args; it is still where the command is
        warnings.simplefilter("ignore", DeprecationWarning)
        pending = [*group_context.protected_args, *group_context.args]
    name, command, rest = cli.resolve_command(group_context, pending)
    assert command is not None, name
    return command.make_context(name, rest, parent=group_context)


def test_xlsx_template_has_every_column_and_they_are_all_recognised():
    sheet = load_workbook(TEMPLATES / "orders.xlsx")["Orders"]
    headers = [cell.value for cell in sheet[1]]
    assert headers == list(TEMPLATE_COLUMNS)
    recognised = map_headers(headers)
    assert set(recognised) == set(TEMPLATE_COLUMNS) - {"note"}
    assert set(recognised) == KNOWN_COLUMNS
    assert sheet.freeze_panes == "C2"
    assert sheet.max_row == 1  # no example data in the template


def test_csv_template_has_the_same_columns():
    assert (TEMPLATES / "orders.csv").read_text().strip().split(",") == list(TEMPLATE_COLUMNS)


def test_templates_and_schemas_load_through_the_package():
    assert template_path("orders.xlsx").is_file()
    assert load_schema("config.schema.json")["title"] == "sheetorders config"
    assert "properties" in load_schema("orders/default.schema.json")


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_systemd_oneshot_service_and_timer():
    service = read_unit(TEMPLATES / "systemd" / "sheetorders-sync.service")
    assert service["Service"]["Type"] == "oneshot"
    command = shlex.split(service["Service"]["ExecStart"])
    assert command[0].endswith("/bin/sheetorders")
    context = parse_cli(command[1:])
    assert context.command.name == "sync" and context.params["wait"] is True
    assert context.params["every"] is None  # the timer does the repeating

    timer = read_unit(TEMPLATES / "systemd" / "sheetorders-sync.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == "10min"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_systemd_long_running_service():
    service = read_unit(TEMPLATES / "systemd" / "sheetorders-sync-every.service")
    assert service["Service"]["Restart"] == "on-failure"
    assert service["Service"]["KillSignal"] == "SIGTERM"
    context = parse_cli(shlex.split(service["Service"]["ExecStart"])[1:])
    assert context.command.name == "sync" and context.params["every"] == 600  # 10m


def test_crontab_line_runs_a_valid_sync_every_ten_minutes():
    lines = [line for line in (TEMPLATES / "crontab.txt").read_text().splitlines() if line.startswith("*/10")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert fields[:5] == ["*/10", "*", "*", "*", "*"]
    command = fields[5].split("&&", 1)[1].split(">>")[0]
    words = shlex.split(command)
    start = next(i for i, word in enumerate(words) if word.endswith("bin/sheetorders"))
    context = parse_cli(words[start + 1 :])
    assert context.command.name == "sync"


def test_wheel_ships_schemas_and_templates(tmp_path):
    from hatchling.builders.wheel import WheelBuilder

    wheel = Path(next(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sheetorders/_data/schemas/config.schema.json" in names
    assert "sheetorders/_data/schemas/orders/web_traffic.schema.json" in names
    assert "sheetorders/_data/templates/orders.xlsx" in names
    assert "sheetorders/_data/templates/systemd/sheetorders-sync.timer" in names
    assert "sheetorders/testing/panel_server.py" in names  # the demo needs it
