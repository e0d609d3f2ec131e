"""The command line against a real local panel over HTTP: output, JSON, exit codes, errors, key secrecy."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import TEST_KEY

import sheetorders
import sheetorders.panel as panel_module
from sheetorders.cli import cli
from sheetorders.config import CONFIG_ENV
from sheetorders.errors import ExitCode, InvalidKey, PanelRefused
from sheetorders.panel import PanelClient, RetryPolicy
from sheetorders.testing.panel_server import Faults, PanelServer, default_catalog
from sheetorders.testing.workbooks import read_sheet, write_config
from sheetorders.workbook import build_order_workbook

REPO = Path(__file__).resolve().parent.parent
COMMANDS = [
    "run",
    "sync",
    "services",
    "balance",
    "budget",
    "history",
    "uncertain",
    "doctor",
    "status",
    "refill",
    "cancel",
    "init",
    "template",
    "demo",
]

VALID_ROWS = [
    {"service": 2, "link": "https://instagram.com/p/one", "quantity": 100},
    {"service": 1, "link": "https://instagram.com/p/two", "quantity": 200},
]
INVALID_ROW = {"service": 2, "link": "instagram.com/p/three", "quantity": 100}


def invoke(*args: str, env: dict[str, str] | None = None, traceback_ok: bool = False) -> Result:
    """Run the CLI in-process (wide enough that tables do not wrap); never let a crash pass."""
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if not traceback_ok:
        assert "Traceback" not in result.output, result.output
    return result


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture
def sheet(tmp_path: Path) -> Path:
    return build_order_workbook(tmp_path / "orders.xlsx", [*VALID_ROWS, INVALID_ROW])


@pytest.fixture
def config(tmp_path: Path, panel: PanelServer, sheet: Path) -> Path:
    return write_config(tmp_path, panel.url, sheet)


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Panel clients built by the CLI retry at once; returns the waits they would have slept.

    `make_client` looks PanelClient up at call time, so that is patched.
    """
    waits: list[float] = []

    class NoWaitClient(PanelClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("sleep", waits.append)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(panel_module, "PanelClient", NoWaitClient)
    return waits


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_panel_config(tmp_path: Path, panel: PanelServer, sheet: Path) -> Path:
    path = write_config(tmp_path, panel.url, sheet)
    data = yaml.safe_load(path.read_text())
    data["panels"]["backup"] = {"url": panel.url, "key": "${TEST_PANEL_KEY}"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- version, help, common options ----------------------------------------------------------


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"sheetorders, version {sheetorders.__version__}"


def test_group_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "sheetorders demo" in result.stdout
    listed = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert sorted(listed) == sorted(COMMANDS)
    assert set(cli.commands) == set(COMMANDS)
    assert invoke("-h").stdout == result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_the_common_options(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert f"Usage: cli {command}" in result.stdout or f"Usage: sheetorders {command}" in result.stdout
    for option in ("-c, --config FILE", "-v, --verbose", "--debug", "-h, --help"):
        assert option in result.stdout, (command, option)


def test_an_unknown_command_is_a_usage_error():
    result = invoke("orders")
    assert result.exit_code == ExitCode.USAGE
    assert "No such command 'orders'" in result.stderr


@pytest.mark.parametrize(
    "arrange",
    [
        pytest.param(lambda cfg: ["-c", cfg, "-v", "balance"], id="before"),
        pytest.param(lambda cfg: ["balance", "-c", cfg, "-v"], id="after"),
        pytest.param(lambda cfg: ["-v", "balance", "--config", cfg], id="mixed"),
    ],
)
def test_config_and_verbose_before_or_after_the_command(config, arrange):
    result = invoke(*arrange(str(config)))
    assert result.exit_code == 0, result.output
    assert "1000.00" in result.stdout
    # -v: the HTTP client's INFO lines reach stderr
    assert "HTTP Request: POST" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command(config, where):
    args = (
        ["--debug", "services", "-c", str(config)]
        if where == "before"
        else ["services", "-c", str(config), "--debug"]
    )
    result = invoke(*args)
    assert result.exit_code == 0
    assert " DEBUG sheetorders.panel: main services: HTTP 200" in result.stderr


def test_without_verbose_there_are_no_log_lines(config):
    result = invoke("-c", str(config), "balance")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_verbosity_does_not_stick_between_commands(config):
    assert "DEBUG" in invoke("--debug", "-c", str(config), "balance").stderr
    assert invoke("-c", str(config), "balance").stderr == ""


def test_the_config_is_found_in_the_current_folder_then_in_the_environment(
    tmp_path, panel, sheet, monkeypatch
):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    by_env = write_config(folder, panel.url, sheet)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    # no sheetorders.yaml here and no variable: a usage error saying what to do
    result = invoke("balance")
    assert result.exit_code == ExitCode.USAGE
    assert error_lines(result) == [
        "error: no config file: pass -c FILE, create sheetorders.yaml here (see config.example.yaml), "
        f"or set {CONFIG_ENV}"
    ]
    assert invoke("balance", env={CONFIG_ENV: str(by_env)}).exit_code == 0
    # ./sheetorders.yaml wins over the variable: make the variable's one unusable to tell them apart
    write_config(tmp_path, panel.url, sheet)
    (folder / "sheetorders.yaml").write_text("panels: nope\n")
    assert invoke("balance", env={CONFIG_ENV: str(by_env)}).exit_code == 0
    # -c wins over both
    result = invoke("balance", "-c", str(by_env))
    assert result.exit_code == ExitCode.USAGE and str(by_env) in result.stderr


# --- services ------------------------------------------------------------------------------


def test_services_table(config):
    result = invoke("-c", str(config), "services")
    assert result.exit_code == 0
    assert f"panel main: {len(default_catalog())} services" in result.stdout
    for service in default_catalog():
        assert str(service["name"]) in result.stdout
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "Instagram Followers | 30 days refill" in lines["2"] and "2.40" in lines["2"]


def test_services_search_filters(config):
    result = invoke("-c", str(config), "services", "--search", "youtube")
    assert result.exit_code == 0
    assert "panel main: 2 services" in result.stdout
    assert "YouTube Views | High retention" in result.stdout
    assert "Instagram" not in result.stdout
    data = json.loads(invoke("-c", str(config), "services", "--search", "COMMENT LIKES", "--json").stdout)
    assert [s["id"] for s in data["main"]] == ["14"]


def test_services_json(config):
    result = invoke("-c", str(config), "services", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data) == ["main"]
    catalog = {str(s["service"]): s for s in default_catalog()}
    assert [s["id"] for s in data["main"]] == list(catalog)
    for item in data["main"]:
        assert {"id", "name", "type", "rate", "min", "max", "refill", "cancel", "dripfeed"} <= set(item)
        assert isinstance(item["rate"], str)
        assert Decimal(item["rate"]) == Decimal(catalog[item["id"]]["rate"])
        assert isinstance(item["min"], int) and isinstance(item["max"], int)
    budget = next(item for item in data["main"] if item["id"] == "20")
    assert budget["rate"] == "0.0123456"
    assert (budget["refill"], budget["cancel"], budget["dripfeed"]) == (False, True, None)


def test_services_of_one_panel_and_an_unknown_panel(tmp_path, panel, sheet):
    config = two_panel_config(tmp_path, panel, sheet)
    assert list(json.loads(invoke("-c", str(config), "services", "--json").stdout)) == ["main", "backup"]
    result = invoke("-c", str(config), "services", "--panel", "backup", "--json")
    assert result.exit_code == 0 and list(json.loads(result.stdout)) == ["backup"]

    result = invoke("-c", str(config), "services", "--panel", "nope")
    assert result.exit_code == ExitCode.USAGE
    assert error_lines(result) == ["error: no panel named 'nope' in the config (configured: main, backup)"]
    assert result.stdout == ""


def test_service_names_with_brackets_are_printed_as_they_are(tmp_path, sheet):
    catalog = default_catalog()[:2]
    catalog[0]["name"] = "[ig] Likes [/] [bold]fast[/bold]"
    with PanelServer(key=TEST_KEY, catalog=catalog) as server:
        result = invoke("-c", str(write_config(tmp_path, server.url, sheet)), "services")
    assert result.exit_code == 0
    assert "[ig] Likes [/] [bold]fast[/bold]" in result.stdout


# --- balance -------------------------------------------------------------------------------


def test_balance_table_and_json(config):
    result = invoke("-c", str(config), "balance")
    assert result.exit_code == 0
    row = next(line for line in result.stdout.splitlines() if "main" in line)
    assert "1000.00" in row and "USD" in row
    result = invoke("-c", str(config), "balance", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"main": {"balance": "1000.00", "currency": "USD"}}


def test_balance_of_every_panel(tmp_path, panel, sheet):
    result = invoke("-c", str(two_panel_config(tmp_path, panel, sheet)), "balance", "--json")
    assert json.loads(result.stdout) == {
        "main": {"balance": "1000.00", "currency": "USD"},
        "backup": {"balance": "1000.00", "currency": "USD"},
    }


# --- errors: one line, the right exit code ---------------------------------------------------


def test_a_wrong_key_shows_the_panels_words_and_is_a_config_error(tmp_path, panel, sheet):
    config = write_config(tmp_path, panel.url, sheet, key_variable="WRONG_KEY")
    # the panel answered: a refused key is the config's fault (InvalidKey), not "unreachable"
    assert InvalidKey.exit_code == ExitCode.USAGE
    for args in (["balance"], ["services"], ["status", "10001"]):
        result = invoke("-c", str(config), *args, env={"WRONG_KEY": "not-the-key"})
        assert result.exit_code == ExitCode.USAGE, args
        assert error_lines(result) == [f"error: panel 'main': {args[0]}: Invalid API key"]
        assert result.stdout == ""
    assert panel.ledger.calls["balance"] == 1  # a refusal is not retried


def test_a_wrong_key_in_json_mode(tmp_path, panel, sheet):
    config = write_config(tmp_path, panel.url, sheet, key_variable="WRONG_KEY")
    result = invoke("-c", str(config), "balance", "--json", env={"WRONG_KEY": "nope"})
    assert result.exit_code == ExitCode.USAGE
    assert json.loads(result.stdout) == {"main": {"error": "panel 'main': balance: Invalid API key"}}


def test_a_wrong_key_during_run_places_nothing(tmp_path, panel, sheet):
    config = write_config(tmp_path, panel.url, sheet, key_variable="WRONG_KEY")
    result = invoke("-c", str(config), "run", env={"WRONG_KEY": "nope"})
    assert result.exit_code == ExitCode.USAGE
    assert error_lines(result) == ["error: panel 'main': services: Invalid API key"]
    assert not panel.ledger.orders
    result = invoke("-c", str(config), "run", "--json", env={"WRONG_KEY": "nope"})
    assert result.exit_code == json.loads(result.stdout)["exit_code"] == ExitCode.USAGE


def test_any_other_refusal_exits_1(config, panel):
    panel.faults.queue_reply({"error": "Account suspended"}, actions={"balance"})
    result = invoke("-c", str(config), "balance")
    assert result.exit_code == PanelRefused.exit_code == ExitCode.ROWS_FAILED
    assert error_lines(result) == ["error: panel 'main': balance: Account suspended"]


def test_a_panel_message_with_brackets_is_shown_verbatim(config, panel):
    panel.faults.queue_reply({"error": "[/] key [bold]revoked[/bold]"}, actions={"balance"})
    result = invoke("-c", str(config), "balance")
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert error_lines(result) == ["error: panel 'main': balance: [/] key [bold]revoked[/bold]"]


@pytest.mark.parametrize("args", [["balance"], ["services"], ["status", "1"], ["run"]])
def test_an_unreachable_panel_exits_3(tmp_path, sheet, no_waits, args):
    config = write_config(tmp_path, f"http://127.0.0.1:{closed_port()}/api/v2", sheet)
    result = invoke("-c", str(config), *args)
    assert result.exit_code == ExitCode.PANEL_UNREACHABLE
    errors = error_lines(result)
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: panel 'main': ") and "could not connect" in errors[0]
    # It did retry, without sleeping: each request as often as its policy says (`run` asks for
    # the catalog and the balance at the same time, so two requests retry side by side).
    requests = 2 if args == ["run"] else 1
    assert len(no_waits) == requests * (RetryPolicy().attempts - 1)


def test_a_panel_answering_html_exits_3_with_a_snippet(tmp_path, sheet, no_waits):
    with PanelServer(key=TEST_KEY, faults=Faults(html=1.0)) as server:
        config = write_config(tmp_path, server.url, sheet)
        result = invoke("-c", str(config), "balance")
        assert server.ledger.calls["balance"] == RetryPolicy().attempts
    assert result.exit_code == ExitCode.PANEL_UNREACHABLE
    [line] = error_lines(result)
    assert "an HTML page instead of JSON" in line
    assert "(got: <!DOCTYPE html><html><head><title>Just a moment...</title>" in line
    assert len(line) < 300  # a snippet, not the page
    assert "automatic. Your browser will redirect" not in line


def test_queued_html_faults_then_an_answer(config, panel, no_waits):
    panel.faults.queue("html", RetryPolicy().attempts - 1)
    result = invoke("-c", str(config), "balance", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["main"]["balance"] == "1000.00"


def test_a_broken_config_exits_2_naming_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("panels:\n  main:\n    url: https://x.example\n    key: k\n    concurrency: 0\n")
    for command in ("balance", "services", "run", "sync", "status"):
        args = [command, "1"] if command == "status" else [command]
        result = invoke("-c", str(path), *args)
        assert result.exit_code == ExitCode.USAGE
        assert error_lines(result) == [
            f"error: {path}: panels.main.concurrency: 0 is out of range: must be at least 1"
        ]


def test_invalid_yaml_exits_2(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("panels:\n  main: [\n")
    result = invoke("balance", "-c", str(path))
    assert result.exit_code == ExitCode.USAGE
    [line] = error_lines(result)
    assert line.startswith(f"error: {path}: not valid YAML at line 3, column 1")


def test_a_missing_config_file_exits_2(tmp_path):
    result = invoke("-c", str(tmp_path / "nope.yaml"), "balance")
    assert result.exit_code == ExitCode.USAGE
    assert error_lines(result) == [f"error: {tmp_path / 'nope.yaml'}: config file not found"]


def test_a_missing_variable_exits_2(config):
    result = invoke("-c", str(config), "balance", env={"TEST_PANEL_KEY": None})  # type: ignore[dict-item]
    assert result.exit_code == ExitCode.USAGE
    [line] = error_lines(result)
    assert "panels.main.key" in line and "TEST_PANEL_KEY" in line and str(config) in line


def test_debug_shows_a_traceback(tmp_path, sheet, no_waits):
    config = write_config(tmp_path, f"http://127.0.0.1:{closed_port()}/api/v2", sheet)
    result = invoke("--debug", "-c", str(config), "status", "1", traceback_ok=True)
    assert result.exit_code == ExitCode.PANEL_UNREACHABLE
    assert "Traceback" in result.stderr and "PanelUnavailable" in result.stderr
    assert (
        result.stderr.rstrip().splitlines()[-1].startswith("error: panel 'main': status: could not connect")
    )


# --- the key never shows -------------------------------------------------------------------


def test_the_key_never_appears_in_any_output(tmp_path, no_waits):
    secret = "Sk+y/Zz=9f8e7d6c5b4a"  # also its URL-encoded forms must not show
    forms = [secret, "Sk%2By%2FZz%3D9f8e7d6c5b4a", "Sk+y%2FZz%3D9f8e7d6c5b4a"]
    env = {"LEAKY": secret}
    sheet = build_order_workbook(tmp_path / "orders.xlsx", [*VALID_ROWS, INVALID_ROW])
    outputs = []
    with PanelServer(key=secret) as server:
        good = write_config(tmp_path, server.url, sheet, key_variable="LEAKY")
        for args in (
            ["services"],
            ["services", "--json"],
            ["balance", "--json"],
            ["run", "--dry-run"],
            ["run", "--json"],
            ["status", "10001", "10002", "999"],
            ["refill", "10001", "--json"],
            ["cancel", "10001", "999"],
        ):
            outputs.append(invoke("--debug", "-v", "-c", str(good), *args, env=env, traceback_ok=True))
        server.faults.queue("html", RetryPolicy().attempts)
        outputs.append(invoke("--debug", "-c", str(good), "balance", env=env, traceback_ok=True))
        server.faults.queue_reply({"error": f"Access denied for {secret}"})
        outputs.append(invoke("--debug", "-c", str(good), "balance", env=env, traceback_ok=True))
    # with the key where the URL goes, and a wrong key
    bad = tmp_path / "bad.yaml"
    bad.write_text("panels:\n  main:\n    url: ${LEAKY}\n    key: ${LEAKY}\n")
    outputs.append(invoke("--debug", "-c", str(bad), "balance", env=env, traceback_ok=True))
    closed = write_config(tmp_path, f"http://127.0.0.1:{closed_port()}/api/v2", sheet, key_variable="LEAKY")
    outputs.append(invoke("--debug", "-c", str(closed), "balance", env=env, traceback_ok=True))

    assert [r.exit_code for r in outputs] == [0, 0, 0, 1, 1, 1, 1, 1, 3, 1, 2, 3]
    assert any("DEBUG" in r.stderr for r in outputs)
    for result in outputs:
        for form in forms:
            assert form not in result.stdout and form not in result.stderr, result.output


# --- run -----------------------------------------------------------------------------------


def test_run_dry_run_prints_what_it_would_order_and_places_nothing(tmp_path, panel):
    sheet = build_order_workbook(tmp_path / "orders.xlsx", VALID_ROWS)
    config = write_config(tmp_path, panel.url, sheet)
    before = sheet.read_bytes()
    result = invoke("-c", str(config), "run", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "(dry run: nothing placed)" in " ".join(out.split())
    assert "would order" in out
    would = [line for line in out.splitlines() if "Instagram" in line]
    assert len(would) == 2
    assert "2 Instagram Followers | 30 days refill" in would[0] and "100" in would[0] and "0.24" in would[0]
    assert "1 Instagram Likes | Real | Drip-feed" in would[1] and "200" in would[1] and "0.18" in would[1]
    assert panel.ledger.calls["add"] == 0 and not panel.ledger.orders
    assert sheet.read_bytes() == before


def test_run_json_summary(config, panel, sheet):
    result = invoke("-c", str(config), "run", "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == data["exit_code"] == ExitCode.ROWS_FAILED
    [summary] = data["sheets"]
    assert summary["sheet"] == f"{sheet} [Orders]"
    assert (summary["ordered"], summary["invalid"], summary["rejected"], summary["uncertain"]) == (2, 1, 0, 0)
    assert summary["dry_run"] is False
    assert summary["spend"]["main"]["actual"] == "0.42"
    assert len(panel.ledger.orders) == 2
    rows = read_sheet(sheet)
    assert [bool(row["order_id"]) for row in rows] == [True, True, False]
    assert rows[2]["status"] == "Invalid" and "link" in rows[2]["error"]


def test_run_dry_run_json_lists_the_orders(config, panel):
    result = invoke("-c", str(config), "run", "--dry-run", "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == ExitCode.ROWS_FAILED  # one row is invalid
    [summary] = data["sheets"]
    assert summary["dry_run"] is True
    assert [(o["row"], o["service"], o["quantity"]) for o in summary["would_order"]] == [
        (2, "2", 100),
        (3, "1", 200),
    ]
    assert panel.ledger.calls["add"] == 0


def test_run_with_invalid_rows_exits_1_and_says_why(config, panel):
    result = invoke("-c", str(config), "run")
    assert result.exit_code == ExitCode.ROWS_FAILED
    counts = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.stdout.splitlines()
        if line.startswith("│")
    }
    assert counts["ordered"] == "2" and counts["invalid"] == "1"
    assert 'row 4, link: "instagram.com/p/three" is not an http(s) URL' in result.stdout
    assert len(panel.ledger.orders) == 2
    # a second run places nothing new, and still reports the invalid row
    again = invoke("-c", str(config), "run", "--json")
    assert json.loads(again.stdout)["sheets"][0]["ordered"] == 0
    assert len(panel.ledger.orders) == 2


def test_run_all_valid_exits_0(tmp_path, panel):
    sheet = build_order_workbook(tmp_path / "orders.xlsx", VALID_ROWS)
    result = invoke("run", "-c", str(write_config(tmp_path, panel.url, sheet)))
    assert result.exit_code == 0, result.output
    assert len(panel.ledger.orders) == 2


def test_run_with_another_sheet(config, panel, tmp_path):
    other = build_order_workbook(tmp_path / "other.xlsx", VALID_ROWS[:1])
    result = invoke("-c", str(config), "run", "--sheet", str(other), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["sheets"][0]["ordered"] == 1


def test_run_with_a_missing_sheet_is_one_line(config, tmp_path):
    result = invoke("-c", str(config), "run", "--sheet", str(tmp_path / "missing.xlsx"))
    assert result.exit_code == ExitCode.USAGE
    [line] = error_lines(result)
    assert line.startswith("error: ") and "missing.xlsx" in line


def test_run_max_spend_must_be_an_amount(config):
    result = invoke("-c", str(config), "run", "--max-spend", "lots")
    assert result.exit_code == ExitCode.USAGE
    assert "'lots' is not an amount" in result.stderr


# --- one-shot commands ---------------------------------------------------------------------


@pytest.fixture
def orders(panel: PanelServer) -> list[str]:
    """Two orders placed on the panel: service 2 (refill and cancel) and service 1 (neither)."""
    with PanelClient(panel.url, TEST_KEY) as client:
        return [
            client.add(2, {"link": "https://instagram.com/p/a", "quantity": 100}),
            client.add(1, {"link": "https://instagram.com/p/b", "quantity": 50}),
        ]


def test_status_table_and_json(config, orders):
    result = invoke("-c", str(config), "status", *orders)
    assert result.exit_code == 0
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert set(lines) == set(orders)
    assert "Pending" in lines[orders[0]] and "0.24" in lines[orders[0]] and "USD" in lines[orders[0]]
    assert "None" not in result.stdout

    data = json.loads(invoke("-c", str(config), "status", orders[0], "--json").stdout)
    assert data == {
        orders[0]: {
            "status": "Pending",
            "charge": "0.24",
            "start_count": 0,
            "remains": 100,
            "currency": "USD",
        }
    }


def test_status_with_comma_separated_ids(config, orders):
    data = json.loads(invoke("-c", str(config), "status", f"{orders[0]},{orders[1]}", "--json").stdout)
    assert list(data) == orders


def test_status_of_an_unknown_id_shows_its_error_and_exits_1(config, orders):
    result = invoke("-c", str(config), "status", orders[0], "999")
    assert result.exit_code == ExitCode.ROWS_FAILED
    line = next(line for line in result.stdout.splitlines() if "999" in line)
    assert "Incorrect order ID" in line
    result = invoke("-c", str(config), "status", "999", "--json")
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert json.loads(result.stdout) == {"999": {"error": "Incorrect order ID"}}


def test_an_empty_id_is_a_usage_error(config):
    for args in (["status", ""], ["cancel", "1,,2"], ["refill"]):
        result = invoke("-c", str(config), *args)
        assert result.exit_code == ExitCode.USAGE, args


def test_refill(config, panel, orders):
    panel.advance(3600)  # the orders complete
    result = invoke("-c", str(config), "refill", orders[0], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(panel.ledger.refills) == [data[orders[0]]["refill_id"]]
    # service 1 has no refill: the panel's words, exit 1
    result = invoke("-c", str(config), "refill", orders[1])
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert "Refill not available for this service" in result.stdout
    result = invoke("-c", str(config), "refill", "999", "--json")
    assert json.loads(result.stdout) == {"999": {"error": "Incorrect order ID"}}
    assert result.exit_code == ExitCode.ROWS_FAILED


def test_cancel(config, panel, orders):
    result = invoke("-c", str(config), "cancel", orders[0], "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {orders[0]: {"cancel": "requested"}}
    assert panel.order(orders[0]).status == "Canceled"
    result = invoke("-c", str(config), "cancel", orders[1], "999")
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert "Cancel not available for this service" in result.stdout
    assert "Incorrect order ID" in result.stdout


def test_a_cancel_the_panel_did_not_accept_is_not_requested(config, panel, orders):
    panel.faults.queue_reply([{"order": int(orders[0]), "cancel": 0}], actions={"cancel"})
    result = invoke("-c", str(config), "cancel", orders[0], "--json")
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert json.loads(result.stdout) == {orders[0]: {"error": "the panel did not accept the cancel"}}


def test_one_shot_commands_take_a_panel(tmp_path, panel, sheet, orders):
    config = two_panel_config(tmp_path, panel, sheet)
    result = invoke("-c", str(config), "status", orders[0], "--panel", "backup", "--json")
    assert result.exit_code == 0 and list(json.loads(result.stdout)) == [orders[0]]
    result = invoke("-c", str(config), "cancel", orders[0], "--panel", "other")
    assert result.exit_code == ExitCode.USAGE
    assert "configured: main, backup" in result.stderr
    assert panel.order(orders[0]).status != "Canceled"


# --- demo ----------------------------------------------------------------------------------


def test_demo_writes_an_example_sheet_with_orders_and_mistakes(tmp_path):
    result = invoke("demo", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    sheet = tmp_path / "demo-orders.xlsx"
    assert f"Open {sheet}" in result.stdout
    rows = read_sheet(sheet)
    invalid = [row for row in rows if "invalid" in str(row["note"])]
    valid = [row for row in rows if row not in invalid]
    assert len(invalid) == 3 and len(valid) > 10
    for row in invalid:
        assert row["status"] == "Invalid" and row["error"] and not row["order_id"], row
    waiting = [row for row in valid if row["status"] == "Waiting"]
    assert len(waiting) == 1
    for row in valid:
        if row not in waiting:
            assert str(row["order_id"]).isdigit() and row["status"] not in ("Invalid", "Rejected"), row


def test_demo_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("demo").exit_code == 0
    assert (tmp_path / "demo-orders.xlsx").exists()


def test_demo_dir_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    result = invoke("demo", "--dir", str(tmp_path / "file"))
    assert result.exit_code == ExitCode.USAGE
    assert "is a file" in result.stderr


# --- the real entry points -----------------------------------------------------------------


def run_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **env},
        cwd=REPO,
    )


def test_python_dash_m_sheetorders_runs_the_cli(config):
    done = run_process("-m", "sheetorders", "--debug", "balance", "--json", "-c", str(config), env={})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"main": {"balance": "1000.00", "currency": "USD"}}
    assert " DEBUG sheetorders.panel: main balance: HTTP 200" in done.stderr
    assert TEST_KEY not in done.stdout + done.stderr


def test_the_console_script_target_runs_the_cli(tmp_path):
    pyproject = (REPO / "pyproject.toml").read_text()
    scripts = pyproject.split("[project.scripts]")[1]
    module, function = re.search(r'^sheetorders = "([\w.]+):(\w+)"$', scripts, re.MULTILINE).groups()
    bad = tmp_path / "bad.yaml"
    bad.write_text("panels: {}\n")
    code = f"import sys; sys.argv[0] = 'sheetorders'; from {module} import {function}; {function}()"
    done = run_process("-c", code, "-c", str(bad), "balance", env={})
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.strip() == f"error: {bad}: panels: must not be empty"
    done = run_process("-c", code, "--version", env={})
    assert done.returncode == 0 and done.stdout.startswith("sheetorders, version ")


def test_sync_once_places_ready_rows_and_reports_json(tmp_path, panel):
    sheet = build_order_workbook(tmp_path / "orders.xlsx", VALID_ROWS)
    config = write_config(tmp_path, panel.url, sheet)
    result = invoke("-c", str(config), "sync", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sheets"][0]["ordered"] == 2
    assert len(panel.ledger.orders) == 2


def test_sync_every_needs_an_interval(config):
    result = invoke("-c", str(config), "sync", "--every", "soon")
    assert result.exit_code == ExitCode.USAGE
    assert error_lines(result)[-1] == (
        "Error: Invalid value for '--every': 'soon' is not an interval; use e.g. 30s, 10m or 1h"
    )


def test_demo_serve_keeps_the_panel_up_for_the_other_commands(tmp_path):
    import signal as signals
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "sheetorders", "demo", "--serve", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    config = tmp_path / "sheetorders-demo.yaml"
    try:
        deadline = time.monotonic() + 60
        while not config.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert config.exists(), process.stderr.read() if process.poll() is not None else "no config written"
        services = subprocess.run(
            [sys.executable, "-m", "sheetorders", "-c", str(config), "services", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert services.returncode == 0, services.stderr
        assert "Instagram Followers" in services.stdout
        sync = subprocess.run(
            [sys.executable, "-m", "sheetorders", "-c", str(config), "sync", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sync.returncode == 0, sync.stderr  # the demo's invalid rows were reported by the demo's pass
        summary = json.loads(sync.stdout)["sheets"][0]
        assert summary["refreshed"] >= 18 and summary["ordered"] == 0
    finally:
        process.send_signal(signals.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Ctrl-C stops it" in stdout
    assert not config.exists()  # it pointed at a panel that is gone


def test_attempts_1_makes_an_unreachable_panel_fail_at_once(tmp_path):
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "sheetorders.yaml"
    config.write_text(
        f"panels:\n  main:\n    url: http://127.0.0.1:{port}/api/v2\n    key: k\n    attempts: 1\n"
    )
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["-c", str(config), "balance"])
    assert result.exit_code == 3
    assert time.monotonic() - started < 3  # no backoff waits
