"""`run` end to end: an .xlsx sheet, the local panel over HTTP, the journal on disk."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import TEST_KEY
from openpyxl import load_workbook
from openpyxl.styles import PatternFill

from sheetorders.app import run_sheets
from sheetorders.demo import example_rows
from sheetorders.errors import ExitCode
from sheetorders.pipeline import PassOptions
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.testing.panel_server import SERVICE_TYPES, default_catalog
from sheetorders.testing.workbooks import read_sheet


def valid_example_rows() -> list[dict]:
    return [row for row in example_rows(default_catalog()) if "invalid" not in row["note"]]


def test_every_service_type_is_ordered_from_a_sheet(sheet_setup, panel):
    rows = [row for row in valid_example_rows() if "waits" not in row["note"]]
    config, sheet = sheet_setup(rows)
    report = run_sheets(config)
    assert report.exit_code == ExitCode.OK, report.as_dict()

    result = read_sheet(sheet)
    assert len(result) == len(rows)
    assert all(row["order_id"] for row in result), [(r["_row"], r["error"]) for r in result]
    ordered_types = {panel.order(row["order_id"]).type for row in result}
    assert ordered_types == set(SERVICE_TYPES)
    assert len(panel.ledger.orders) == len(rows)
    # what reached the panel is what the row asked for
    for row in result:
        order = panel.order(row["order_id"])
        assert order.link == row["link"] or (order.link is None and row["link"] is None)
        assert row["status"] in ("Pending", "In progress")
        assert row["ref"].startswith("so-")
        assert row["currency"] == "USD"
        assert Decimal(str(row["charge"])) == order.charge
    drip = next(row for row in result if row["runs"] == 5)
    assert panel.order(drip["order_id"]).fields["runs"] == "5"
    assert panel.order(drip["order_id"]).fields["interval"] == "30"
    comments = next(row for row in result if row["note"] == "Custom Comments")
    assert panel.order(comments["order_id"]).fields["comments"].startswith("Love it!\nSo good\nWow\n")


def test_invalid_rows_are_marked_with_row_column_and_reason(sheet_setup, panel):
    config, sheet = sheet_setup(
        [
            {"service": 2, "link": "https://instagram.com/a", "quantity": 10},
            {"service": 2, "link": "instagram.com/b", "quantity": 100},
            {"service": 2, "link": "https://instagram.com/c", "quantity": "lots"},
            {"service": 999, "link": "https://instagram.com/d", "quantity": 100},
            {"service": 2, "link": "https://instagram.com/e", "quantity": " 100.0 "},
        ]
    )
    report = run_sheets(config)
    assert report.exit_code == ExitCode.ROWS_FAILED
    rows = {row["_row"]: row for row in read_sheet(sheet)}
    assert rows[2]["status"] == "Invalid"
    assert "quantity" in rows[2]["error"] and "below the minimum 50" in rows[2]["error"]
    assert rows[3]["status"] == "Invalid" and "link" in rows[3]["error"]
    assert rows[4]["status"] == "Invalid" and "lots" in rows[4]["error"]
    assert rows[5]["status"] == "Invalid" and "999" in rows[5]["error"]
    assert rows[6]["order_id"] and rows[6]["status"] == "Pending"
    assert len(panel.ledger.orders) == 1
    assert any(problem.startswith("row 2, quantity:") for problem in report.sheets[0].problems)


def test_rerun_places_nothing_new(sheet_setup, panel):
    config, sheet = sheet_setup(valid_example_rows())
    run_sheets(config)
    first = read_sheet(sheet)
    orders_after_first = len(panel.ledger.orders)
    report = run_sheets(config)
    assert len(panel.ledger.orders) == orders_after_first
    assert report.sheets[0].ordered == 0
    assert [r["order_id"] for r in read_sheet(sheet)] == [r["order_id"] for r in first]


def test_sorting_and_inserting_rows_between_runs_places_only_the_new_rows(sheet_setup, panel, tmp_path):
    rows = [{"service": 2, "link": f"https://instagram.com/u{i}", "quantity": 100 + i} for i in range(6)]
    config, sheet = sheet_setup(rows)
    run_sheets(config)
    placed = {r["link"]: r["order_id"] for r in read_sheet(sheet)}
    assert len(placed) == 6 and all(placed.values())

    # A person sorts the rows in reverse and inserts two new rows at the top and in the middle.
    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    data = [list(r) for r in ws.iter_rows(min_row=2, values_only=True)]
    ws.delete_rows(2, ws.max_row)
    header = [c.value for c in ws[1]]
    new_row = dict.fromkeys(header)
    first_new = [{**new_row, "service": 2, "link": "https://instagram.com/new1", "quantity": 200}]
    second_new = [{**new_row, "service": 2, "link": "https://instagram.com/new2", "quantity": 300}]
    reordered = (
        [list(r.values()) for r in first_new] + data[::-1][:3] + [list(r.values()) for r in second_new]
    )
    for values in reordered + data[::-1][3:]:
        ws.append(values)
    workbook.save(sheet)

    report = run_sheets(config)
    assert report.sheets[0].ordered == 2
    assert len(panel.ledger.orders) == 8
    after = {r["link"]: r for r in read_sheet(sheet)}
    for link, order_id in placed.items():
        assert after[link]["order_id"] == order_id
        assert panel.order(order_id).link == link
    for link in ("https://instagram.com/new1", "https://instagram.com/new2"):
        assert panel.order(after[link]["order_id"]).link == link


def test_dropped_connection_after_create_makes_the_row_uncertain_and_it_is_not_resent(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/drop", "quantity": 100}])
    panel.faults.queue("drop", 1, actions={"add"})
    report = run_sheets(config)
    assert report.exit_code == ExitCode.ROWS_FAILED
    assert report.sheets[0].uncertain == 1
    assert len(panel.ledger.orders) == 1  # the dropped one exists on the panel
    uncertain = read_sheet(sheet)[0]
    assert uncertain["status"] == "Uncertain" and not uncertain["order_id"]
    assert "retry" in uncertain["error"] and "order_id" in uncertain["error"]
    assert panel.ledger.calls["add"] == 1

    run_sheets(config)  # never re-sent on its own
    assert panel.ledger.calls["add"] == 1
    assert read_sheet(sheet)[0]["status"] == "Uncertain"

    # The user checks the panel, finds nothing (pretend), and releases the row with `retry`.
    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    status_col = [c.value for c in ws[1]].index("status") + 1
    ws.cell(row=2, column=status_col, value="retry")
    workbook.save(sheet)
    report = run_sheets(config)
    assert panel.ledger.calls["add"] == 2
    # The dropped order is still running on the panel, which refuses a second one on the link.
    assert report.sheets[0].waiting == 1
    assert read_sheet(sheet)[0]["status"] == "Waiting"
    panel.advance(3600)
    report = run_sheets(config)
    assert report.sheets[0].ordered == 1
    assert panel.ledger.calls["add"] == 3
    assert read_sheet(sheet)[0]["order_id"]


def test_rows_sharing_link_and_service_are_placed_one_after_the_other(sheet_setup, panel):
    link = "https://instagram.com/same"
    config, sheet = sheet_setup(
        [
            {"service": 2, "link": link, "quantity": 100},
            {"service": 2, "link": link, "quantity": 200},
            {"service": 1, "link": link, "quantity": 300},  # another service: not queued
        ]
    )
    report = run_sheets(config)
    assert report.sheets[0].ordered == 2 and report.sheets[0].waiting == 1
    assert report.exit_code == ExitCode.OK  # waiting is not a failure
    rows = read_sheet(sheet)
    assert rows[1]["status"] == "Waiting" and not rows[1]["order_id"]
    assert "row 2" in rows[1]["error"]

    run_sheets(config)  # the first order still runs: still waiting
    assert read_sheet(sheet)[1]["status"] == "Waiting"
    assert len(panel.ledger.orders) == 2

    panel.advance(3600)  # the first order completes
    run_sheets(config)  # refreshes the first to Completed
    run_sheets(config)  # places the second
    rows = read_sheet(sheet)
    assert rows[0]["status"] in ("Completed", "Partial")
    assert rows[1]["order_id"] and panel.order(rows[1]["order_id"]).quantity == 200
    assert len(panel.ledger.orders) == 3


def test_not_enough_funds_stops_cleanly_and_leaves_the_rest_for_the_next_run(tmp_path, sheet_setup, panel):
    # 2.40 per 1000: each row costs 2.40; the balance covers two rows.
    rows = [{"service": 2, "link": f"https://instagram.com/f{i}", "quantity": 1000} for i in range(5)]
    config, sheet = sheet_setup(rows, max_spend=None) if False else sheet_setup(rows)
    with panel.ledger.lock:
        panel.ledger.balance = Decimal("5.00")
    report = run_sheets(config)
    assert report.sheets[0].ordered == 2
    assert report.sheets[0].held_back == 3
    result = read_sheet(sheet)
    assert [bool(r["order_id"]) for r in result] == [True, True, False, False, False]
    # Held, each saying why in its own row (not failed: a later run places them)
    assert all(r["status"] == "Held" and "balance" in r["error"] for r in result[2:])

    with panel.ledger.lock:
        panel.ledger.balance += Decimal("100")
    report = run_sheets(config)
    assert report.sheets[0].ordered == 3
    assert len(panel.ledger.orders) == 5


def test_panel_answering_not_enough_funds_stops_ordering_from_it(sheet_setup, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/g{i}", "quantity": 1000} for i in range(4)]
    config, sheet = sheet_setup(rows)
    # The balance looks fine when checked, then drops before the orders go out (another user).
    original = panel.handle

    def spend_elsewhere(form):
        if form.get("action") == "add":
            with panel.ledger.lock:
                panel.ledger.balance = Decimal("0")
        return original(form)

    panel.handle = spend_elsewhere
    report = run_sheets(config)
    assert report.sheets[0].ordered == 0
    assert len(panel.ledger.orders) == 0
    assert any("Not enough funds" in notice for notice in report.sheets[0].notices)
    assert panel.ledger.calls["add"] <= config.panels["main"].concurrency
    rows = read_sheet(sheet)
    assert all(r["status"] == "Held" and r["order_id"] is None for r in rows)
    assert all("Not enough funds" in r["error"] or "stopped taking orders" in r["error"] for r in rows)


def test_max_spend_stops_before_exceeding_the_sum(sheet_setup, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/m{i}", "quantity": 1000} for i in range(5)]
    config, _sheet = sheet_setup(rows, max_spend=5)
    report = run_sheets(config)
    assert report.sheets[0].ordered == 2  # 2 × 2.40 = 4.80 ≤ 5
    report = run_sheets(config, PassOptions(max_spend=Decimal("2.40")))
    assert report.sheets[0].ordered == 1
    assert len(panel.ledger.orders) == 3


def test_dry_run_places_and_writes_nothing(sheet_setup, panel):
    config, sheet = sheet_setup(example_rows(default_catalog()))
    before = sheet.read_bytes()
    report = run_sheets(config, PassOptions(dry_run=True))
    assert panel.ledger.calls["add"] == 0
    assert sheet.read_bytes() == before
    summary = report.sheets[0]
    assert summary.invalid == 3 and len(summary.would_order) == len(example_rows(default_catalog())) - 4
    assert summary.waiting == 1
    assert summary.spend["main"].estimated == sum(r.estimated_cost for r in summary.would_order)


def test_user_formatting_and_other_sheets_survive_a_run(sheet_setup, panel, tmp_path):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/style", "quantity": 100}])
    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    ws["C2"].fill = PatternFill("solid", fgColor="FFFF00")
    ws.column_dimensions["C"].width = 55
    ws["AZ1"] = "my total"
    ws["AZ2"] = "=D2*2"
    workbook.create_sheet("Budget")["A1"] = "keep me"
    workbook.save(sheet)

    run_sheets(config)
    after = load_workbook(sheet)
    ws = after["Orders"]
    assert ws["C2"].fill.fgColor.rgb.endswith("FFFF00")
    assert ws.column_dimensions["C"].width == 55
    assert ws.freeze_panes == "C2"
    assert ws["AZ2"].value == "=D2*2"
    assert after["Budget"]["A1"].value == "keep me"
    assert len(ws.data_validations.dataValidation) == 1
    assert read_sheet(sheet)[0]["order_id"]


def test_workbook_open_in_excel_is_refused_and_untouched(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/lock", "quantity": 100}])
    lock = sheet.with_name("~$" + sheet.name)
    lock.write_bytes(b"owner")
    before = sheet.read_bytes()
    from sheetorders.errors import SheetLocked

    error = run_sheets(config).sheets[0].failure
    assert isinstance(error, SheetLocked), "a locked workbook was used"
    assert "open in Excel" in str(error)
    assert sheet.read_bytes() == before
    assert panel.ledger.calls["add"] == 0


def test_status_refresh_brings_sheet_up_to_date(sheet_setup, panel):
    rows = [{"service": 2, "link": f"https://instagram.com/s{i}", "quantity": 100} for i in range(10)]
    config, sheet = sheet_setup(rows)
    run_sheets(config)
    panel.advance(3600)
    panel.reset_calls()
    report = run_sheets(config)
    assert panel.ledger.calls["status"] == 1  # 10 IDs, one batch
    assert panel.ledger.calls["add"] == 0
    assert report.sheets[0].refreshed == 10
    statuses = {r["status"] for r in read_sheet(sheet)}
    assert statuses <= {"Completed", "Partial"} and "Completed" in statuses
    partial = [r for r in read_sheet(sheet) if r["status"] == "Partial"]
    for row in partial:
        assert row["remains"] > 0

    panel.reset_calls()
    run_sheets(config)  # all final: nothing to ask
    assert panel.ledger.calls["status"] == 0


def test_the_sheet_of_a_killed_run_is_recovered_from_the_journal(sheet_setup, panel, monkeypatch):
    """An order placed but never saved is written back by the next run, never placed again."""
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/k", "quantity": 100}])
    pristine = read_sheet(sheet)

    def die_before_saving(self, cells):
        raise KeyboardInterrupt  # the process is stopped between placing and saving

    monkeypatch.setattr(ExcelBackend, "write", die_before_saving)
    with pytest.raises(KeyboardInterrupt):
        run_sheets(config)
    monkeypatch.undo()
    assert read_sheet(sheet) == pristine  # no cell written (the sheet only says which journal tracks it)
    assert len(panel.ledger.orders) == 1
    order_id = next(iter(panel.ledger.orders))
    monkeypatch.setenv("TEST_PANEL_KEY", TEST_KEY)
    report = run_sheets(config)
    assert report.sheets[0].recovered == 1 and report.sheets[0].ordered == 0
    assert read_sheet(sheet)[0]["order_id"] == order_id
    assert len(panel.ledger.orders) == 1


def test_ambiguous_order_interrupted_mid_request_is_uncertain(sheet_setup, panel, tmp_path):
    """A journal entry left `sending` (killed while waiting for the panel) is never re-sent blindly."""
    from sheetorders.journal import Journal

    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/mid", "quantity": 100}])
    with Journal(config.journal) as journal:
        from sheetorders.pipeline import SheetRow, fingerprint

        row = SheetRow(
            number=2, raw=[], cells={"service": 2, "link": "https://instagram.com/mid", "quantity": 100}
        )
        journal.begin_add(
            ref="so-interrupted",
            sheet=config.sheets[0].journal_key,
            fingerprint=fingerprint(row),
            panel="main",
            service="2",
            link="https://instagram.com/mid",
            row_number=2,
            estimated_cost="0.24",
        )
    report = run_sheets(config)
    assert panel.ledger.calls["add"] == 0
    assert report.sheets[0].uncertain == 1
    result = read_sheet(sheet)[0]
    assert result["status"] == "Uncertain" and result["ref"] == "so-interrupted"


def test_a_wrong_key_stops_the_run_as_a_config_error_and_touches_no_row(sheet_setup, panel, monkeypatch):
    monkeypatch.setenv("TEST_PANEL_KEY", "not-the-key")
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/key", "quantity": 100}])
    before = sheet.read_bytes()
    report = run_sheets(config)
    assert report.exit_code == ExitCode.USAGE
    assert "Invalid API key" in report.sheets[0].panel_errors["main"]
    assert report.sheets[0].held_back == 1
    assert sheet.read_bytes() == before
    assert panel.ledger.calls["add"] == 0


def test_an_uncertain_row_is_settled_by_typing_the_order_id_found_on_the_panel(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/settle", "quantity": 100}])
    panel.faults.queue("drop", 1, actions={"add"})
    run_sheets(config)
    assert read_sheet(sheet)[0]["status"] == "Uncertain"
    found = next(iter(panel.ledger.orders))  # what the user sees in the panel's order list
    workbook = load_workbook(sheet)
    ws = workbook["Orders"]
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("order_id") + 1, value=found)
    workbook.save(sheet)
    report = run_sheets(config)
    assert report.exit_code == ExitCode.OK
    row = read_sheet(sheet)[0]
    assert row["order_id"] == found and row["status"] == "Pending" and row["error"] is None
    assert panel.ledger.calls["add"] == 1


def test_headers_in_the_teams_own_words_are_mapped_by_the_config(tmp_path, panel):
    from openpyxl import Workbook

    from sheetorders.config import load_config
    from sheetorders.testing.workbooks import write_config

    workbook = Workbook()
    ws = workbook.active
    ws.title = "Orders"
    ws.append(["Услуга", "Ссылка", "Количество", "Order ID", "Комментарий"])
    ws.append([2, "https://instagram.com/ru", 150, None, "оставить как есть"])
    workbook.save(tmp_path / "orders.xlsx")
    config = load_config(
        write_config(
            tmp_path,
            panel.url,
            tmp_path / "orders.xlsx",
            columns={"Услуга": "service", "ссылка": "link", "КОЛИЧЕСТВО": "quantity"},
        )
    )
    assert run_sheets(config).sheets[0].ordered == 1
    ws = load_workbook(tmp_path / "orders.xlsx")["Orders"]
    header = [c.value for c in ws[1]]
    assert header[:5] == ["Услуга", "Ссылка", "Количество", "Order ID", "Комментарий"]
    assert "order_id" not in header  # the existing "Order ID" column is used
    assert ws.cell(row=2, column=4).value == next(iter(panel.ledger.orders))
    assert ws.cell(row=2, column=5).value == "оставить как есть"
    assert panel.order(ws.cell(row=2, column=4).value).quantity == 150


def test_a_workbook_opened_in_excel_during_the_run_loses_nothing(sheet_setup, panel):
    from sheetorders.errors import SheetLocked

    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/opened", "quantity": 100}])
    lock = sheet.with_name("~$" + sheet.name)
    original = panel.handle

    def someone_opens_the_workbook(form):
        if form.get("action") == "add":
            lock.write_bytes(b"owner")
        return original(form)

    panel.handle = someone_opens_the_workbook
    stopped = run_sheets(config).sheets[0].failure
    assert isinstance(stopped, SheetLocked)
    assert "kept in the journal" in str(stopped)
    lock.unlink()
    report = run_sheets(config)
    assert report.sheets[0].recovered == 1 and panel.ledger.calls["add"] == 1
    assert read_sheet(sheet)[0]["order_id"] == next(iter(panel.ledger.orders))
