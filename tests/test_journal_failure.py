"""When the journal cannot record (a full disk), placing stops at once, every ID placed is
written back and named, and nothing is ever placed twice."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from sheetorders.app import run_sheets
from sheetorders.errors import ExitCode, JournalError
from sheetorders.store import Store
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet


@pytest.fixture
def disk_full_after(monkeypatch: pytest.MonkeyPatch):
    """The journal's writes fail once `writes` of them went through, as on a full disk."""

    def arm(writes: int) -> None:
        done = 0
        original = Store.write

        def write(self: Store, work: Any) -> Any:
            nonlocal done
            done += 1
            if done > writes:
                error = sqlite3.OperationalError("database or disk is full")
                raise JournalError(f"{self.path}: cannot record in the journal ({error})")
            return original(self, work)

        monkeypatch.setattr(Store, "write", write)

    return arm


@pytest.mark.parametrize("writes", [6, 7])  # fails on a row's first record, or on an answer's
def test_a_journal_that_cannot_record_stops_the_pass_and_loses_no_id(
    sheet_setup, panel: PanelServer, disk_full_after, monkeypatch: pytest.MonkeyPatch, writes: int
) -> None:
    rows = [{"service": 2, "link": f"https://instagram.com/full{i}", "quantity": 100} for i in range(20)]
    config, sheet = sheet_setup(rows)
    disk_full_after(writes)

    report = run_sheets(config)

    concurrency = config.panel("main").concurrency
    placed = dict(panel.ledger.orders)
    assert 0 < len(placed) <= writes // 2 + concurrency  # stopped at once, in-flight requests aside
    sheet_report = report.sheets[0]
    assert report.exit_code == ExitCode.USAGE
    assert "database or disk is full" in sheet_report.error
    assert "no more orders were sent" in sheet_report.error
    for order_id in placed:
        assert order_id in sheet_report.error  # named, even if the sheet could not be written
    after = read_sheet(sheet)
    assert sorted(r["order_id"] for r in after if r["order_id"]) == sorted(placed)
    assert all(r["status"] == "Held" and "journal" in r["error"] for r in after if not r["order_id"])

    monkeypatch.undo()
    run_sheets(config)
    links = [order.link for order in panel.ledger.orders.values()]
    assert len(links) == len(set(links))  # none twice
    final = read_sheet(sheet)
    assert sorted(r["order_id"] for r in final if r["order_id"]) == sorted(panel.ledger.orders)
    # A row whose "not sent" the broken journal could not record stays Uncertain: never guessed.
    unsure = [r for r in final if not r["order_id"]]
    assert all(r["status"] == "Uncertain" for r in unsure) and len(unsure) <= concurrency
