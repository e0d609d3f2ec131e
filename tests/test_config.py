"""The config file: loading, `${VAR}`, schema errors people can act on, discovery, paths, key secrecy."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from sheetorders.config import (
    CONFIG_ENV,
    CONFIG_FILENAME,
    Config,
    NotifyConfig,
    PanelConfig,
    SheetConfig,
    find_config,
    load_config,
)
from sheetorders.errors import ConfigError, ExitCode

REPO = Path(__file__).resolve().parent.parent
SECRET = "SeCrEt-9f8e7d6c5b4a-KEY"  # distinctive: any message or repr containing it leaks the key

MINIMAL = """\
panels:
  main:
    url: https://panel.example/api/v2
    key: ${SMM_KEY}
"""


def write(folder: Path, text: str, name: str = "sheetorders.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(folder: Path, text: str, **env: str) -> Config:
    return load_config(write(folder, text), env={"SMM_KEY": SECRET, **env})


def config_error(folder: Path, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(folder, text, **env)
    message = str(caught.value)
    assert SECRET not in message
    assert str(folder / "sheetorders.yaml") in message, message
    assert "\n" not in message
    assert caught.value.exit_code == ExitCode.USAGE
    return message


# --- the example -----------------------------------------------------------------------


def test_the_example_config_loads_with_its_documented_defaults(tmp_path, monkeypatch):
    example = shutil.copy(REPO / "config.example.yaml", tmp_path / "sheetorders.yaml")
    monkeypatch.setenv("SMMKINGS_API_KEY", SECRET)
    config = load_config(example)

    assert list(config.panels) == ["main"]
    main = config.panels["main"]
    assert main == PanelConfig(
        name="main",
        url="https://smmkings.com/api/v2",
        key=SECRET,
        concurrency=4,
        rate_limit=2.0,
        connect_timeout=10.0,
        read_timeout=30.0,
    )
    assert config.default_panel == "main"
    assert config.sheets == [SheetConfig(source=str(tmp_path / "orders.xlsx"), worksheet="Orders")]
    assert config.journal == tmp_path / ".sheetorders" / "journal.sqlite"
    assert config.max_spend is None
    assert config.columns == {}
    assert config.google == {}
    assert config.path == Path(example)
    assert SECRET not in repr(config)


def test_the_example_config_without_its_variable_says_which(tmp_path, monkeypatch):
    example = shutil.copy(REPO / "config.example.yaml", tmp_path / "sheetorders.yaml")
    monkeypatch.delenv("SMMKINGS_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"panels\.main\.key: environment variable SMMKINGS_API_KEY"):
        load_config(example)


def test_optional_keys_take_their_defaults(tmp_path):
    config = load(tmp_path, MINIMAL)
    main = config.panels["main"]
    assert (main.concurrency, main.rate_limit) == (4, None)
    assert (main.connect_timeout, main.read_timeout) == (10.0, 30.0)
    assert config.sheets == []
    assert config.journal == tmp_path / ".sheetorders" / "journal.sqlite"
    assert config.max_spend is None


def test_every_option_is_read(tmp_path):
    config = load(
        tmp_path,
        MINIMAL
        + """\
    concurrency: 8.0
    rate_limit: 5
    timeout: {connect: 2, read: 7.5}
  backup:
    url: http://127.0.0.1:9/api/v2
    key: literal-key
sheets:
  - {name: team-a, source: a.xlsx, panel: backup}
  - {source: https://docs.google.com/spreadsheets/d/abc/edit, worksheet: Orders}
columns: {Ссылка: link}
max_spend: "12.50"
""",
    )
    main, backup = config.panels["main"], config.panels["backup"]
    assert main.concurrency == 8 and isinstance(main.concurrency, int)
    assert main.rate_limit == 5.0 and isinstance(main.rate_limit, float)
    assert (main.connect_timeout, main.read_timeout) == (2.0, 7.5)
    assert backup.key == "literal-key"
    assert config.default_panel == "main"
    assert [s.label for s in config.sheets] == [
        "team-a",
        "https://docs.google.com/spreadsheets/d/abc/edit [Orders]",
    ]
    assert config.sheets[0].panel == "backup"
    assert config.columns == {"Ссылка": "link"}
    assert config.max_spend == Decimal("12.50")
    assert config.panel(None) is main and config.panel("backup") is backup


def test_numeric_max_spend_is_an_exact_decimal(tmp_path):
    assert load(tmp_path, MINIMAL + "max_spend: 0.1\n").max_spend == Decimal("0.1")


# --- ${VAR} ---------------------------------------------------------------------------------


def test_variables_are_substituted_anywhere_in_a_string(tmp_path):
    config = load(
        tmp_path,
        """\
panels:
  main:
    url: https://${HOST}/api/v2
    key: pre-${SMM_KEY}-post
sheet: {source: "${SHEET_DIR}/orders.xlsx", worksheet: "${TAB}"}
""",
        HOST="panel.example",
        SHEET_DIR=str(tmp_path / "sheets"),
        TAB="Q3",
    )
    assert config.panels["main"].url == "https://panel.example/api/v2"
    assert config.panels["main"].key == f"pre-{SECRET}-post"
    assert config.sheets[0].source == str(tmp_path / "sheets" / "orders.xlsx")
    assert config.sheets[0].worksheet == "Q3"


def test_the_process_environment_is_used_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SMM_KEY", SECRET)
    assert load_config(write(tmp_path, MINIMAL)).panels["main"].key == SECRET


def test_a_missing_variable_names_itself_the_key_and_the_file(tmp_path):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path}: panels.main.key: ")
    assert "SMM_KEY" in message and "not set" in message


def test_a_missing_variable_in_a_list_names_the_item(tmp_path):
    message = config_error(tmp_path, MINIMAL + "sheets:\n  - source: a.xlsx\n  - source: ${WHERE}\n")
    assert "sheets.1.source" in message and "WHERE" in message


def test_dollar_signs_that_are_not_references_stay(tmp_path):
    config = load(tmp_path, MINIMAL.replace("${SMM_KEY}", "pa$$word${SMM_KEY}"))
    assert config.panels["main"].key == f"pa$$word{SECRET}"


# --- schema errors --------------------------------------------------------------------------


def test_an_unknown_key_lists_the_allowed_ones(tmp_path):
    message = config_error(tmp_path, MINIMAL + "    concurency: 4\n")
    assert "panels.main" in message
    assert "unknown key 'concurency'" in message
    allowed = (
        "attempts, budget, concurrency, idempotency_field, key, probe, probe_grace, rate_limit, timeout, url"
    )
    assert f"allowed: {allowed}" in message


def test_an_unknown_top_level_key_lists_the_allowed_ones(tmp_path):
    message = config_error(tmp_path, MINIMAL + "journl: x.sqlite\n")
    assert "unknown key 'journl'" in message
    assert (
        "allowed: approval, budget, columns, confirm, google, ignore_columns, journal, max_spend, notify, "
        "panels, sheet, sheets" in message
    )


def test_a_wrong_type_says_what_is_expected(tmp_path):
    message = config_error(tmp_path, MINIMAL + '    concurrency: "four"\n')
    assert "panels.main.concurrency" in message
    assert "'four'" in message and "expected a whole number" in message


def test_out_of_range_says_the_limit(tmp_path):
    message = config_error(tmp_path, MINIMAL + "    concurrency: 0\n")
    assert "panels.main.concurrency" in message and "must be at least 1" in message
    message = config_error(tmp_path, MINIMAL + "    concurrency: 65\n")
    assert "must be at most 64" in message
    message = config_error(tmp_path, MINIMAL + "    rate_limit: 0\n")
    assert "panels.main.rate_limit" in message and "more than 0" in message


def test_a_missing_url_is_required(tmp_path):
    message = config_error(tmp_path, "panels:\n  main:\n    key: ${SMM_KEY}\n")
    assert "panels.main" in message and "'url' is required" in message


def test_no_panels_at_all(tmp_path):
    assert "'panels' is required" in config_error(tmp_path, "journal: j.sqlite\n")
    assert "panels: must not be empty" in config_error(tmp_path, "panels: {}\n")


def test_an_empty_file_says_panels_are_required(tmp_path):
    assert "'panels' is required" in config_error(tmp_path, "")


@pytest.mark.parametrize("url", ["ftp://panel.example/api/v2", "panel.example/api/v2", "https:// x"])
def test_a_bad_url_says_what_a_url_looks_like(tmp_path, url):
    message = config_error(tmp_path, MINIMAL.replace("https://panel.example/api/v2", f'"{url}"'))
    assert "panels.main.url" in message
    assert repr(url) in message
    assert "http:// or https://" in message


def test_a_bad_max_spend_says_what_an_amount_looks_like(tmp_path):
    message = config_error(tmp_path, MINIMAL + 'max_spend: "lots"\n')
    assert "max_spend" in message and "'lots'" in message and "50 or 12.50" in message
    assert "at least 0" in config_error(tmp_path, MINIMAL + "max_spend: -1\n")


def test_sheet_and_sheets_together_are_refused(tmp_path):
    message = config_error(tmp_path, MINIMAL + "sheet: {source: a.xlsx}\nsheets: [{source: b.xlsx}]\n")
    assert "either `sheet` or `sheets`, not both" in message


def test_a_sheet_naming_an_unknown_panel_lists_the_panels(tmp_path):
    message = config_error(tmp_path, MINIMAL + "sheet: {source: a.xlsx, panel: backup}\n")
    assert "sheet.panel" in message and "'backup'" in message and "configured: main" in message
    two = "sheets:\n  - {source: a.xlsx}\n  - {source: b.xlsx, panel: x}\n"
    message = config_error(tmp_path, MINIMAL + two)
    assert "sheets.1.panel" in message and "configured: main" in message


def test_two_sheets_with_one_name_are_refused(tmp_path):
    two = "sheets:\n  - {name: a, source: a.xlsx}\n  - {name: a, source: b.csv}\n"
    message = config_error(tmp_path, MINIMAL + two)
    assert "sheets.1.name" in message and "'a'" in message


def test_a_sheet_without_source(tmp_path):
    message = config_error(tmp_path, MINIMAL + "sheet: {worksheet: Orders}\n")
    assert "sheet" in message and "'source' is required" in message


def test_a_sheet_given_as_a_string_says_a_mapping_is_expected(tmp_path):
    message = config_error(tmp_path, MINIMAL + "sheet: orders.xlsx\n")
    assert "sheet: 'orders.xlsx' is not allowed here: expected a mapping" in message


def test_a_bad_panel_name_says_which_characters_are_allowed(tmp_path):
    message = config_error(tmp_path, MINIMAL + "  my panel:\n    url: https://x.example\n    key: k\n")
    assert "'my panel' is not a valid name" in message and "letters, digits" in message


def test_a_bad_oauth_value_says_what_is_allowed(tmp_path):
    message = config_error(tmp_path, MINIMAL + "google: {oauth: sometimes}\n")
    assert "google.oauth" in message and "'sometimes'" in message
    assert "true or false or a mapping" in message


def test_a_top_level_list_is_not_a_config(tmp_path):
    assert "(top level): list is not allowed here: expected a mapping" in config_error(tmp_path, "- a\n- b\n")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("panels:\n  main:\n    url: [https://x\n", None),
        ("panels:\n  main:\n  url: a: b\n", 3),
        ("panels:\n\tmain: {}\n", 2),
    ],
)
def test_invalid_yaml_says_where(tmp_path, text, line):
    message = config_error(tmp_path, text)
    assert "not valid YAML at line" in message and "column" in message
    if line is not None:
        assert f"line {line}," in message


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / "sheetorders.yaml").write_bytes(b"panels:\n  m\xe4in: {}\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path / "sheetorders.yaml", env={})


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)


# --- discovery ------------------------------------------------------------------------------


def test_discovery_order(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    elsewhere = write(tmp_path, MINIMAL, "elsewhere.yaml")
    explicit = write(tmp_path, MINIMAL, "explicit.yaml")
    monkeypatch.chdir(here)
    monkeypatch.setenv(CONFIG_ENV, str(elsewhere))

    # nothing local: the environment variable
    assert find_config(None) == elsewhere
    # a local sheetorders.yaml beats the environment
    local = write(here, MINIMAL, CONFIG_FILENAME)
    assert find_config(None).resolve() == local.resolve()
    assert find_config(None, cwd=tmp_path) == elsewhere  # cwd= is where "here" is
    # -c beats both, even when it does not exist (then loading says so)
    assert find_config(explicit) == explicit
    assert find_config(str(tmp_path / "missing.yaml")) == tmp_path / "missing.yaml"


def test_no_config_anywhere_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError) as caught:
        find_config(None)
    message = str(caught.value)
    assert "-c FILE" in message and CONFIG_FILENAME in message and CONFIG_ENV in message
    assert caught.value.exit_code == ExitCode.USAGE


def test_an_empty_environment_variable_is_not_a_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, "")
    with pytest.raises(ConfigError, match="no config file"):
        find_config(None)


# --- relative paths -------------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_config(
        write(
            folder,
            MINIMAL
            + """\
sheets:
  - {source: orders.xlsx}
  - {source: sub/more.CSV}
  - {source: ../up.xlsm}
  - {source: /abs/orders.xlsx}
  - {source: "https://docs.google.com/spreadsheets/d/abc/edit"}
  - {source: 1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEfGh}
journal: state/journal.sqlite
google:
  credentials: keys/sa.json
  oauth: {client_secrets: cs.json, authorized_user: /abs/user.json}
  api_endpoint: http://127.0.0.1:8080
  token_uri: http://127.0.0.1:8080/token
""",
        ),
        env={"SMM_KEY": SECRET},
    )
    assert [s.source for s in config.sheets] == [
        str(folder / "orders.xlsx"),
        str(folder / "sub" / "more.CSV"),
        str(folder / ".." / "up.xlsm"),
        "/abs/orders.xlsx",
        "https://docs.google.com/spreadsheets/d/abc/edit",
        "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEfGh",
    ]
    assert config.journal == folder / "state" / "journal.sqlite"
    assert config.google == {
        "credentials": str(folder / "keys" / "sa.json"),
        "oauth": {"client_secrets": str(folder / "cs.json"), "authorized_user": "/abs/user.json"},
        "api_endpoint": "http://127.0.0.1:8080",
        "token_uri": "http://127.0.0.1:8080/token",
    }
    assert config.panels["main"].url == "https://panel.example/api/v2"


def test_a_config_given_by_a_relative_path_still_resolves_against_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    write(folder, MINIMAL + "sheet: {source: orders.xlsx}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/sheetorders.yaml", env={"SMM_KEY": SECRET})
    assert config.sheets[0].source == str(folder / "orders.xlsx")
    assert config.journal == folder / ".sheetorders" / "journal.sqlite"


def test_an_uppercase_url_scheme_is_not_a_path(tmp_path):
    config = load(tmp_path, MINIMAL + "sheet: {source: HTTPS://example.com/orders.xlsx}\n")
    assert config.sheets[0].source == "HTTPS://example.com/orders.xlsx"


def test_sheet_override_by_name_source_or_path(tmp_path, monkeypatch):
    config = load(
        tmp_path,
        MINIMAL
        + "sheets:\n"
        + "  - {name: a, source: a.xlsx, worksheet: A}\n"
        + "  - {name: b, source: b.xlsx, worksheet: B}\n",
    )
    assert config.with_sheet_source("b").sheets == [config.sheets[1]]
    assert config.with_sheet_source(str(tmp_path / "a.xlsx")).sheets == [config.sheets[0]]
    # a path relative to the current folder that is one of the configured sheets
    monkeypatch.chdir(tmp_path)
    assert config.with_sheet_source("b.xlsx").sheets == [config.sheets[1]]
    # any other source replaces the sheets, keeping nothing of the first one's name
    other = config.with_sheet_source("other.csv").sheets
    assert len(other) == 1 and other[0].source == "other.csv" and other[0].name is None


def test_sheet_override_without_configured_sheets(tmp_path):
    config = load(tmp_path, MINIMAL)
    assert config.with_sheet_source("x.xlsx").sheets == [SheetConfig(source="x.xlsx")]


def test_unknown_panel_lookup_lists_the_configured(tmp_path):
    config = load(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=r"no panel named 'nope' in the config \(configured: main\)"):
        config.panel("nope")


# --- the key stays secret -------------------------------------------------------------------


def test_the_key_is_not_in_the_repr(tmp_path):
    config = load(tmp_path, MINIMAL + "sheet: {source: a.xlsx}\n")
    assert config.panels["main"].key == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.panels) and SECRET not in str(config.panels["main"])


SWAPPED = MINIMAL.replace("https://panel.example/api/v2", "${SMM_KEY}").replace("key: ${SMM_KEY}", "key: x")
LITERAL = f"panels:\n  main:\n    url: https://x.example\n    key: {SECRET}\n"


@pytest.mark.parametrize(
    "text",
    [
        # the key from the environment where a number, a URL, an amount... goes
        pytest.param(MINIMAL + "    concurrency: ${SMM_KEY}\n", id="env-as-concurrency"),
        pytest.param(SWAPPED, id="env-as-url"),
        pytest.param(MINIMAL + "max_spend: ${SMM_KEY}\n", id="env-as-max-spend"),
        pytest.param(MINIMAL + "google: {oauth: '${SMM_KEY}'}\n", id="env-as-oauth"),
        pytest.param(MINIMAL + "sheet: {source: a.xlsx, panel: '${SMM_KEY}'}\n", id="env-as-sheet-panel"),
        pytest.param(MINIMAL + "sheet: '${SMM_KEY}'\n", id="env-as-sheet"),
        # a key written in the file, and an error quoting the same text elsewhere
        pytest.param(LITERAL + f"    extra: {SECRET}\n", id="literal-unknown-key"),
        pytest.param(LITERAL.replace("https://x.example", SECRET), id="literal-as-url"),
        pytest.param(LITERAL + f"sheet: {{source: a.xlsx, panel: {SECRET}}}\n", id="literal-as-sheet-panel"),
        # a key YAML reads as a number
        pytest.param(LITERAL.replace(SECRET, "98765432123456789"), id="numeric-key"),
    ],
)
def test_the_key_never_appears_in_an_error(tmp_path, text):
    message = config_error(tmp_path, text)
    assert "98765432123456789" not in message


def test_an_error_about_a_substituted_value_quotes_the_reference(tmp_path):
    message = config_error(tmp_path, SWAPPED)
    assert "panels.main.url" in message and "'${SMM_KEY}'" in message


# --- notify ---------------------------------------------------------------------------------

HOOK_SECRET = "hook-T0KEN-4f3e2d1c"  # a notification URL's token: never in a message or repr
HOOK = f"json://hooks.example/{HOOK_SECRET}"


def notify_config(folder: Path, section: str, **env: str) -> Config:
    return load(folder, MINIMAL + section, HOOK=HOOK, **env)


def notify_error(folder: Path, section: str) -> str:
    message = config_error(folder, MINIMAL + section, HOOK=HOOK)
    assert HOOK_SECRET not in message
    return message


def test_notify_is_read_with_its_defaults(tmp_path):
    config = notify_config(tmp_path, 'notify:\n  urls: ["${HOOK}"]\n')
    assert config.notify == NotifyConfig(
        urls=(HOOK,),
        on=frozenset({"problems", "low_balance", "panel_down", "stopped"}),
        low_balance=None,
        panel_down_after=3,
    )
    assert HOOK_SECRET not in repr(config)


def test_every_notify_option_is_read_and_an_unquoted_on_is_the_key(tmp_path):
    section = (
        "notify:\n"
        "  urls: ['${HOOK}', 'tgram://123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr/987654']\n"
        "  on: [problems, low_balance]\n"
        "  low_balance: 20.5\n"
        "  panel_down_after: 5\n"
    )
    notify = notify_config(tmp_path, section).notify
    assert notify is not None
    assert notify.urls == (HOOK, "tgram://123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr/987654")
    assert notify.on == frozenset({"problems", "low_balance"})
    assert notify.low_balance == Decimal("20.5")
    assert notify.panel_down_after == 5


def test_no_notify_section_means_no_notifications(tmp_path):
    assert load(tmp_path, MINIMAL).notify is None


def test_the_example_notify_section_loads_once_uncommented(tmp_path, monkeypatch):
    lines = (REPO / "config.example.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index("# notify:")
    block = [lines[start]] + [line for line in lines[start + 1 :] if line.startswith("#   ")]
    text = "\n".join(lines) + "\n" + "\n".join(line[2:] for line in block) + "\n"
    path = write(tmp_path, text)
    monkeypatch.setenv("SMMKINGS_API_KEY", SECRET)
    monkeypatch.setenv("SHEETORDERS_NOTIFY_URL", HOOK)
    notify = load_config(path).notify
    assert notify == NotifyConfig(
        urls=(HOOK,),
        on=frozenset({"problems", "low_balance", "panel_down", "stopped"}),
        low_balance=Decimal(20),
        panel_down_after=3,
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        pytest.param(
            "notify:\n  on: [stopped]\n",
            "notify: 'urls' is required",
            id="no-urls",
        ),
        pytest.param(
            "notify:\n  urls: []\n",
            "notify.urls: must not be empty",
            id="empty-urls",
        ),
        pytest.param(
            'notify:\n  urls: ["${HOOK}"]\n  on: [problems, outages]\n',
            "notify.on.1: 'outages' is not allowed: use one of problems, low_balance, panel_down, stopped",
            id="unknown-event",
        ),
        pytest.param(
            'notify:\n  urls: ["${HOOK}"]\n  on: [low_balance]\n',
            "notify.low_balance: required when notify.on lists low_balance (a sum in the panel's "
            "currency, e.g. 20)",
            id="low-balance-without-threshold",
        ),
        pytest.param(
            'notify:\n  urls: ["${HOOK}"]\n  low_balance: lots\n',
            "notify.low_balance: 'lots' is not allowed: expected an amount like 50 or 12.50",
            id="bad-threshold",
        ),
        pytest.param(
            'notify:\n  urls: ["${HOOK}"]\n  panel_down_after: 0\n',
            "notify.panel_down_after: 0 is out of range: must be at least 1",
            id="zero-passes",
        ),
        pytest.param(
            'notify:\n  urls: ["${HOOK}"]\n  every: 5m\n',
            "notify: unknown key 'every' (allowed: low_balance, on, panel_down_after, urls)",
            id="unknown-key",
        ),
    ],
)
def test_a_bad_notify_section_names_the_key_and_what_is_allowed(tmp_path, section, expected):
    message = notify_error(tmp_path, section)
    assert message.endswith(expected), message


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        pytest.param(
            f"notify:\n  urls: {HOOK}\n",
            "notify.urls: (hidden) is not allowed here: expected a list",
            id="url-not-in-a-list",
        ),
        pytest.param(
            f"notify: {HOOK}\n",
            "notify: (hidden) is not allowed here: expected a mapping",
            id="notify-is-a-url",
        ),
        pytest.param(
            f"notify:\n  urls: ['hooks.example/{HOOK_SECRET}']\n",
            "notify.urls.0: (hidden) is not allowed: expected an apprise URL like tgram://…, slack://…, "
            "mailto://… or json://host/path",
            id="no-scheme",
        ),
        pytest.param(
            f"notify:\n  urls: ['nosuch://user:{HOOK_SECRET}@host/x']\n",
            "notify.urls.0: apprise cannot use nosuch://… as written (the URL is not shown: it may hold "
            "a token); see https://github.com/caronc/apprise/wiki for each service's form, e.g. "
            "tgram://BOT_TOKEN/CHAT_ID or json://host/path",
            id="unknown-scheme",
        ),
        pytest.param(
            f"notify:\n  urls: ['{HOOK}', 17]\n",
            "notify.urls.1: (hidden) is not allowed here: expected text",
            id="a-number-beside-a-url",
        ),
        pytest.param(
            'notify:\n  urls: ["${HOOK}"]\n  low_balance: "${HOOK}"\n',
            "notify.low_balance: '${HOOK}' is not allowed: expected an amount like 50 or 12.50",
            id="url-from-env-elsewhere",
        ),
        pytest.param(
            f"notify:\n  urls: ['{HOOK}']\n  low_balance: {HOOK}\n",
            "notify.low_balance: '***' is not allowed: expected an amount like 50 or 12.50",
            id="literal-url-elsewhere",
        ),
    ],
)
def test_a_notification_url_never_appears_in_an_error(tmp_path, section, expected):
    message = notify_error(tmp_path, section)
    assert message.endswith(expected), message


def test_apprise_stays_quiet_about_a_url_it_cannot_use(tmp_path, caplog):
    with caplog.at_level("DEBUG"):
        notify_error(tmp_path, f"notify:\n  urls: ['nosuch://user:{HOOK_SECRET}@host/x']\n")
    assert "host/x" not in caplog.text
