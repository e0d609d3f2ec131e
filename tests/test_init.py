"""`sheetorders init`: a commented sheetorders.yaml, from options or answered on a terminal."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sheetorders.cli import cli
from sheetorders.config import load_config
from sheetorders.errors import ExitCode
from sheetorders.init import WRITTEN_BY, InitAnswers, render_config, suggested_key_env
from sheetorders.resources import config_example
from sheetorders.testing.terminal import Terminal
from sheetorders.testing.workbooks import TEST_KEY

REPO = Path(__file__).resolve().parent.parent
URL = "https://smmkings.com/api/v2"
GOOGLE = "https://docs.google.com/spreadsheets/d/1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd/edit#gid=0"


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def changed_lines(text: str) -> list[tuple[str, str]]:
    example = config_example().splitlines()
    lines = text.splitlines()
    assert len(lines) == len(example)
    return [(old, new) for old, new in zip(example, lines, strict=True) if old != new]


def test_init_with_options_writes_the_documented_example_for_the_panel(here):
    url = "https://smmbind.com/api/v2"
    result = invoke("init", "--url", url, "--key-env", "SMMBIND_API_KEY", "--sheet", "team.xlsx")
    assert result.exit_code == 0, result.output
    text = (here / "sheetorders.yaml").read_text()
    assert [new for _, new in changed_lines(text)] == [
        WRITTEN_BY,
        "    url: https://smmbind.com/api/v2       # the panel's API URL (https://…/api/v2)",
        "    key: ${SMMBIND_API_KEY}               # required; from the environment",
        "  source: team.xlsx",
    ]
    assert text.count("#") == config_example().count("#")  # every comment is kept
    config = load_config(here / "sheetorders.yaml", env={"SMMBIND_API_KEY": "s3cr3t-key"})
    assert config.panels["main"].url == url and config.panels["main"].key == "s3cr3t-key"
    assert config.sheets[0].source == str(here / "team.xlsx") and config.sheets[0].worksheet == "Orders"
    assert "s3cr3t-key" not in text
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == f"Wrote sheetorders.yaml: panel main at {url}, key read from $SMMBIND_API_KEY, sheet team.xlsx."
    )
    assert "export SMMBIND_API_KEY=…" in lines[1]
    steps = lines[lines.index("Next:") + 1 :]
    assert [shlex.split(step.split("    ")[0]) for step in steps] == [
        ["sheetorders", "template", "team.xlsx"],
        ["sheetorders", "run", "--dry-run"],
    ]


def test_init_never_overwrites_a_file(here):
    (here / "sheetorders.yaml").write_text("mine: true\n")
    result = invoke("init", "--url", URL, "--key-env", "SMMKINGS_API_KEY")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.strip() == (
        "error: sheetorders.yaml already exists: it was left as it is. Edit it, or give another file "
        "with -c FILE"
    )
    assert (here / "sheetorders.yaml").read_text() == "mine: true\n"


def test_init_to_another_file_says_so_in_the_next_commands(here):
    (here / "team").mkdir()
    result = invoke("-c", "team/cfg.yaml", "init", "--url", URL, "--key-env", "K", env={"K": "set"})
    assert result.exit_code == 0, result.output
    assert (here / "team" / "cfg.yaml").exists() and not (here / "sheetorders.yaml").exists()
    assert "export" not in result.stdout  # the variable is set already
    steps = result.stdout.splitlines()[-2:]
    assert steps[0].split("    ")[0] == "  sheetorders -c team/cfg.yaml template team/orders.xlsx"
    assert steps[1].split("    ")[0] == "  sheetorders -c team/cfg.yaml run --dry-run"


def test_init_for_a_google_sheet(here):
    result = invoke("init", "--url", URL, "--key-env", "SMMKINGS_API_KEY", "--sheet", GOOGLE)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((here / "sheetorders.yaml").read_text())["sheet"]["source"] == GOOGLE
    assert f"sheetorders template --google '{GOOGLE}'" in result.stdout
    assert "service account" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --url and --key-env (on a terminal, sheetorders init asks for them)"),
        (("--url", URL), "give --url and --key-env"),
        (("--url", "smmkings.com", "--key-env", "K"), "'smmkings.com' is not a panel API URL"),
        (("--url", URL, "--key-env", "my key"), "'my key' is not an environment variable name"),
        (("--url", URL, "--key-env", "a3f5c0e9b1d24f6a8c7e5b3d1f0a9c8e"), "looks like the API key itself"),
        (("--url", URL, "--key-env", "K", "--sheet", "orders.ods"), "not an .xlsx or .csv path"),
    ],
)
def test_init_mistakes_are_usage_errors_and_write_nothing(here, args, message):
    result = invoke("init", *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in result.stderr
    assert not (here / "sheetorders.yaml").exists()


def test_the_values_are_quoted_when_yaml_needs_it():
    odd = "https://panel.example/api/v2?x=1#frag"
    text = render_config(InitAnswers(odd, "KEY", "my orders: 2025.xlsx"))
    data = yaml.safe_load(text)
    assert data["panels"]["main"]["url"] == odd and data["sheet"]["source"] == "my orders: 2025.xlsx"
    assert suggested_key_env("https://www.smm-kings.com/api/v2") == "SMM_KINGS_API_KEY"
    assert suggested_key_env("http://127.0.0.1:8000/api/v2") == "PANEL_0_API_KEY"


def test_the_next_two_commands_work_as_printed(here, panel):
    url = panel.url
    result = invoke("init", "--url", url, "--key-env", "TEST_PANEL_KEY")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for step in lines[lines.index("Next:") + 1 :]:
        words = shlex.split(step.split("    ")[0])
        assert words[0] == "sheetorders"
        done = invoke(*words[1:])
        assert done.exit_code == 0, (words, done.output)
    assert (here / "orders.xlsx").exists()


# --- on a terminal ------------------------------------------------------------------------------


def test_init_asks_on_a_terminal_and_asks_again_after_a_mistake(tmp_path):
    terminal = Terminal("init", cwd=tmp_path, env={})
    terminal.expect("Panel API URL: ")
    terminal.answer("smmkings.com")
    terminal.expect("is not a panel API URL")
    terminal.expect("Panel API URL: ")
    terminal.answer(URL)
    terminal.expect("Name of the environment variable that holds the API key [SMMKINGS_API_KEY]: ")
    terminal.answer("")
    terminal.expect("Order sheet (.xlsx path or Google Sheets URL) [orders.xlsx]: ")
    terminal.answer("")
    code, output = terminal.finish()
    assert code == 0, output
    assert "Wrote sheetorders.yaml" in output and "sheetorders template orders.xlsx" in output
    config = load_config(tmp_path / "sheetorders.yaml", env={"SMMKINGS_API_KEY": "k"})
    assert config.panels["main"].url == URL and config.sheets[0].source == str(tmp_path / "orders.xlsx")


def test_init_on_a_terminal_takes_the_options_given_and_asks_the_rest(tmp_path):
    terminal = Terminal("init", "--url", URL, "--sheet", "team.xlsx", cwd=tmp_path, env={"MYKEY": TEST_KEY})
    terminal.expect("[SMMKINGS_API_KEY]: ")
    terminal.answer("MYKEY")
    code, output = terminal.finish()
    assert code == 0, output
    assert "Order sheet" not in output and "export" not in output
    assert "${MYKEY}" in (tmp_path / "sheetorders.yaml").read_text()


def test_init_on_a_terminal_refuses_an_existing_file_before_asking(tmp_path):
    (tmp_path / "sheetorders.yaml").write_text("x: 1\n")
    code, output = Terminal("init", cwd=tmp_path, env={}).finish()
    assert code == ExitCode.USAGE
    assert "already exists" in output and "Panel API URL" not in output


def test_init_works_with_the_wheel_copy_of_the_example(tmp_path, monkeypatch):
    """In an installed wheel the example is sheetorders/_data/config.example.yaml."""
    import sheetorders.resources as resources

    packaged = tmp_path / "sheetorders" / "_data"
    packaged.mkdir(parents=True)
    (packaged / "config.example.yaml").write_text((REPO / "config.example.yaml").read_text() + "# wheel\n")

    class Files:
        def joinpath(self, *parts: str) -> Path:
            return tmp_path.joinpath("sheetorders", *parts)

    monkeypatch.setattr(resources.resources, "files", lambda package: Files())
    assert config_example().endswith("# wheel\n")
