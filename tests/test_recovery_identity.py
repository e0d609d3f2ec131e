"""An order whose ref never reached the sheet is found again by what identifies it: never by
empty values (a Subscriptions row has no link)."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook

from sheetorders.app import run_sheets
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet

SUBSCRIPTION = {"service": 18, "min": 100, "max": 200, "delay": 30, "posts": 5}


class Crashed(BaseException):
    """The process died between the panel's answer and the save."""


def insert_row_above(sheet: Path, values: dict[str, object]) -> None:
    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    header = [c.value for c in ws[1]]
    ws.insert_rows(2)
    for name, value in values.items():
        ws.cell(row=2, column=header.index(name) + 1).value = value
    workbook.save(sheet)


def crash_before_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: ExcelBackend, cells: object) -> None:
        raise Crashed

    monkeypatch.setattr(ExcelBackend, "write", crash)


def test_an_edited_subscription_row_is_not_taken_for_another_users(
    sheet_setup, panel: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, sheet = sheet_setup([{**SUBSCRIPTION, "username": "alice"}])
    crash_before_saving(monkeypatch)
    with pytest.raises(Crashed):
        run_sheets(config)
    monkeypatch.undo()
    (alice_order,) = panel.ledger.orders
    # A person inserts bob's row above, and changes alice's delay meanwhile (so her fingerprint
    # no longer matches): only the username can tell the two rows apart.
    insert_row_above(sheet, {**SUBSCRIPTION, "username": "bob"})
    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    header = [c.value for c in ws[1]]
    ws.cell(row=3, column=header.index("delay") + 1).value = 45
    workbook.save(sheet)

    run_sheets(config)

    rows = {r["username"]: r for r in read_sheet(sheet)}
    assert rows["alice"]["order_id"] == alice_order  # found again, not placed again
    assert rows["bob"]["order_id"] and rows["bob"]["order_id"] != alice_order
    users = sorted(order.fields.get("username") for order in panel.ledger.orders.values())
    assert users == ["alice", "bob"]


def test_an_order_is_never_matched_to_a_row_by_empty_values(
    sheet_setup, panel: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, sheet = sheet_setup([{**SUBSCRIPTION, "username": "alice"}])
    crash_before_saving(monkeypatch)
    with pytest.raises(Crashed):
        run_sheets(config)
    monkeypatch.undo()
    (alice_order,) = panel.ledger.orders
    # alice's row is gone; a different subscription row is there instead.
    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("username") + 1).value = "carol"
    workbook.save(sheet)

    report = run_sheets(config)

    row = read_sheet(sheet)[0]
    assert row["order_id"] != alice_order
    assert any(alice_order in notice and "no such row" in notice for notice in report.sheets[0].notices)
