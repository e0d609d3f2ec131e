"""The files users start from: the order-sheet templates, the scheduler units, the package data."""

from __future__ import annotations

import configparser
import runpy
import shlex
import warnings
import zipfile
from pathlib import Path

import click
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from sheetorders.cli import cli
from sheetorders.columns import KNOWN_COLUMNS, map_headers
from sheetorders.resources import load_schema, template_path

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


def starter_headers() -> list[object]:
    return [cell.value for cell in load_workbook(TEMPLATES / "orders.xlsx", read_only=True)["Orders"][1]]


def test_xlsx_template_has_every_column_and_they_are_all_recognised():
    workbook = load_workbook(TEMPLATES / "orders.xlsx")
    assert workbook.sheetnames == ["Orders", "Services", "Help"]
    sheet = workbook["Orders"]
    headers = [cell.value for cell in sheet[1]]
    assert len(headers) == len(set(headers))
    recognised = map_headers(headers)
    assert set(recognised) == set(headers) - {"note"}  # note: an example of the team's own column
    assert set(recognised) == KNOWN_COLUMNS
    assert sheet.freeze_panes == "C2"
    # No example data in the template: below the header only the estimate formula is filled.
    filled = {
        cell.column_letter for row in sheet.iter_rows(min_row=2) for cell in row if cell.value is not None
    }
    assert filled == {get_column_letter(recognised["estimate"] + 1)}


def test_the_starter_workbook_is_what_its_script_builds(tmp_path):
    """templates/orders.xlsx is rebuilt by templates/build_starter.py from the local panel's catalog."""
    build = runpy.run_path(str(TEMPLATES / "build_starter.py"))["build"]
    build(tmp_path)
    for name in ("Orders", "Services", "Help"):
        built = load_workbook(tmp_path / "orders.xlsx")[name]
        shipped = load_workbook(TEMPLATES / "orders.xlsx")[name]
        assert list(built.values) == list(shipped.values), name
    assert (tmp_path / "orders.csv").read_text() == (TEMPLATES / "orders.csv").read_text()


def test_csv_template_has_the_same_columns():
    assert (TEMPLATES / "orders.csv").read_text().strip().split(",") == starter_headers()


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
    assert context.params["quiet"] is True  # cron mails only when a person is needed
    assert ". $HOME/.config/sheetorders/env" in lines[0]  # the key, as the systemd units read it
    readme = (ROOT / "README.md").read_text()
    assert lines[0] in readme  # the README shows the same line


def test_wheel_ships_schemas_and_templates(tmp_path):
    from hatchling.builders.wheel import WheelBuilder

    wheel = Path(next(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sheetorders/_data/schemas/config.schema.json" in names
    assert "sheetorders/_data/schemas/orders/web_traffic.schema.json" in names
    assert "sheetorders/_data/templates/orders.xlsx" in names
    assert "sheetorders/_data/config.example.yaml" in names  # what `sheetorders init` writes from
    assert "sheetorders/_data/templates/systemd/sheetorders-sync.timer" in names
    assert "sheetorders/testing/panel_server.py" in names  # the demo needs it
