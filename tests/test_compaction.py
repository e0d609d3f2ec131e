"""Journal compaction (finished attempts and requests that only tell the past) and `doctor`:
SQLite's integrity check, the sheets against the journal, and what compaction did."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from click.testing import CliRunner

from sheetorders.app import run_sheets
from sheetorders.cli import cli
from sheetorders.config import load_config
from sheetorders.errors import JournalError
from sheetorders.journal import Journal
from sheetorders.ledger import COMPACTED_AT, Ledger
from sheetorders.pipeline import PassOptions
from sheetorders.states import EntryState
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, set_cells, write_config
from sheetorders.workbook import build_order_workbook

ENV = {"TEST_PANEL_KEY": TEST_KEY}
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
OLD = "2026-01-01T00:00:00Z"  # five months before NOW


def add(journal: Journal, ref: str, state: EntryState, *, written: bool = True) -> None:
    journal.begin_add(
        ref=ref,
        sheet="sheet:a",
        fingerprint="f",
        panel="main",
        service="2",
        link=f"https://instagram.com/{ref}",
        row_number=2,
        estimated_cost="0.10",
    )
    if state != EntryState.SENDING:
        journal.finish_add(ref, state, order_id="1001" if state == EntryState.ACCEPTED else None)
    if written:
        journal.mark_written([ref])


def request(journal: Journal, action: str, state: EntryState, refill_status: str | None = None) -> int:
    number = journal.begin_request(sheet="sheet:a", ref=None, panel="main", order_id="1001", action=action)
    if state != EntryState.SENDING:
        journal.finish_request(number, state, result="77" if state == EntryState.ACCEPTED else None)
    if refill_status:
        journal.set_refill_statuses({"77": refill_status}, "sheet:a")
    journal.mark_requests_written([number])
    return number


def backdate(path: Path, when: str = OLD) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE attempts SET started_at = ?", (when,))
        db.execute("UPDATE attempts SET finished_at = ? WHERE finished_at IS NOT NULL", (when,))
        db.execute("UPDATE requests SET created_at = ?, updated_at = ?", (when, when))


def attempt_refs(journal: Journal, refs: list[str]) -> set[str]:
    return {ref for ref in refs if journal.attempts(ref)}


def test_compaction_removes_only_finished_shown_entries_and_never_an_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        add(journal, "placed", EntryState.ACCEPTED)
        add(journal, "refused", EntryState.REJECTED)
        add(journal, "unwritten", EntryState.ACCEPTED, written=False)
        add(journal, "maybe", EntryState.AMBIGUOUS)
        add(journal, "in-flight", EntryState.SENDING)
        cancel = request(journal, "cancel", EntryState.REJECTED)
        open_refill = request(journal, "refill", EntryState.ACCEPTED, refill_status="In progress")
        unclear = request(journal, "cancel", EntryState.AMBIGUOUS)
    backdate(path)
    with Journal(path) as journal:
        add(journal, "recent", EntryState.ACCEPTED)
        rows_before = journal.ledger.check().states

        done = journal.ledger.compact("2026-05-01T00:00:00Z")

        assert (done.attempts, done.requests) == (2, 1)
        refs = ["placed", "refused", "unwritten", "maybe", "in-flight", "recent"]
        assert attempt_refs(journal, refs) == {"unwritten", "maybe", "in-flight", "recent"}
        assert journal.ledger.check().states == rows_before  # every order's record is kept
        assert journal.get("placed") is not None and journal.get("placed").order_id == "1001"
        left = {r.id for r in journal.requests("sheet:a", unwritten_only=False)}
        assert left == {open_refill, unclear} and cancel not in left
        assert journal.open_refills("sheet:a")  # still asked about


def session_ticks(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [tick for (tick,) in db.execute("SELECT tick FROM sessions ORDER BY tick")]


def test_compaction_drops_old_session_moments_but_the_one_an_unanswered_add_needs(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.begin_session()
        add(journal, "placed", EntryState.ACCEPTED)
        journal.begin_session()
        add(journal, "in-flight", EntryState.SENDING)  # its process was killed waiting
        journal.begin_session()  # the next pass: when the lost answer was lost, at the latest
        journal.begin_session()
    _, _, needed, last = session_ticks(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE sessions SET clock = ?", (datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp(),))
    with Journal(path) as journal:
        done = journal.ledger.compact("2026-05-01T00:00:00Z")
        assert done.sessions == 2
        assert session_ticks(path) == [needed, last]
        journal.mark_interrupted("in-flight")
    with sqlite3.connect(path) as db:
        (answered,) = db.execute("SELECT answered_tick FROM rows WHERE ref = 'in-flight'").fetchone()
    assert int(answered) == needed


def test_without_an_unanswered_add_only_old_session_moments_go(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.begin_session()
        journal.begin_session()
        add(journal, "placed", EntryState.ACCEPTED)
    old, recent = session_ticks(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE sessions SET clock = ? WHERE tick = ?",
            (datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp(), old),
        )
    with Journal(path) as journal:
        assert journal.ledger.compact("2026-05-01T00:00:00Z").sessions == 1
    assert session_ticks(path) == [recent]


def test_a_finished_refill_goes_once_it_is_old(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        request(journal, "refill", EntryState.ACCEPTED, refill_status="Completed")
    backdate(path, "2026-05-20T00:00:00Z")
    with Journal(path) as journal:
        assert journal.ledger.compact("2026-05-01T00:00:00Z").requests == 0  # not old enough
        assert journal.ledger.compact("2026-05-21T00:00:00Z").requests == 1


def test_compaction_runs_at_most_once_a_day(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        add(journal, "first", EntryState.ACCEPTED)
        backdate(path)
        assert journal.ledger.compact_if_due(NOW).attempts == 1
        assert journal.ledger.last_compacted() == "2026-06-01T12:00:00Z"
        add(journal, "second", EntryState.ACCEPTED)
        backdate(path)
        assert journal.ledger.compact_if_due(NOW + timedelta(hours=23)) is None
        assert journal.attempts("second")
        assert journal.ledger.compact_if_due(NOW + timedelta(hours=25)).attempts == 1
        assert not journal.attempts("second")


def placed_sheet(tmp_path: Path, panel: PanelServer, count: int = 3) -> Path:
    rows = [{"service": 2, "link": f"https://instagram.com/c{i}", "quantity": 100} for i in range(count)]
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows)
    return write_config(tmp_path, panel.url, sheet)


def test_a_pass_compacts_once_a_day_and_later_passes_order_nothing_again(
    tmp_path: Path, panel: PanelServer
) -> None:
    config = load_config(placed_sheet(tmp_path, panel))
    run_sheets(config, PassOptions(clock=lambda: NOW))
    with Journal(config.journal) as journal:
        assert journal.ledger.last_compacted() == "2026-06-01T12:00:00Z"
        refs = [entry.ref for entry in journal.ledger.history("")]
    backdate(config.journal)
    panel.reset_calls()

    report = run_sheets(config, PassOptions(clock=lambda: NOW + timedelta(hours=2)))
    with Journal(config.journal) as journal:
        assert all(journal.attempts(ref) for ref in refs)  # compacted less than a day ago

    report = run_sheets(config, PassOptions(clock=lambda: NOW + timedelta(days=1, hours=1)))
    assert any("3 finished attempt(s)" in notice for notice in report.sheets[0].notices)
    with Journal(config.journal) as journal:
        assert not any(journal.attempts(ref) for ref in refs)
        assert len(journal.ledger.history("")) == 3
    run_sheets(config)
    assert panel.ledger.calls.get("add", 0) == 0  # nothing placed twice
    assert len({row["order_id"] for row in read_sheet(Path(config.sheets[0].source))}) == 3


def doctor(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["doctor", "-c", str(path), *args], env=ENV)
    return result.exit_code, result.output


def test_doctor_finds_the_journal_sound_and_the_sheet_in_agreement(
    tmp_path: Path, panel: PanelServer
) -> None:
    path = placed_sheet(tmp_path, panel)
    run_sheets(load_config(path))
    backdate(load_config(path).journal)

    code, output = doctor(path, "--json")

    assert code == 0, output
    found = json.loads(output)
    assert found["sound"] is True and found["integrity"] == ["ok"]
    assert found["sheets"][0]["disagreements"] == [] and found["sheets"][0]["error"] is None
    assert found["compacted"]["attempts"] == 3  # a doctor compacts whenever it is run
    with Journal(load_config(path).journal) as journal:
        assert journal.ledger.last_compacted() is not None
        assert journal._store.get_meta(COMPACTED_AT) == journal.ledger.last_compacted()


def test_doctor_names_rows_that_disagree_with_the_journal(tmp_path: Path, panel: PanelServer) -> None:
    path = placed_sheet(tmp_path, panel, count=3)
    config = load_config(path)
    run_sheets(config)
    sheet = Path(config.sheets[0].source)
    first, second, _third = read_sheet(sheet)
    set_cells(sheet, {(first["_row"], "order_id"): "999999", (second["_row"], "ref"): None})

    code, output = doctor(path)

    assert code == 1, output
    assert "DISAGREES" in output
    assert f"row {first['_row']} (ref {first['ref']}) shows '999999'" in output
    assert f"order {second['order_id']} (ref {second['ref']}" in output and "is in no row" in output
    assert "journal" in output and "sound" in output


def test_doctor_without_the_sheets_reads_none(tmp_path: Path, panel: PanelServer) -> None:
    path = placed_sheet(tmp_path, panel, count=1)
    config = load_config(path)
    run_sheets(config)
    Path(config.sheets[0].source).unlink()

    code, output = doctor(path, "--json", "--no-sheets")
    assert code == 0 and json.loads(output)["sheets"] == []
    code, output = doctor(path, "--json")
    assert code == 0 and "not found" in json.loads(output)["sheets"][0]["error"]


def test_the_passes_of_an_idle_sheet_still_compact_the_journal_once_a_day(
    tmp_path: Path, panel: PanelServer
) -> None:
    invalid = {"service": 2, "link": "not a link", "quantity": 500}
    sheet = build_order_workbook(tmp_path / "orders.xlsx", [invalid])
    config = load_config(write_config(tmp_path, panel.url, sheet))
    run_sheets(config, PassOptions(clock=lambda: NOW))  # an Invalid row: a new problem
    run_sheets(config, PassOptions(clock=lambda: NOW))  # the same row, nothing new: ends idle
    with Journal(config.journal) as journal:
        first = journal.ledger.last_compacted()
    later = NOW + timedelta(days=40)

    report = run_sheets(config, PassOptions(clock=lambda: later))

    assert report.sheets[0].unchanged  # not read
    with Journal(config.journal) as journal:
        assert first is not None and first.startswith("2026-06-01")
        assert (journal.ledger.last_compacted() or "").startswith("2026-07-11")


def test_doctor_gives_the_space_compaction_freed_back_to_the_file_system(
    tmp_path: Path, panel: PanelServer
) -> None:
    path = placed_sheet(tmp_path, panel)
    journal_path = load_config(path).journal
    with Journal(journal_path) as journal:
        for number in range(3000):
            add(journal, f"old-{number}", EntryState.REJECTED)
    backdate(journal_path)
    grown = journal_path.stat().st_size

    code, output = doctor(path, "--json", "--no-sheets")

    assert code == 0, output
    found = json.loads(output)
    assert found["compacted"]["attempts"] == 3000
    assert found["file_bytes"]["before"] >= grown
    assert found["file_bytes"]["after"] < found["file_bytes"]["before"] * 0.8
    assert journal_path.stat().st_size == found["file_bytes"]["after"]
    with Journal(journal_path) as journal:
        assert len(journal.ledger.check().states) > 0 and journal.get("old-7") is not None
    code, output = doctor(path, "--json", "--no-sheets")
    assert json.loads(output)["file_bytes"] is None  # nothing freed since


def test_a_journal_file_that_cannot_be_shrunk_now_is_a_notice_of_doctor(
    tmp_path: Path, panel: PanelServer, monkeypatch
) -> None:
    path = placed_sheet(tmp_path, panel)
    run_sheets(load_config(path))

    def busy(self: object) -> None:
        raise JournalError("journal.sqlite: cannot vacuum the journal (database is locked)")

    monkeypatch.setattr(Ledger, "vacuum", busy)
    result = CliRunner().invoke(cli, ["doctor", "-c", str(path), "--json"], env=ENV)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["file_bytes"] is None
    assert "was not shrunk" in result.stderr and "database is locked" in result.stderr
