"""The journal's mark on a Google Sheet (developer metadata on the tab): a second journal refuses
the sheet before placing anything; --take-over moves it; the tab never carries two marks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_run_google import GoogleSheet, make_google_sheet

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import ExitCode, SheetTrackedElsewhere
from sheetorders.pipeline import PassOptions
from sheetorders.sheets.google import OWNER_KEY, GoogleSheetsBackend
from sheetorders.testing.sheets_server import FakeSheetsServer


@pytest.fixture
def sheets() -> Iterator[FakeSheetsServer]:
    with FakeSheetsServer() as server:
        yield server


def rows(count: int, tag: str) -> list[dict[str, Any]]:
    return [{"service": 2, "link": f"https://instagram.com/{tag}{i}", "quantity": 100} for i in range(count)]


def second_config(tmp_path: Path, sheet: GoogleSheet) -> Path:
    """Another config on the same sheet, with its own journal."""
    folder = tmp_path / "b"
    folder.mkdir()
    data = yaml.safe_load(sheet.config_path.read_text())
    data["journal"] = str(folder / "journal.sqlite")
    path = folder / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def marks(sheet: GoogleSheet) -> list[dict[str, Any]]:
    return [m for m in sheet.server.developer_metadata(sheet.key, "Orders") if m["metadataKey"] == OWNER_KEY]


def test_a_fresh_sheet_is_marked_before_its_first_order(tmp_path, sheets, panel):
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows(2, "fresh"))
    seen: list[list[dict[str, Any]]] = []
    original = panel.handle

    def record_marks(form):
        if form.get("action") == "add":
            seen.append(marks(sheet))
        return original(form)

    panel.handle = record_marks
    report = run_sheets(sheet.config)
    assert report.exit_code == ExitCode.OK, report.as_dict()
    assert len(seen) == 2 and all(len(found) == 1 for found in seen)
    (mark,) = marks(sheet)
    assert str(tmp_path / "journal.sqlite") in mark["metadataValue"]
    assert mark["location"] == {"locationType": "SHEET", "sheetId": 0}
    assert mark["visibility"] == "DOCUMENT"
    claims = [r.json() for r in sheets.requests if r.kind == "batchUpdate"]
    assert claims == [{"requests": [{"createDeveloperMetadata": {"developerMetadata": {
        "metadataKey": OWNER_KEY, "metadataValue": mark["metadataValue"],
        "location": {"sheetId": 0}, "visibility": "DOCUMENT"}}}]}]  # fmt: skip


def test_a_second_journal_is_refused_before_placing(tmp_path, sheets, panel):
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows(3, "two"))
    run_sheets(sheet.config)
    assert len(panel.ledger.orders) == 3
    sheet.type(2, "order_id", None)  # a person clears a row's results: b would order it again
    sheet.type(3, "order_id", None)
    adds = panel.ledger.calls["add"]
    report = run_sheets(load_config(second_config(tmp_path, sheet)))
    failure = report.sheets[0].failure
    assert isinstance(failure, SheetTrackedElsewhere), report.as_dict()
    assert str(tmp_path / "journal.sqlite") in str(failure)
    assert report.exit_code == ExitCode.USAGE
    assert panel.ledger.calls["add"] == adds and len(panel.ledger.orders) == 3
    assert len(marks(sheet)) == 1


def test_take_over_moves_the_mark(tmp_path, sheets, panel):
    sheet = make_google_sheet(tmp_path, sheets, panel.url, rows(1, "move"))
    run_sheets(sheet.config)
    before = marks(sheet)[0]["metadataValue"]
    report = run_sheets(load_config(second_config(tmp_path, sheet)), PassOptions(take_over=True))
    assert report.sheets[0].failure is None, report.as_dict()
    assert any("moved to this journal" in n for n in report.sheets[0].notices)
    (mark,) = marks(sheet)
    assert mark["metadataValue"] != before and str(tmp_path / "b" / "journal.sqlite") in mark["metadataValue"]
    assert len(panel.ledger.orders) == 1
    assert isinstance(run_sheets(sheet.config).sheets[0].failure, SheetTrackedElsewhere)


def test_claiming_twice_leaves_one_mark(tmp_path, sheets, panel):
    sheet = make_google_sheet(tmp_path, sheets, panel.url, [])
    backend = GoogleSheetsBackend(sheet.config.sheets[0].source, "Orders", sheet.config.google)
    with backend:
        backend.read()
        assert backend.owner() is None
        backend.claim("first")
        backend.claim("second")
        backend.read()
        sheets.reset_calls()
        assert backend.owner() == "second"
        assert sheets.calls == {"metadata": 1}  # one read for the mark
    (mark,) = marks(sheet)
    assert mark["metadataValue"] == "second"


def test_a_retried_claim_adds_no_second_mark(tmp_path, sheets, panel):
    sheet = make_google_sheet(tmp_path, sheets, panel.url, [])
    backend = GoogleSheetsBackend(
        sheet.config.sheets[0].source, "Orders", sheet.config.google, sleep=lambda s: None
    )
    mark = {
        "metadataKey": OWNER_KEY,
        "metadataValue": "one",
        "location": {"sheetId": 0},
        "visibility": "DOCUMENT",
    }

    def landed() -> None:  # the first try is applied, but its answer is a 503
        with sheets._lock:
            request = {"createDeveloperMetadata": {"developerMetadata": mark}}
            sheets._batch_update(sheets._spreadsheets[sheet.key], [request])

    with backend:
        backend.read()
        assert backend.owner() is None
        sheets.fail_next(503, kind="batchUpdate", edit=landed)
        backend.claim("one")
    assert [m["metadataValue"] for m in marks(sheet)] == ["one"]
    assert sheets.calls["batchUpdate"] == 2 and sheets.calls["metadata"] == 2  # read again before the retry


def test_stray_second_mark_is_removed_by_a_claim(tmp_path, sheets, panel):
    sheet = make_google_sheet(tmp_path, sheets, panel.url, [])
    backend = GoogleSheetsBackend(sheet.config.sheets[0].source, "Orders", sheet.config.google)
    with backend:
        http = backend._client()
        for value in ("a", "b"):
            mark = {"metadataKey": OWNER_KEY, "metadataValue": value, "location": {"sheetId": 0},
                    "visibility": "DOCUMENT"}  # fmt: skip
            http.batch_update(
                sheet.key, {"requests": [{"createDeveloperMetadata": {"developerMetadata": mark}}]}
            )
        backend.read()
        assert backend.owner() == "a"
        backend.claim("c")
    assert [m["metadataValue"] for m in marks(sheet)] == ["c"]
