"""A proof of absence made by an earlier pass (here another sheet's) is checked against the
panel's answer when the row is placed again, as one made in the same pass is."""

from __future__ import annotations

import time

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.journal import Journal
from sheetorders.testing.workbooks import read_sheet
from sheetorders.workbook import build_order_workbook
from tests.test_settle import _config_file, orders_by_link, queue_faults, rows_of, setup


def test_a_wrong_proof_from_another_sheets_pass_is_caught_when_the_row_is_placed(tmp_path, panel):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    panel.faults.late_delay = 1.5  # the panel makes the order 1.5 s after it dropped the connection
    config_a, sheet_a = setup(first_dir, panel, rows_of(2))  # probe_grace 0: proofs may be wrong
    queue_faults(panel, "ok", "late")
    assert run_sheets(config_a).sheets[0].still_uncertain == 1

    # Sheet B (same journal and panel) places an order at once: it bounds A's window, and its
    # pass "proves" A's unclear add made nothing (the late order is not made yet).
    # (an unclear add of its own makes B's pass run the search)
    queue_faults(panel, "ok", "drop")
    sheet_b = build_order_workbook(
        second_dir / "orders.xlsx",
        [{"service": 2, "link": f"https://instagram.com/p/b-{i}", "quantity": 100} for i in range(3)],
    )
    config_b = load_config(_config_file(second_dir, panel, sheet_b, journal=first_dir / "journal.sqlite"))
    run_sheets(config_b)
    with Journal(config_a.journal) as journal:
        assert not journal.unresolved(), "precondition: B's pass released A's entry"
    time.sleep(2.0)  # the late order is made now

    link = read_sheet(sheet_a)[1]["link"]
    assert len(orders_by_link(panel)[link]) == 1  # A's row does have its order on the panel
    report = run_sheets(config_a).sheets[0]  # A places the row again: "active order on this link"
    row = read_sheet(sheet_a)[1]
    with Journal(config_a.journal) as journal:
        off = journal.probe_off("main")
        state = journal.get(row["ref"]).state

    # As for a proof made in the same pass (test_a_proof_the_panel_contradicts_turns_the_search_off):
    # the row goes back to Uncertain and the search is turned off.
    assert row["status"] == "Uncertain" and off, (row["status"], row["error"], state, off, report.notices)

    panel.advance(10**7)  # the row's order completes: the panel would take its link again
    run_sheets(config_a)
    assert len(orders_by_link(panel)[link]) == 1 and read_sheet(sheet_a)[1]["status"] == "Uncertain"
