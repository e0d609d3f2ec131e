"""One sheet, one identity whatever the spelling; a sheet carries which journal tracks it, so a
second journal refuses it; one process at a time on a sheet, whatever its journal."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from openpyxl import load_workbook
from test_run_google import make_google_sheet

from sheetorders.app import run_sheets
from sheetorders.config import Config, load_config
from sheetorders.errors import ExitCode, LockHeld, SheetTrackedElsewhere
from sheetorders.journal import Journal
from sheetorders.pipeline import PassOptions
from sheetorders.report import RunReport
from sheetorders.sheets.base import SheetBackend
from sheetorders.sheets.csvfile import CsvBackend
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.sheets.google import GoogleSheetsBackend
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.sheets_server import FakeSheetsServer
from sheetorders.testing.workbooks import read_sheet, set_cells, write_config
from sheetorders.workbook import build_order_workbook
from tests.test_settle import _config_file, setup


class Crashed(BaseException):
    """The process died between the panel's answers and the save."""


def rows(count: int, tag: str) -> list[dict[str, object]]:
    return [{"service": 2, "link": f"https://instagram.com/{tag}{i}", "quantity": 100} for i in range(count)]


@pytest.mark.parametrize("second", ["./orders.xlsx", "ABSOLUTE", "sub/../orders.xlsx"])
def test_a_sheet_reached_by_another_spelling_after_a_killed_run_is_not_ordered_twice(
    tmp_path: Path, panel: PanelServer, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(20, "spell"))
    other = build_order_workbook(tmp_path / "other.xlsx", [])
    config = load_config(write_config(tmp_path, panel.url, other))

    def crash(self: ExcelBackend, cells: object) -> None:
        raise Crashed

    with monkeypatch.context() as patched, pytest.raises(Crashed):
        patched.setattr(ExcelBackend, "write", crash)
        run_sheets(config.with_sheet_source("orders.xlsx"))
    assert len(panel.ledger.orders) == 20

    spelling = str(sheet) if second == "ABSOLUTE" else second
    report = run_sheets(config.with_sheet_source(spelling))

    assert len(panel.ledger.orders) == 20  # found again, none placed twice
    assert report.sheets[0].recovered == 20
    assert sorted(r["order_id"] for r in read_sheet(sheet)) == sorted(panel.ledger.orders)


def test_the_case_of_the_tab_name_does_not_make_a_new_sheet(
    tmp_path: Path, panel: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(3, "case"))
    path = write_config(tmp_path, panel.url, sheet)

    def crash(self: ExcelBackend, cells: object) -> None:
        raise Crashed

    with monkeypatch.context() as patched, pytest.raises(Crashed):
        patched.setattr(ExcelBackend, "write", crash)
        run_sheets(load_config(path))
    path.write_text(path.read_text().replace("worksheet: Orders", "worksheet: ORDERS"))
    assert "ORDERS" in path.read_text()
    run_sheets(load_config(path))
    assert len(panel.ledger.orders) == 3


def two_configs(tmp_path: Path, panel: PanelServer, sheet: Path) -> tuple[Path, Path]:
    """Two configs, each with its own journal, on the same workbook."""
    paths = []
    for team in ("a", "b"):
        folder = tmp_path / team
        folder.mkdir()
        paths.append(write_config(folder, panel.url, sheet))
    return paths[0], paths[1]


def test_a_second_journal_on_a_sheet_another_tracks_refuses_before_placing(
    tmp_path: Path, panel: PanelServer
) -> None:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(20, "two"))
    first, second = two_configs(tmp_path, panel, sheet)
    run_sheets(load_config(first))
    assert len(panel.ledger.orders) == 20
    build_order_workbook(tmp_path / "fresh.xlsx", [])  # unrelated; the journal of b is new
    # A person clears two rows' results: b would order them again if it did not refuse.
    report = run_sheets(load_config(second))
    failure = report.sheets[0].failure
    assert isinstance(failure, SheetTrackedElsewhere)
    assert str(tmp_path / "a" / ".sheetorders" / "journal.sqlite") in str(failure)
    assert "--take-over" in str(failure)
    assert report.exit_code == ExitCode.USAGE
    assert len(panel.ledger.orders) == 20


def test_two_journals_on_a_fresh_sheet_never_both_order(tmp_path: Path, panel: PanelServer) -> None:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(5, "race"))
    first, second = two_configs(tmp_path, panel, sheet)
    config_a, config_b = load_config(first), load_config(second)
    original = panel.handle
    started = threading.Lock()
    inner: list[RunReport] = []

    def b_runs_while_a_orders(form: dict[str, str]) -> object:
        if form.get("action") == "add" and started.acquire(blocking=False):
            inner.append(run_sheets(config_b))  # another process, at the worst moment
        return original(form)

    panel.handle = b_runs_while_a_orders
    run_sheets(config_a)
    failure = inner[0].sheets[0].failure
    assert isinstance(failure, (SheetTrackedElsewhere, LockHeld)), failure
    assert len(panel.ledger.orders) == 5


def test_take_over_moves_the_sheet_and_treats_the_other_journals_refs_as_unknown(
    tmp_path: Path, panel: PanelServer
) -> None:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", [*rows(2, "move"), *rows(1, "new")])
    first, second = two_configs(tmp_path, panel, sheet)
    run_sheets(load_config(first))
    from openpyxl import load_workbook

    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    header = [c.value for c in ws[1]]
    ws.cell(2, header.index("order_id") + 1).value = None  # results lost, ref kept
    workbook.save(sheet)

    report = run_sheets(load_config(second), PassOptions(take_over=True))

    assert report.sheets[0].failure is None
    assert any("moved to this journal" in n for n in report.sheets[0].notices)
    row = read_sheet(sheet)[0]
    assert row["status"] == "Uncertain" and "another sheetorders journal" in row["error"]
    assert len(panel.ledger.orders) == 3  # nothing ordered again
    assert isinstance(run_sheets(load_config(first)).sheets[0].failure, SheetTrackedElsewhere)


def csv_sheet(path: Path, count: int, tag: str) -> Path:
    lines = ["service,link,quantity", *(f"2,https://instagram.com/{tag}{i},100" for i in range(count))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_file_carries_its_journal_too_so_a_second_journal_refuses_it_before_placing(
    tmp_path: Path, panel: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = csv_sheet(tmp_path / "orders.csv", 5, "csv-two")
    first, second = two_configs(tmp_path, panel, sheet)

    def crash(self: CsvBackend, cells: object) -> None:
        raise Crashed

    with monkeypatch.context() as patched, pytest.raises(Crashed):
        patched.setattr(CsvBackend, "write", crash)
        run_sheets(load_config(first))  # placed, and killed before a ref reached the file
    assert len(panel.ledger.orders) == 5
    before = sheet.read_bytes()

    report = run_sheets(load_config(second))

    failure = report.sheets[0].failure
    assert isinstance(failure, SheetTrackedElsewhere), report.as_dict()
    assert str(tmp_path / "a" / ".sheetorders" / "journal.sqlite") in str(failure)
    assert len(panel.ledger.orders) == 5  # b would have ordered all five again
    assert sheet.read_bytes() == before  # the mark is beside the file, not in it
    assert run_sheets(load_config(first)).sheets[0].recovered == 5  # its own journal goes on


def test_take_over_moves_the_mark_of_a_csv_file(tmp_path: Path, panel: PanelServer) -> None:
    sheet = csv_sheet(tmp_path / "orders.csv", 2, "csv-move")
    first, second = two_configs(tmp_path, panel, sheet)
    run_sheets(load_config(first))

    report = run_sheets(load_config(second), PassOptions(take_over=True))

    assert report.sheets[0].failure is None
    assert any("moved to this journal" in n for n in report.sheets[0].notices)
    assert len(panel.ledger.orders) == 2
    assert isinstance(run_sheets(load_config(first)).sheets[0].failure, SheetTrackedElsewhere)


@pytest.fixture
def google_sheets() -> Iterator[FakeSheetsServer]:
    with FakeSheetsServer() as server:
        yield server


def _killed_before_the_write(monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    def crash(self: GoogleSheetsBackend, cells: object) -> None:
        raise Crashed

    with monkeypatch.context() as patched, pytest.raises(Crashed):
        patched.setattr(GoogleSheetsBackend, "write", crash)
        run_sheets(config)


@pytest.mark.parametrize(
    "spelling", ["{key}", "https://docs.google.com/spreadsheets/d/{key}/edit?usp=sharing"]
)
def test_a_google_sheet_reached_by_another_spelling_after_a_killed_run_is_not_ordered_twice(
    tmp_path: Path,
    google_sheets: FakeSheetsServer,
    panel: PanelServer,
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
) -> None:
    sheet = make_google_sheet(tmp_path, google_sheets, panel.url, rows(3, "g"))
    _killed_before_the_write(monkeypatch, sheet.config)
    assert len(panel.ledger.orders) == 3 and not any(row["order_id"] for row in sheet.rows())

    # The link is copied again from the browser, or the bare key pasted.
    config = sheet.config.with_sheet_source(spelling.format(key=sheet.key))
    run_sheets(config)
    panel.advance(7200)  # the first orders complete: the panel would take the links again
    run_sheets(config)

    assert len(panel.ledger.orders) == 3
    assert sorted(row["order_id"] for row in sheet.rows()) == sorted(panel.ledger.orders)


def test_a_google_sheet_filed_under_its_spelling_by_an_earlier_version_keeps_its_entries(
    tmp_path: Path, google_sheets: FakeSheetsServer, panel: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = make_google_sheet(tmp_path, google_sheets, panel.url, rows(3, "old"))
    with monkeypatch.context() as patched:  # the sheet's key as versions before this one made it
        patched.setattr(GoogleSheetsBackend, "identity", SheetBackend.identity)
        _killed_before_the_write(monkeypatch, sheet.config)
    with Journal(sheet.config.journal) as journal:
        assert len(journal.rows(f"{sheet.config.sheets[0].source}#orders")) == 3

    run_sheets(sheet.config)
    panel.advance(7200)
    run_sheets(sheet.config)

    assert len(panel.ledger.orders) == 3
    assert sorted(row["order_id"] for row in sheet.rows()) == sorted(panel.ledger.orders)
    with Journal(sheet.config.journal) as journal:
        assert len(journal.rows(f"google:{sheet.key}#orders")) == 3


def test_a_tab_renamed_after_a_pass_that_could_not_write_holds_the_rows_it_ordered(
    tmp_path: Path, panel: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows(3, "renamed"))
    config = load_config(write_config(tmp_path, panel.url, sheet))

    def crash(self: ExcelBackend, cells: object) -> None:
        raise Crashed

    with monkeypatch.context() as patched, pytest.raises(Crashed):
        patched.setattr(ExcelBackend, "write", crash)
        run_sheets(config)
    assert len(panel.ledger.orders) == 3
    workbook = load_workbook(sheet)
    workbook["Orders"].title = "March"  # the tab renamed, and the config with it
    workbook.save(sheet)
    set_cells(
        sheet, {(5, "service"): 2, (5, "link"): "https://instagram.com/new", (5, "quantity"): 100}, "March"
    )
    renamed = replace(config, sheets=[replace(config.sheets[0], worksheet="March")])
    panel.advance(7200)  # the first orders complete: the panel would take their links again

    run_sheets(renamed)
    found = read_sheet(sheet, "March")
    assert len(panel.ledger.orders) == 4 and found[3]["order_id"]  # the new row is placed
    for row in found[:3]:
        assert row["status"] == "Held" and not row["order_id"]
        assert "for exactly this row was placed from file:" in row["error"]
        assert "type the order's ID in order_id" in row["error"]

    # The person types the first order's ID in one row and retry in another.
    first = sorted(panel.ledger.orders)[0]
    set_cells(sheet, {(2, "order_id"): first, (3, "status"): "retry"}, "March")
    run_sheets(renamed)
    found = read_sheet(sheet, "March")
    assert found[0]["order_id"] == first and found[1]["order_id"] and found[2]["status"] == "Held"
    assert len(panel.ledger.orders) == 5


def test_an_uncertain_row_shown_in_its_own_sheet_holds_no_row_of_another_sheet(
    tmp_path: Path, panel: PanelServer
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    row = {"service": 2, "link": "https://instagram.com/p/standing", "quantity": 100}
    config_a, sheet_a = setup(a, panel, [row], probe=False)
    panel.faults.queue("drop", actions=["add"])
    run_sheets(config_a)
    shown = read_sheet(sheet_a)[0]
    assert shown["status"] == "Uncertain" and shown["ref"]  # the sheet shows it, with its ref
    run_sheets(config_a)  # and again: its pass has seen it in the sheet

    panel.advance(10**7)  # whatever was made is done: the panel takes the link again
    sheet_b = build_order_workbook(b / "orders.xlsx", [row])  # another team's sheet, same order
    config_b = load_config(_config_file(b, panel, sheet_b, journal=a / "journal.sqlite"))
    run_sheets(config_b)
    got = read_sheet(sheet_b)[0]
    assert got["order_id"], (got["status"], got["error"])


def test_the_first_tab_by_its_gid_then_by_the_share_link_is_one_sheet(
    tmp_path: Path, google_sheets: FakeSheetsServer, panel: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = make_google_sheet(tmp_path, google_sheets, panel.url, rows(3, "gid"))
    # The config names no worksheet: the link copied from the browser bar (…/edit#gid=0).
    config = replace(sheet.config, sheets=[replace(sheet.config.sheets[0], worksheet=None)])

    _killed_before_the_write(monkeypatch, config)
    assert len(panel.ledger.orders) == 3

    # The link pasted again from the Share dialog: the same spreadsheet, the same (first) tab.
    shared = config.with_sheet_source(f"https://docs.google.com/spreadsheets/d/{sheet.key}/edit?usp=sharing")
    assert shared.sheets[0].worksheet is None
    run_sheets(shared)
    found = sheet.rows()
    assert len(panel.ledger.orders) == 3
    assert sorted(r["order_id"] or "" for r in found) == sorted(panel.ledger.orders), [
        (r["status"], r["error"]) for r in found
    ]
