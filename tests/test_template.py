"""`sheetorders template OUT.xlsx`: an order sheet built from the live catalog, and the pass on it."""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from sheetorders.app import run_sheets
from sheetorders.cli import cli
from sheetorders.columns import INPUT_COLUMNS, KNOWN_COLUMNS, OUTPUT_COLUMNS, map_headers
from sheetorders.config import Config, load_config
from sheetorders.demo import EXAMPLES
from sheetorders.errors import ExitCode
from sheetorders.models import Service
from sheetorders.pipeline import PassOptions
from sheetorders.template import (
    STATUS_COLOURS,
    Layout,
    estimate_formula,
    layout_from_config,
    listed_services,
    plan_layout,
    refresh_services_tab,
    service_entry,
)
from sheetorders.template_xlsx import write_template
from sheetorders.testing.panel_server import SERVICE_TYPES, PanelServer, default_catalog
from sheetorders.testing.workbooks import read_sheet, write_config
from sheetorders.validate import (
    parse_service_cell,
    same_target_key,
    service_name_warning,
    validate_row,
)
from sheetorders.workbook import build_order_workbook


def as_service(item: dict[str, Any]) -> Service:
    return Service(
        id=str(item["service"]),
        name=item["name"],
        type=item["type"],
        category=item["category"],
        rate=Decimal(item["rate"]),
        min=int(item["min"]),
        max=int(item["max"]),
        refill=item["refill"],
        cancel=item["cancel"],
        dripfeed=item.get("dripfeed"),
    )


CATALOG = [as_service(item) for item in default_catalog()]


def layout_of(services: list[Service], **options: Any) -> Layout:
    return plan_layout(listed_services({"main": services}), "main", **options)


def orders_headers(sheet: Worksheet) -> list[Any]:
    return [cell.value for cell in sheet[1]]


@pytest.fixture
def config(tmp_path: Path, panel: PanelServer) -> Config:
    return load_config(write_config(tmp_path, panel.url, tmp_path / "orders.xlsx"))


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# --- the columns ----------------------------------------------------------------------------


def test_a_narrow_sheet_has_the_inputs_the_tools_columns_and_only_what_the_types_take():
    likes = next(s for s in CATALOG if s.id == "1")  # Default, drip-feed
    story = next(s for s in CATALOG if s.type == "Package")
    layout = layout_of([likes, story])
    assert layout.names[:8] == (
        "service",
        "link",
        "quantity",
        "status",
        "order_id",
        "charge",
        "error",
        "estimate",
    )
    grouped = [c.name for c in layout.columns if c.level and not c.hidden]
    assert grouped == ["runs", "interval"]  # drip-feed, because service 1 has it; nothing else
    assert "action" not in layout.names  # neither service allows a refill or a cancel
    collapsed = [c.name for c in layout.columns if c.hidden]
    assert collapsed == [n for n in OUTPUT_COLUMNS if n not in ("status", "order_id", "charge", "error")]
    recognised = map_headers(layout.names)
    assert set(recognised) == set(layout.names)  # every header is a column the pass knows
    assert "estimate" in KNOWN_COLUMNS and "estimate" not in (*INPUT_COLUMNS, *OUTPUT_COLUMNS)

    followers = next(s for s in CATALOG if s.id == "2")  # Default without drip-feed, refill + cancel
    layout = layout_of([followers])
    assert not [c for c in layout.columns if c.level and not c.hidden]
    assert "action" in layout.names


def test_each_type_brings_its_own_columns():
    mentions = next(s for s in CATALOG if s.type == "Mentions with Hashtags")
    subscriptions = next(s for s in CATALOG if s.type == "Subscriptions")
    grouped = [c.name for c in layout_of([mentions, subscriptions]).columns if c.level and not c.hidden]
    assert grouped == [
        "usernames",
        "hashtags",
        "username",
        "min",
        "max",
        "posts",
        "old_posts",
        "delay",
        "expiry",
    ]


def test_all_columns_has_every_column_the_pass_knows():
    layout = layout_of(CATALOG[:1], all_columns=True)
    assert set(map_headers(layout.names)) == KNOWN_COLUMNS
    assert layout.names[0] == "panel"


def test_several_panels_add_a_panel_column_and_look_services_up_by_panel():
    layout = plan_layout(listed_services({"main": CATALOG[:2], "backup": CATALOG[2:4]}), "main")
    assert layout.names[0] == "panel" and layout.by_panel
    formula = estimate_formula(layout, 7)
    assert 'IF(TRIM(A7)="","main",TRIM(A7))&"|"&' in formula


# --- the workbook ---------------------------------------------------------------------------


@pytest.fixture
def workbook_path(tmp_path: Path, config: Config) -> Path:
    return write_template(tmp_path / "orders.xlsx", layout_from_config(config))


def test_tabs_header_styles_widths_freeze_and_groups(workbook_path):
    workbook = load_workbook(workbook_path)
    assert workbook.sheetnames == ["Orders", "Services", "Help"]
    sheet = workbook["Orders"]
    headers = orders_headers(sheet)
    assert sheet.freeze_panes == "B2"  # the header row and the service column stay in view
    fills = {name: sheet.cell(1, i + 1).fill.start_color.rgb for i, name in enumerate(headers)}
    assert fills["service"] == fills["link"] == fills["quantity"] == fills["comments"]
    assert fills["status"] == fills["order_id"] == fills["ref"] != fills["service"]
    assert fills["estimate"] not in (fills["service"], fills["status"])
    assert sheet.cell(1, 1).font.b
    widths = {
        name: sheet.column_dimensions[sheet.cell(1, i + 1).column_letter].width
        for i, name in enumerate(headers)
    }
    longest = max(len(service_entry(s)) for s in CATALOG)
    assert widths["service"] >= min(60, longest) and widths["link"] >= 40 and widths["quantity"] >= 10
    levels = {
        name: sheet.column_dimensions[sheet.cell(1, i + 1).column_letter] for i, name in enumerate(headers)
    }
    assert levels["comments"].outline_level == 1 and not levels["comments"].hidden
    assert levels["ref"].outline_level == 1 and levels["ref"].hidden
    assert levels["service"].outline_level == 0


def test_every_header_cell_has_an_input_message(workbook_path):
    sheet = load_workbook(workbook_path)["Orders"]
    prompts = {
        str(validation.sqref): validation
        for validation in sheet.data_validations.dataValidation
        if validation.promptTitle and str(validation.sqref).endswith("1") and ":" not in str(validation.sqref)
    }
    for cell in sheet[1]:
        validation = prompts[cell.coordinate]
        assert validation.showInputMessage and validation.prompt, cell.value
        assert len(validation.prompt) <= 255 and len(validation.promptTitle) <= 32
    by_name = {cell.value: prompts[cell.coordinate].prompt for cell in sheet[1]}
    assert "https://" in by_name["link"]
    assert "Written by sheetorders" in by_name["order_id"]
    assert "Alt+Enter" in by_name["comments"] and "Custom Comments" in by_name["comments"]


def validation_on(sheet: Worksheet, column: str) -> Any:
    letter = sheet.cell(1, orders_headers(sheet).index(column) + 1).column_letter
    found = [v for v in sheet.data_validations.dataValidation if str(v.sqref) == f"{letter}2:{letter}1001"]
    assert len(found) == 1, column
    return found[0]


def test_the_service_dropdown_lists_the_services_tab(workbook_path):
    workbook = load_workbook(workbook_path)
    dropdown = validation_on(workbook["Orders"], "service")
    assert dropdown.type == "list"
    assert dropdown.formula1 == f"'Services'!$P$2:$P${len(CATALOG) + 1}"
    services = workbook["Services"]
    assert services["P1"].value == "entry"
    assert [services.cell(r, 16).value for r in range(2, len(CATALOG) + 2)] == [
        service_entry(s) for s in CATALOG
    ]
    assert services["P3"].value == "2 — Instagram Followers | 30 days refill — 2.40 / 1000"
    assert parse_service_cell(services["P3"].value)[0] == 2


def test_action_and_quantity_validations(workbook_path):
    sheet = load_workbook(workbook_path)["Orders"]
    action = validation_on(sheet, "action")
    assert action.type == "list" and action.formula1 == '"refill,cancel"'
    quantity = validation_on(sheet, "quantity")
    assert quantity.type == "whole" and quantity.operator == "between"
    typed = [s for s in CATALOG if s.type not in ("Package", "Custom Comments Package", "Subscriptions")]
    typed = [s for s in typed if s.type not in ("Custom Comments", "Mentions Custom List", "Comment Replies")]
    assert (int(quantity.formula1), int(quantity.formula2)) == (
        min(s.min for s in typed),
        max(s.max for s in typed),
    )
    assert (
        quantity.showErrorMessage and "Services tab" in quantity.error and quantity.prompt == quantity.error
    )
    assert "panel" not in orders_headers(sheet)  # one panel: no panel column


def test_status_colours(workbook_path):
    sheet = load_workbook(workbook_path)["Orders"]
    (formatting,) = list(sheet.conditional_formatting)
    letter = sheet.cell(1, orders_headers(sheet).index("status") + 1).column_letter
    assert str(formatting.sqref) == f"{letter}2:{letter}1001"
    colours = {rule.dxf.fill.start_color.rgb[-6:]: rule.formula[0] for rule in formatting.rules}
    assert set(colours) == {fill for fill, _, _ in STATUS_COLOURS}
    green, amber, red, grey = (colours[fill] for fill, _, _ in STATUS_COLOURS)
    for status in ("Completed", "Partial"):
        assert f'${letter}2="{status}"' in green
    for status in ("Pending", "In progress", "Processing", "Waiting", "Held"):
        assert f'${letter}2="{status}"' in amber
    for status in ("Invalid", "Rejected", "Uncertain", "Error", "Canceled"):
        assert f'${letter}2="{status}"' in red
    assert grey == f'OR(${letter}2="Needs approval")'


def test_the_estimate_formula_uses_functions_every_spreadsheet_computes(workbook_path, config):
    sheet = load_workbook(workbook_path)["Orders"]
    headers = orders_headers(sheet)
    column = headers.index("estimate") + 1
    letter = {name: sheet.cell(1, i + 1).column_letter for i, name in enumerate(headers)}
    formula = sheet.cell(2, column).value
    assert formula.startswith('=IF(TRIM(A2)="","",IFERROR(')
    assert 'MATCH(LEFT(TRIM(A2),FIND(" ",TRIM(A2)&" ")-1),\'Services\'!$Q:$Q,0)' in formula
    assert "INDEX('Services'!$F:$F," in formula  # the rate
    assert f'*IF({letter["runs"]}2="",1,{letter["runs"]}2)/1000' in formula
    assert f'SUBSTITUTE({letter["comments"]}2,CHAR(10),"")' in formula
    for name in ("XLOOKUP", "LET(", "FILTER(", "LAMBDA", "TEXTSPLIT"):
        assert name not in formula
    # Each way the pass prices an order, by the service's `price` (column N of Services).
    price = "INDEX('Services'!$N:$N,MATCH("
    assert f"IF({price}" in formula and '))="flat",' in formula
    most, posts, old = (letter[name] for name in ("max", "posts", "old_posts"))
    assert '))="per 1000 per post",' in formula
    per_post = f"0))*IF({most}2=\"\",INDEX('Services'!$H:$H,"  # the row's max, else the service's
    assert per_post in formula
    assert (
        f'/1000*IF({posts}2="",IF(IF({old}2="",0,{old}2)<1,1,IF({old}2="",0,{old}2)),'
        f'{posts}2+IF({old}2="",0,{old}2))'
    ) in formula
    assert '))="per 1000, flat without quantity",' in formula  # a type the reference does not know
    assert f'SUBSTITUTE({letter["usernames"]}2,CHAR(10),"")' in formula
    assert sheet.cell(1001, column).value == estimate_formula(layout_from_config(config), 1001)
    assert sheet.cell(1002, column).value is None


def test_the_services_tab_is_the_live_catalog(workbook_path):
    services = load_workbook(workbook_path)["Services"]
    rows = list(services.values)
    assert rows[0][:11] == (
        "panel", "id", "name", "category", "type", "rate", "min", "max", "refill", "cancel", "drip-feed"
    )  # fmt: skip
    assert services.auto_filter.ref == f"A1:Q{len(CATALOG) + 1}"
    assert services.freeze_panes == "A2"
    by_id = {row[1]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert len(by_id) == len(default_catalog())
    for item in default_catalog():
        row = by_id[int(item["service"])]
        assert row["panel"] == "main" and row["name"] == item["name"] and row["type"] == item["type"]
        assert row["category"] == item["category"]
        assert Decimal(str(row["rate"])) == Decimal(item["rate"])
        assert (row["min"], row["max"]) == (int(item["min"]), int(item["max"]))
        assert row["refill"] == ("yes" if item["refill"] else "no")
        assert row["cancel"] == ("yes" if item["cancel"] else "no")
        dripfeed = item.get("dripfeed")
        assert row["drip-feed"] == (None if dripfeed is None else "yes" if dripfeed else "no")
        assert row["key"] == str(item["service"])
    assert by_id[18]["needs"] == "username, min, max, delay" and by_id[18]["price"] == "per 1000 per post"
    assert by_id[18]["units"] == "max per post × (posts + old_posts)"
    assert (by_id[1]["price"], by_id[4]["price"], by_id[7]["price"]) == ("per 1000", "flat", "flat")
    assert by_id[6]["units"] == "lines of comments" and by_id[2]["optional"] is None
    assert by_id[1]["optional"] == "runs, interval"


# --- the pass on a filled template ----------------------------------------------------------


def fill(path: Path, rows: list[dict[str, Any]]) -> None:
    workbook = load_workbook(path)
    sheet = workbook["Orders"]
    headers = orders_headers(sheet)
    for number, row in enumerate(rows, start=2):
        for name, value in row.items():
            sheet.cell(number, headers.index(name) + 1, value)
    workbook.save(path)


def one_row_per_type() -> list[dict[str, Any]]:
    rows, seen = [], set()
    for service in CATALOG:
        if service.type not in seen:
            seen.add(service.type)
            link = {"link": f"https://example.com/{service.id}"} if "link" in EXAMPLES[service.type] else {}
            rows.append({**EXAMPLES[service.type], **link, "service": service_entry(service)})
    return rows


def test_a_template_filled_with_a_row_per_type_passes_the_dry_run_then_is_placed(
    workbook_path, config, panel
):
    rows = one_row_per_type()
    fill(workbook_path, rows)
    dry = run_sheets(config, PassOptions(dry_run=True))
    (report,) = dry.sheets
    assert report.invalid == 0 and report.problems == [], report.problems
    assert len(report.would_order) == len(SERVICE_TYPES) and not panel.ledger.orders

    placed = run_sheets(config)
    assert placed.exit_code == ExitCode.OK, placed.as_dict()
    result = [row for row in read_sheet(workbook_path) if row["service"]]
    assert all(row["order_id"] for row in result), [(r["_row"], r["error"]) for r in result]
    assert {panel.order(row["order_id"]).type for row in result} == set(SERVICE_TYPES)
    assert {panel.order(row["order_id"]).service for row in result} == {
        str(parse_service_cell(row["service"])[0]) for row in rows
    }
    # The pass kept what the template put there.
    workbook = load_workbook(workbook_path)
    sheet = workbook["Orders"]
    assert str(validation_on(sheet, "service").formula1).startswith("'Services'!")
    assert len(list(sheet.conditional_formatting)) == 1
    estimate = orders_headers(sheet).index("estimate") + 1
    assert str(sheet.cell(2, estimate).value).startswith("=IF(")
    assert workbook.sheetnames == ["Orders", "Services", "Help"]


PIGEON = Service(
    id="99", name="Carrier pigeons", type="Carrier Pigeon", category="Other", rate=Decimal("2.50"),
    min=1, max=100, refill=False, cancel=False, dripfeed=None,
)  # fmt: skip  # a type the reference does not know: priced per 1000, or flat without a quantity


def estimate_rows() -> list[dict[str, Any]]:
    """A row of every type, and the cases of each way of pricing."""
    subscription = {"service": 18, "username": "someone", "min": 100, "max": 200, "delay": 0}
    return [
        *one_row_per_type(),
        {"service": 2, "link": "https://x.example/a", "quantity": 500},
        {"service": "1 - renamed", "link": "https://x.example/b", "quantity": 100, "runs": 5, "interval": 9},
        {"service": 20, "link": "https://x.example/tiny", "quantity": 1000},  # rate 0.0123456
        {**subscription, "posts": 5, "old_posts": 3},
        {**subscription, "max": 150, "posts": 2},
        {**subscription, "old_posts": 4},  # no posts: no bound; the pass counts old_posts' posts
        subscription,  # no posts at all: one post's
        {"service": 6, "link": "https://x.example/c", "comments": "a\nb\nc\nd\ne\nf"},
        {"service": 10, "link": "https://x.example/d", "usernames": "\n".join(f"u{n}" for n in range(25))},
        {"service": 99, "link": "https://x.example/e", "quantity": 40},
        {"service": 99, "link": "https://x.example/f"},  # unknown type, no quantity: its rate
        {"service": "99999 — gone", "link": "https://x.example/g", "quantity": 100},
        {"service": 2, "link": "https://x.example/h"},  # no quantity: the pass refuses it
    ]


def recalculated(tmp_path: Path, path: Path) -> list[dict[str, str]]:
    """The Orders tab as LibreOffice computes it headless: every cell's value, not as shown."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed")
    done = subprocess.run(
        [soffice, "--headless", f"-env:UserInstallation=file://{tmp_path}/lo", "--convert-to",
         "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false",
         "--outdir", str(tmp_path), str(path)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with path.with_suffix(".csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("by_panel", [False, True], ids=["one panel", "by panel"])
def test_the_estimate_is_recalculated_by_libreoffice_as_the_pass_prices_it(tmp_path, by_panel):
    """Only where LibreOffice is installed: it recalculates the sheet headless, and every row's
    estimate is what the pass estimates for it (empty for a row the pass refuses), for every
    type and way of pricing: per 1000, flat, lines counted, per post, a type the reference does
    not know; looked up by ID or by panel and ID."""
    services = {"main": [*CATALOG, PIGEON]}
    rows = estimate_rows()
    if by_panel:
        services["backup"] = [replace(s, rate=s.rate * 3) for s in services["main"]]
        rows = [{**row, "panel": "backup"} if n % 2 else row for n, row in enumerate(rows)]
    layout = plan_layout(listed_services(services), "main", rows=len(rows) + 5)
    assert layout.by_panel == by_panel
    computed = recalculated(tmp_path, write_template(tmp_path / "calc.xlsx", layout, rows))
    catalogs = {panel: {s.id: s for s in listed} for panel, listed in services.items()}
    for number, row in enumerate(rows, start=2):
        shown = computed[number - 2]["estimate"]
        outcome = validate_row(number, row, catalogs, "main")
        if isinstance(outcome, list):
            assert shown == "", (row, shown, [str(p) for p in outcome])
            continue
        assert Decimal(shown) == outcome.estimated_cost, (row, shown, outcome.estimated_cost)
    assert all(computed[n - 2]["estimate"] == "" for n in range(len(rows) + 2, layout.last_row + 1))


# --- the service cell ----------------------------------------------------------------------


def test_a_dropdown_entry_is_read_as_its_service_id():
    assert parse_service_cell("1 — Instagram Likes — 0.90 / 1000") == (1, "Instagram Likes — 0.90 / 1000")
    assert parse_service_cell("  12 - Views  ") == (12, "Views")
    assert parse_service_cell(7) == (7, None)
    assert parse_service_cell("7.0") == (7, None)
    for bad in ("1—Likes", "x — Likes", "— Likes", "1.5 — Likes"):
        with pytest.raises(ValueError, match="not a whole number"):
            parse_service_cell(bad)
    assert same_target_key("main", "2 — Instagram Followers — 2.40 / 1000", "https://a") == (
        same_target_key("main", 2, "https://a")
    )


def test_a_renamed_service_is_ordered_by_its_id_with_a_warning(caplog):
    catalogs = {"main": {s.id: s for s in CATALOG}}
    row = {"service": "2 — Old name — 2.40 / 1000", "link": "https://instagram.com/p/a", "quantity": 100}
    with caplog.at_level(logging.WARNING, logger="sheetorders.validate"):
        request = validate_row(5, row, catalogs, "main")
    assert not isinstance(request, list) and request.service.id == "2"
    (record,) = caplog.records
    assert record.getMessage().startswith('row 5, service: 2 is now "Instagram Followers | 30 days refill"')
    caplog.clear()
    current = {**row, "service": service_entry(catalogs["main"]["2"])}
    with caplog.at_level(logging.WARNING, logger="sheetorders.validate"):
        assert not isinstance(validate_row(5, current, catalogs, "main"), list)
    assert not caplog.records
    assert (
        service_name_warning("instagram  followers | 30 DAYS refill", catalogs["main"]["2"], "main") is None
    )


# --- the command ------------------------------------------------------------------------


def test_template_command_writes_the_workbook_and_says_what_next(tmp_path, config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("template", "orders.xlsx")
    assert result.exit_code == 0, result.output
    assert "Wrote orders.xlsx: 20 services of panel main" in result.stdout
    assert "Next: sheetorders run --dry-run" in result.stdout  # it is the config's sheet
    assert load_workbook(tmp_path / "orders.xlsx").sheetnames == ["Orders", "Services", "Help"]

    again = invoke("template", "orders.xlsx")
    assert again.exit_code == ExitCode.USAGE and "already exists" in again.stderr

    other = invoke("template", "drip.xlsx", "--type", "default", "--category", "likes")
    assert other.exit_code == 0, other.output
    assert "--sheet drip.xlsx" in other.stdout
    services = list(load_workbook(tmp_path / "drip.xlsx")["Services"].values)[1:]
    assert [row[1] for row in services] == [1]


def test_template_command_options_and_mistakes(tmp_path, config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wide = invoke("template", "wide.xlsx", "--all-columns", "--rows", "20", "--panel", "main")
    assert wide.exit_code == 0, wide.output
    sheet = load_workbook(tmp_path / "wide.xlsx")["Orders"]
    assert set(map_headers(orders_headers(sheet))) == KNOWN_COLUMNS
    assert sheet.max_row == 21
    for args, message in (
        ((), "give either OUT.xlsx or --google"),
        (("a.xlsx", "--google", "x" * 40), "give either OUT.xlsx or --google"),
        (("a.csv",), "ending in .xlsx"),
        (("a.xlsx", "--type", "Carrier Pigeon"), "no service of panel main matches type 'Carrier Pigeon'"),
        (("a.xlsx", "--panel", "nope"), "no panel named 'nope'"),
    ):
        result = invoke("template", *args)
        assert result.exit_code == ExitCode.USAGE, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "a.xlsx").exists()


def test_template_command_when_the_panel_is_down(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sheetorders.yaml").write_text(
        "panels:\n  main: {url: 'http://127.0.0.1:9/api/v2', key: k, attempts: 1}\n"
        "sheet: {source: orders.xlsx}\n"
    )
    result = invoke("template", "orders.xlsx")
    assert result.exit_code == ExitCode.PANEL_UNREACHABLE, result.output
    assert not (tmp_path / "orders.xlsx").exists()


# --- keeping the Services tab current ------------------------------------------------------


def test_the_services_tab_is_brought_up_to_date_with_the_catalog(workbook_path, config):
    changed = {s.id: s for s in CATALOG if s.id != "3"}  # service 3 is gone
    changed["2"] = replace(changed["2"], name="Instagram Followers | 60 days refill", rate=Decimal("2.10"))
    changed["21"] = replace(changed["2"], id="21", name="A new service")  # new: not added
    written = refresh_services_tab(str(workbook_path), {}, {"main": changed})
    assert written > 0
    rows = list(load_workbook(workbook_path)["Services"].values)
    ids = [row[1] for row in rows[1:] if row[1] is not None]
    assert ids == [int(s.id) for s in CATALOG if s.id != "3"]
    second = next(row for row in rows if row[1] == 2)
    assert second[2] == "Instagram Followers | 60 days refill" and Decimal(str(second[5])) == Decimal("2.1")
    assert second[15] == "2 — Instagram Followers | 60 days refill — 2.10 / 1000"
    assert all(value is None for value in rows[len(CATALOG)])  # the last row, cleared
    assert refresh_services_tab(str(workbook_path), {}, {"main": changed}) == 0  # current now
    # The Orders tab is as it was: formulas, dropdown, colours.
    sheet = load_workbook(workbook_path)["Orders"]
    assert validation_on(sheet, "service").formula1 == f"'Services'!$P$2:$P${len(CATALOG) + 1}"
    assert str(sheet.cell(2, orders_headers(sheet).index("estimate") + 1).value).startswith("=IF(")


def test_the_rows_of_a_panel_whose_catalog_is_not_given_stay_as_they_are(tmp_path):
    backup = [replace(s, rate=s.rate * 2) for s in CATALOG[:3]]
    layout = plan_layout(listed_services({"main": CATALOG[:3], "backup": backup}), "main", rows=10)
    path = write_template(tmp_path / "two.xlsx", layout)
    before = list(load_workbook(path)["Services"].values)
    cheaper = {s.id: replace(s, rate=Decimal("0.50")) for s in CATALOG[:3] if s.id != "1"}
    assert refresh_services_tab(str(path), {}, {"main": cheaper}) > 0  # backup's catalog: not loaded
    after = list(load_workbook(path)["Services"].values)
    assert [row[16] for row in after[1:]] == ["main|2", "main|3", "backup|1", "backup|2", "backup|3", None]
    assert after[3:6] == before[4:7]  # backup's rows, as they were (moved up one)
    assert [Decimal(str(row[5])) for row in after[1:3]] == [Decimal("0.50")] * 2


def test_refreshing_a_sheet_without_a_services_tab_does_nothing(tmp_path):
    path = build_order_workbook(tmp_path / "plain.xlsx")
    before = path.read_bytes()
    assert refresh_services_tab(str(path), {}, {"main": {s.id: s for s in CATALOG}}) == 0
    assert path.read_bytes() == before


def test_several_panels_get_a_panel_dropdown_and_their_own_rows(tmp_path):
    backup = [replace(s, rate=s.rate * 2) for s in CATALOG[:3]]
    layout = plan_layout(listed_services({"main": CATALOG[:3], "backup": backup}), "main", rows=10)
    workbook = load_workbook(write_template(tmp_path / "two.xlsx", layout))
    sheet = workbook["Orders"]
    panel = [v for v in sheet.data_validations.dataValidation if str(v.sqref) == "A2:A11"]
    assert len(panel) == 1 and panel[0].formula1 == '"main,backup"' and panel[0].showErrorMessage
    keys = [row[16] for row in list(workbook["Services"].values)[1:]]
    assert keys == ["main|1", "main|2", "main|3", "backup|1", "backup|2", "backup|3"]
