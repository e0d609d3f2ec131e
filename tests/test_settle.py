"""Uncertain orders settle themselves: the order-ID search finds what an ambiguous `add` made,
or proves it made nothing (and the row is then placed once), against a local panel whose
order IDs are shared with other customers."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from sheetorders.app import run_sheets
from sheetorders.config import Config, load_config
from sheetorders.journal import Journal
from sheetorders.states import EntryState
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, set_cells
from sheetorders.workbook import build_order_workbook


@pytest.fixture
def panel() -> Iterator[PanelServer]:
    with PanelServer(key=TEST_KEY, balance="1000", other_customers=2.0, seed=7) as server:
        yield server


def setup(
    folder: Path, panel: PanelServer, rows: Sequence[Mapping[str, Any]], **panel_options: Any
) -> tuple[Config, Path]:
    sheet = build_order_workbook(folder / "orders.xlsx", rows)
    # The local panel finishes a request before it answers or drops it (but for "late"): no
    # grace is needed before a later order proves an unclear one made nothing.
    panel_options = {"probe_grace": 0, **panel_options}
    data = {
        "panels": {"main": {"url": panel.url, "key": "${TEST_PANEL_KEY}", "concurrency": 1, **panel_options}},
        "sheet": {"source": str(sheet), "worksheet": "Orders"},
        "journal": str(folder / "journal.sqlite"),
    }
    path = folder / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path), sheet


def rows_of(count: int, quantity: int | Sequence[int] = 100) -> list[dict[str, Any]]:
    quantities = [quantity] * count if isinstance(quantity, int) else list(quantity)
    return [
        {"service": 2, "link": f"https://instagram.com/p/settle-{i}", "quantity": quantities[i]}
        for i in range(count)
    ]


def orders_by_link(panel: PanelServer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for order in panel.ledger.orders.values():
        found.setdefault(order.link or "", []).append(order.id)
    return found


def assert_once_and_right(panel: PanelServer, sheet: Path) -> list[dict[str, Any]]:
    """No link ordered twice, and every order ID in the sheet is that row's order."""
    by_link = orders_by_link(panel)
    twice = {link: ids for link, ids in by_link.items() if len(ids) > 1}
    assert not twice, f"placed twice: {twice}"
    result = read_sheet(sheet)
    for row in result:
        if row["order_id"]:
            assert by_link[row["link"]] == [str(row["order_id"])], row
    return result


def queue_faults(panel: PanelServer, *faults: str) -> None:
    """One fault kind (or "ok") for each of the next adds, in order."""
    for kind in faults:
        panel.faults.queue(kind, actions=["add"])


def test_a_dropped_add_is_found_by_the_order_id_search(tmp_path, panel):
    config, sheet = setup(tmp_path, panel, rows_of(6))
    queue_faults(panel, "ok", "ok", "drop")

    report = run_sheets(config).sheets[0]

    result = assert_once_and_right(panel, sheet)
    dropped = result[2]
    assert dropped["order_id"] == orders_by_link(panel)[dropped["link"]][0]
    assert "found by the order-ID search" in dropped["error"]
    assert dropped["status"] == "Pending"
    assert all(row["order_id"] for row in result)
    assert (report.found, report.proven_absent, report.uncertain, report.still_uncertain) == (1, 0, 0, 0)
    assert report.exit_code == 0
    # The other customers' orders really were between ours.
    assert panel.ledger.others


@pytest.mark.parametrize("fault", ["html", "5xx"])
def test_an_add_that_made_nothing_is_proven_absent_and_placed_once(tmp_path, panel, fault):
    config, sheet = setup(tmp_path, panel, rows_of(6))
    queue_faults(panel, "ok", "ok", fault)

    report = run_sheets(config).sheets[0]

    result = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in result)
    assert "the earlier attempt made no order" in result[2]["error"]
    assert panel.ledger.calls["add"] == 7  # six rows, one of them sent twice
    assert (report.found, report.proven_absent, report.uncertain) == (0, 1, 0)
    assert report.ordered == 7 - 1 + 1 - 1  # six orders placed, one of them in the second round


def test_two_ambiguous_adds_told_apart_by_their_charge(tmp_path, panel):
    config, sheet = setup(tmp_path, panel, rows_of(6, [100, 100, 100, 300, 100, 100]))
    queue_faults(panel, "ok", "drop", "ok", "drop")  # rows 2 and 4: 0.24 and 0.72

    report = run_sheets(config).sheets[0]

    result = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in result)
    assert report.found == 2


def test_two_ambiguous_adds_of_one_price_are_left_with_both_candidates(tmp_path, panel):
    config, sheet = setup(tmp_path, panel, rows_of(5))
    queue_faults(panel, "ok", "drop", "drop")  # back to back: the same window, the same price

    report = run_sheets(config).sheets[0]

    result = assert_once_and_right(panel, sheet)
    made = sorted(orders_by_link(panel)[result[i]["link"]][0] for i in (1, 2))
    for row in (result[1], result[2]):
        assert row["status"] == "Uncertain" and not row["order_id"]
        assert f"{made[0]}, {made[1]}" in row["error"]
    assert (report.found, report.still_uncertain) == (0, 2)
    with Journal(config.journal) as journal:
        notes = [entry.probe_note for entry in journal.unresolved()]
    assert all(made[0] in note and made[1] in note for note in notes)

    # A person types the right ID into one row: the other is then told apart (one candidate left).
    mine = next(oid for oid in made if panel.ledger.orders[oid].link == result[1]["link"])
    set_cells(sheet, {(result[1]["_row"], "order_id"): mine})
    again = run_sheets(config).sheets[0]
    final = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in final)
    assert again.found == 1


def test_a_window_without_upper_bound_is_settled_by_a_later_pass(tmp_path, panel):
    config, sheet = setup(tmp_path, panel, rows_of(3))
    queue_faults(panel, "ok", "ok", "html")  # the last add: nothing after it bounds its window

    first = run_sheets(config).sheets[0]
    assert first.still_uncertain == 1
    assert "a later order on this panel settles it" in read_sheet(sheet)[2]["error"]

    # A new row on the same panel gives the window its upper bound.
    rows = rows_of(4)
    set_cells(sheet, {(5, "service"): 2, (5, "link"): rows[3]["link"], (5, "quantity"): 100})
    second = run_sheets(config).sheets[0]
    assert second.proven_absent == 1
    run_sheets(config)

    result = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in result)
    assert len(panel.ledger.orders) == 4


def test_a_panel_that_leaks_other_customers_statuses_turns_the_search_off(tmp_path):
    with PanelServer(key=TEST_KEY, balance="1000", other_customers=3.0, leaks_statuses=True, seed=3) as panel:
        config, sheet = setup(tmp_path, panel, rows_of(6))
        queue_faults(panel, "ok", "ok", "html", "ok", "drop")

        report = run_sheets(config).sheets[0]
        again = run_sheets(config).sheets[0]

        result = assert_once_and_right(panel, sheet)
    assert [row["status"] for row in result].count("Uncertain") == 2
    assert not result[2]["order_id"] and not result[4]["order_id"]
    assert any("turned off" in notice for notice in report.notices)
    assert "order-ID search is off" in result[2]["error"]
    assert (report.found, report.proven_absent, again.found, again.proven_absent) == (0, 0, 0, 0)
    with Journal(config.journal) as journal:
        assert journal.probe_off("main")


def test_probe_false_leaves_uncertain_rows_to_a_person(tmp_path, panel):
    config, sheet = setup(tmp_path, panel, rows_of(4), probe=False)
    queue_faults(panel, "ok", "drop")

    report = run_sheets(config).sheets[0]

    assert (report.found, report.uncertain) == (0, 1)
    assert panel.ledger.calls["status"] <= 1  # the refresh only, never a search
    assert read_sheet(sheet)[1]["status"] == "Uncertain"


def test_a_panel_with_a_client_key_gets_an_unclear_add_again_under_the_same_key(tmp_path):
    with PanelServer(key=TEST_KEY, balance="1000", idempotency_field="request_id") as panel:
        config, sheet = setup(tmp_path, panel, rows_of(3), idempotency_field="request_id")
        queue_faults(panel, "ok", "drop")

        report = run_sheets(config).sheets[0]

        result = assert_once_and_right(panel, sheet)
        assert all(row["order_id"] for row in result)
        assert panel.ledger.calls["add"] == 4
        assert (report.ordered, report.uncertain) == (3, 0)
        keys = Counter(order.fields.get("request_id") for order in panel.ledger.orders.values())
        assert set(keys.values()) == {1} and all(key and key.startswith("so-") for key in keys)


def test_an_add_left_uncertain_under_a_key_is_sent_again_by_the_next_pass(tmp_path):
    with PanelServer(key=TEST_KEY, balance="1000", idempotency_field="request_id") as panel:
        config, sheet = setup(tmp_path, panel, rows_of(2), idempotency_field="request_id")
        queue_faults(panel, "ok", "drop", "drop", "drop", "drop")  # every try of the second row

        first = run_sheets(config).sheets[0]
        assert first.uncertain == 1
        second = run_sheets(config).sheets[0]

        result = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in result)
    assert second.ordered == 1 and len(panel.ledger.orders) == 2


def test_an_order_of_another_sheet_bounds_the_window_and_that_sheet_places_the_row(tmp_path, panel):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    config_a, sheet_a = setup(first_dir, panel, rows_of(2))
    queue_faults(panel, "ok", "html")
    assert run_sheets(config_a).sheets[0].still_uncertain == 1

    # Another sheet on the same panel and journal places orders after it, one of them unclear:
    # its pass settles both sheets' unclear adds.
    queue_faults(panel, "ok", "drop")
    other = [{"service": 2, "link": f"https://instagram.com/p/other-{i}", "quantity": 100} for i in range(3)]
    sheet_b = build_order_workbook(second_dir / "orders.xlsx", other)
    config_b = load_config(_config_file(second_dir, panel, sheet_b, journal=first_dir / "journal.sqlite"))
    assert run_sheets(config_b).sheets[0].found == 1
    with Journal(config_a.journal) as journal:
        assert not journal.unresolved()

    again = run_sheets(config_a).sheets[0]
    result = assert_once_and_right(panel, sheet_a)
    assert all(row["order_id"] for row in result)
    assert again.ordered == 1
    assert len(panel.ledger.orders) == 5


def _config_file(folder: Path, panel: PanelServer, sheet: Path, journal: Path) -> Path:
    data = {
        "panels": {
            "main": {"url": panel.url, "key": "${TEST_PANEL_KEY}", "concurrency": 1, "probe_grace": 0}
        },
        "sheet": {"source": str(sheet), "worksheet": "Orders"},
        "journal": str(journal),
    }
    path = folder / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_uncertain_lists_what_is_left_with_its_candidates(tmp_path, panel):
    from click.testing import CliRunner

    from sheetorders.cli import cli

    config, sheet = setup(tmp_path, panel, rows_of(4))
    queue_faults(panel, "ok", "drop", "drop")
    run_sheets(config)

    listed = CliRunner().invoke(cli, ["uncertain", "-c", str(tmp_path / "sheetorders.yaml"), "--json"])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.output)
    made = sorted(
        o.id for o in panel.ledger.orders.values() if o.link in {r["link"] for r in read_sheet(sheet)[1:3]}
    )
    assert [entry["row"] for entry in found["uncertain"]] == [3, 4]
    assert all(made[0] in entry["found"] and made[1] in entry["found"] for entry in found["uncertain"])
    assert found["search_off"] == {}
    assert TEST_KEY not in listed.output


def test_an_add_a_killed_process_left_sending_is_found_and_is_no_new_problem(tmp_path, panel):
    from sheetorders.panel import PanelClient

    config, sheet = setup(tmp_path, panel, rows_of(3))
    queue_faults(panel, "ok", "ok", "ok")
    run_sheets(config)
    # A process wrote its ref into the journal, sent the add, and was killed before the answer.
    link = "https://instagram.com/p/settle-killed"
    set_cells(sheet, {(5, "service"): 2, (5, "link"): link, (5, "quantity"): 100, (5, "ref"): "so-dead-0001"})
    with Journal(config.journal) as journal:
        journal.begin_add(
            ref="so-dead-0001",
            sheet=_sheet_key(journal),
            fingerprint="x",
            panel="main",
            service="2",
            link=link,
            row_number=5,
            estimated_cost="0.24",
        )
    with PanelClient(panel.url, TEST_KEY) as client:
        made = client.add(2, {"link": link, "quantity": 100})

    report = run_sheets(config).sheets[0]

    row = read_sheet(sheet)[3]
    assert str(row["order_id"]) == made
    assert (report.found, report.uncertain, report.exit_code) == (1, 0, 0)
    assert_once_and_right(panel, sheet)


def _sheet_key(journal: Journal) -> str:
    """The key the journal files the test's one sheet under (from its first entry)."""
    (key,) = {entry.sheet for entry in journal.probe_records("main")}
    return key


def test_the_last_adds_leave_one_at_a_time_so_an_unclear_one_gets_an_upper_bound(tmp_path, panel):
    panel.faults.latency = 0.05
    config, sheet = setup(tmp_path, panel, rows_of(8))
    config.panels["main"] = dataclasses.replace(config.panels["main"], concurrency=4)
    queue_faults(panel, "ok", "ok", "ok", "ok", "html")  # the first of the last four

    report = run_sheets(config).sheets[0]

    assert (report.proven_absent, report.still_uncertain) == (1, 0)
    result = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in result)


def test_rows_placed_again_leave_one_at_a_time_so_each_bounds_the_one_before(tmp_path, panel):
    panel.faults.latency = 0.05
    config, sheet = setup(tmp_path, panel, rows_of(6, [100, 200, 250, 300, 500, 1000]))
    config.panels["main"] = dataclasses.replace(config.panels["main"], concurrency=2)
    # Two adds make nothing; placed again, the first of them makes nothing again: the second,
    # placed after its answer, proves it, and it is placed a third time in the same pass.
    queue_faults(panel, "ok", "html", "html", "ok", "ok", "ok", "html", "ok")

    report = run_sheets(config).sheets[0]

    assert (report.proven_absent, report.still_uncertain) == (3, 0)
    result = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in result)
    assert panel.ledger.calls["add"] == 9


def _begin(journal: Journal, ref: str, link: str) -> None:
    journal.begin_add(
        ref=ref,
        sheet="s",
        fingerprint=ref,
        panel="p",
        service="1",
        link=link,
        row_number=2,
        estimated_cost="1",
    )


def test_an_add_a_killed_process_left_lost_its_answer_by_the_next_session(tmp_path):
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.begin_session()
        _begin(journal, "so-a", "l")
    # The process dies; the next one begins, places an order, and then finds the first unanswered.
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.begin_session()
        _begin(journal, "so-b", "m")
        journal.finish_add("so-b", EntryState.ACCEPTED, order_id="500")
        journal.mark_interrupted("so-a")
        records = {record.ref: record for record in journal.probe_records("p")}
    unanswered, later = records["so-a"], records["so-b"]
    assert unanswered.lingers
    assert unanswered.answered_tick is not None and later.sent_tick is not None
    assert unanswered.answered_tick < later.sent_tick  # so the later order bounds its window


def test_an_add_the_panel_makes_after_the_connection_is_lost_is_never_proven_absent(tmp_path, panel):
    """The panel goes on working on a request whose connection it lost, and makes the order
    after the next ones: only an order sent `probe_grace` later may bound it from above."""
    panel.faults.late_delay = 0.5
    config, sheet = setup(tmp_path, panel, rows_of(6), probe_grace=30)
    queue_faults(panel, "ok", "ok", "late")

    first = run_sheets(config).sheets[0]
    assert first.proven_absent == 0
    assert_once_and_right(panel, sheet)
    time.sleep(0.8)  # the panel has made the order by now
    second = run_sheets(config).sheets[0]

    result = assert_once_and_right(panel, sheet)
    assert all(row["order_id"] for row in result)
    assert (first.found + second.found, len(panel.ledger.orders)) == (1, 6)


def test_a_proof_the_panel_contradicts_turns_the_search_off(tmp_path, panel):
    """Proven never made, the row is sent again, and the panel answers that an order for its
    link is active: it did make it. The row goes back to Uncertain and the search is turned off."""
    panel.faults.late_delay = 0.3
    config, sheet = setup(tmp_path, panel, rows_of(6))  # no grace: the proof is wrong
    queue_faults(panel, "ok", "ok", "late")
    panel.faults.latency = 0.2  # so that the late order is made before the row is sent again

    report = run_sheets(config).sheets[0]

    result = read_sheet(sheet)
    assert result[2]["status"] == "Uncertain" and not result[2]["order_id"]
    assert any("turned off" in notice for notice in report.notices)
    with Journal(config.journal) as journal:
        assert "proved never made" in (journal.probe_off("main") or "")
    assert len(orders_by_link(panel)[result[2]["link"]]) == 1


def test_a_keyless_add_is_not_sent_again_under_a_key_configured_later(tmp_path):
    with PanelServer(key=TEST_KEY, balance="1000", idempotency_field="request_id") as panel:
        config, sheet = setup(tmp_path, panel, rows_of(3), probe=False)
        queue_faults(panel, "ok", "drop")
        assert run_sheets(config).sheets[0].uncertain == 1
        # The key is configured only now: the unclear add carried none, so sending it "again
        # under its key" would make a second order.
        panel.advance(10**6)  # its order is completed: the panel would take the link again
        config.panels["main"] = dataclasses.replace(config.panels["main"], idempotency_field="request_id")
        again = run_sheets(config).sheets[0]

        assert_once_and_right(panel, sheet)
        assert again.still_uncertain == 1


def test_a_journal_that_fails_while_settling_after_placing_still_writes_back_the_orders(
    tmp_path, panel, monkeypatch
):
    from sheetorders.errors import JournalError

    def broken(self: Journal, notes: Mapping[str, str]) -> None:
        if notes:
            raise JournalError("cannot record in the journal (disk I/O error)")

    monkeypatch.setattr(Journal, "set_probe_notes", broken)
    config, sheet = setup(tmp_path, panel, rows_of(4))
    queue_faults(panel, "ok", "ok", "ok", "html")  # the last add's window stays open: a note

    report = run_sheets(config).sheets[0]

    assert isinstance(report.failure, JournalError)
    assert report.ordered == 3
    result = read_sheet(sheet)
    assert [bool(row["order_id"]) for row in result] == [True, True, True, False]


def test_pacing_waits_out_the_panel_s_own_probe_grace(tmp_path, panel, monkeypatch):
    """An unclear add that lingers keeps its price waiting `probe_grace` seconds: the panel's
    setting, not the default minute."""
    from sheetorders import execute, pacing

    graces: list[float] = []

    def spy(*args: Any, grace: float = pacing.GRACE, **kwargs: Any) -> Any:
        graces.append(grace)
        return pacing.paced(*args, grace=grace, **kwargs)

    monkeypatch.setattr(execute, "paced", spy)
    config, _sheet = setup(tmp_path, panel, rows_of(2), probe_grace=7)

    run_sheets(config)

    assert graces == [7.0]


def test_an_answer_naming_the_order_of_another_row_leaves_the_row_uncertain(tmp_path, panel):
    config, sheet = setup(tmp_path, panel, rows_of(1))
    run_sheets(config)
    first = read_sheet(sheet)[0]
    set_cells(sheet, {(3, "service"): 2, (3, "link"): "https://instagram.com/p/second", (3, "quantity"): 100})
    # A panel that answers a request with an order it has (a repeated link, a replayed answer).
    panel.faults.queue_reply({"order": int(first["order_id"])}, actions=["add"])

    run_sheets(config)

    rows = read_sheet(sheet)
    assert rows[0]["order_id"] == first["order_id"] and rows[0]["ref"] == first["ref"]
    assert rows[1]["order_id"] is None and rows[1]["status"] == "Uncertain"
    with Journal(config.journal) as journal:
        entry = journal.get(rows[1]["ref"])
    assert entry.state == EntryState.AMBIGUOUS
    assert f"the panel answered with order {first['order_id']}, which is the order of row 2" in entry.error
