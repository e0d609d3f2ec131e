"""`--quiet`: nothing printed when a pass had no problem, the summary and problem rows when it
had; each pass line says what was placed and what it cost, the problems and the balance."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sheetorders.cli import cli
from sheetorders.errors import ExitCode
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, write_config
from sheetorders.workbook import build_order_workbook

ENV = {"TEST_PANEL_KEY": TEST_KEY}


def config_for(tmp_path: Path, panel: PanelServer, rows: list[dict[str, object]]) -> Path:
    return write_config(tmp_path, panel.url, build_order_workbook(tmp_path / "orders.xlsx", rows))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env=ENV)


def test_quiet_prints_nothing_on_a_clean_pass(tmp_path: Path, panel: PanelServer) -> None:
    config = config_for(tmp_path, panel, [{"service": 2, "link": "https://instagram.com/q", "quantity": 100}])
    for command in ("run", "sync"):
        result = invoke(command, "-c", str(config), "--quiet")
        assert result.exit_code == ExitCode.OK
        assert result.output == "" and result.stderr == ""
    assert len(panel.ledger.orders) == 1


def test_quiet_prints_the_summary_and_problem_rows_on_a_bad_pass(tmp_path: Path, panel: PanelServer) -> None:
    config = config_for(tmp_path, panel, [{"service": 2, "link": "https://instagram.com/q", "quantity": 10}])
    result = invoke("run", "-c", str(config), "--quiet")
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert "row 2" in result.output and "below the minimum 50" in result.output
    again = invoke("run", "-c", str(config), "--quiet")  # the same standing problem: quiet
    assert again.exit_code == ExitCode.OK and again.output == ""


def test_each_pass_line_has_spend_problems_and_balance_and_goes_to_the_log_file(
    tmp_path: Path, panel: PanelServer
) -> None:
    rows = [
        {"service": 2, "link": "https://instagram.com/l1", "quantity": 100},
        {"service": 2, "link": "https://instagram.com/l2", "quantity": 10},
    ]
    config = config_for(tmp_path, panel, rows)
    log = tmp_path / "sync.log"
    result = invoke("sync", "-c", str(config), "--log-file", str(log))
    assert result.exit_code == ExitCode.ROWS_FAILED
    (line,) = log.read_text().splitlines()
    assert "1 ordered (0.24 USD)" in line and "1 invalid" in line
    assert "problems: row 3, quantity: 10 is below the minimum 50" in line
    assert "balance main 999.76 USD" in line

    invoke("sync", "-c", str(config), "--log-file", str(log), "--json", "--quiet")
    second = json.loads(log.read_text().splitlines()[1])  # a line per pass, quiet or not
    assert second["ordered"] == 0 and second["refreshed"] == 1


def test_a_pass_with_a_new_problem_tells_the_team_through_its_notify_url(
    tmp_path: Path, panel: PanelServer
) -> None:
    from sheetorders.testing.receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        config = write_config(
            tmp_path,
            panel.url,
            build_order_workbook(
                tmp_path / "orders.xlsx", [{"service": 2, "link": "https://instagram.com/n", "quantity": 10}]
            ),
            notify={"urls": [receiver.apprise_url()], "on": ["problems"]},
        )
        result = invoke("sync", "-c", str(config), "--quiet")
        assert result.exit_code == ExitCode.ROWS_FAILED
        (body,) = receiver.wait_for(1)
        text = json.dumps(body)
        assert "row 2" in text and "below the minimum" in text and TEST_KEY not in text
        invoke("sync", "-c", str(config), "--quiet")  # the same standing problem: no new message
        assert len(receiver.wait_for(2, timeout=1.0)) == 1
