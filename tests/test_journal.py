"""The SQLite journal on disk: what it records, and that it survives the process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest

from sheetorders import journal as j
from sheetorders.errors import JournalError
from sheetorders.journal import Journal
from sheetorders.testing.workbooks import TEST_KEY


def begin(journal: Journal, ref: str = "so-1", **overrides) -> None:
    fields = {
        "ref": ref,
        "sheet": "orders.xlsx#Orders",
        "fingerprint": "abc",
        "panel": "main",
        "service": "2",
        "link": "https://x.com/a",
        "row_number": 2,
        "estimated_cost": "0.24",
        **overrides,
    }
    journal.begin_add(**fields)


def test_an_add_is_recorded_before_sending_and_its_answer_after(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        begin(journal)
        assert journal.get("so-1").state == j.SENDING
        journal.finish_add("so-1", j.ACCEPTED, order_id="10001")
        row = journal.get("so-1")
        assert (row.state, row.order_id, row.written) == (j.ACCEPTED, "10001", False)
        journal.mark_written(["so-1"])
        assert journal.get("so-1").written
        attempts = journal.attempts("so-1")
        assert len(attempts) == 1 and attempts[0]["outcome"] == j.ACCEPTED and attempts[0]["finished_at"]


def test_a_second_attempt_keeps_the_history(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        begin(journal)
        journal.finish_add("so-1", j.AMBIGUOUS, error="read timeout")
        journal.release("so-1")
        begin(journal)
        journal.finish_add("so-1", j.ACCEPTED, order_id="7")
        outcomes = [a["outcome"] for a in journal.attempts("so-1")]
        assert outcomes == [j.AMBIGUOUS, j.ACCEPTED]
        assert journal.get("so-1").order_id == "7"


def test_what_a_killed_process_committed_is_there_for_the_next(tmp_path):
    path = tmp_path / "j.sqlite"
    script = (
        "import os\n"
        "from sheetorders.journal import Journal\n"
        f"journal = Journal({str(path)!r})\n"
        "journal.begin_add(ref='so-k', sheet='s', fingerprint='f', panel='p', service='1', link=None,"
        " row_number=2, estimated_cost='1')\n"
        "journal.finish_add('so-k', 'accepted', order_id='42')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=False)
    with Journal(path) as journal:
        assert journal.get("so-k").order_id == "42"


def test_rows_are_kept_per_sheet(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        begin(journal, "so-a", sheet="a")
        begin(journal, "so-b", sheet="b")
        assert set(journal.rows("a")) == {"so-a"}


def test_requests_are_journaled_like_orders(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        request_id = journal.begin_request(
            sheet="s", ref="so-1", panel="main", order_id="10", action="refill"
        )
        assert journal.requests("s")[0].state == j.SENDING
        journal.finish_request(request_id, j.ACCEPTED, result="501")
        journal.mark_requests_written([request_id])
        assert journal.requests("s") == []
        assert journal.requests("s", unwritten_only=False)[0].result == "501"


def test_a_file_that_is_not_a_journal_is_refused_clearly(tmp_path):
    path = tmp_path / "j.sqlite"
    path.write_text("this is not a database " * 100)
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal(path)


def test_a_journal_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(JournalError, match="newer sheetorders"):
        Journal(path)


def test_no_api_key_is_ever_stored(tmp_path, sheet_setup, panel):
    from sheetorders.app import run_sheets

    config, _ = sheet_setup([{"service": 2, "link": "https://x.com/k", "quantity": 100}])
    run_sheets(config)
    raw = b"".join(p.read_bytes() for p in config.journal.parent.glob("journal.sqlite*"))
    assert raw, "the journal was not written"
    assert TEST_KEY.encode() not in raw


def test_threads_writing_at_once_share_commits_and_lose_nothing(tmp_path):
    import threading

    with Journal(tmp_path / "j.sqlite") as journal:
        commits = 0
        store = journal._store
        original = store._commit

        def counting(batch):
            nonlocal commits
            commits += 1
            original(batch)

        store._commit = counting

        def place(worker: int) -> None:
            for n in range(25):
                ref = f"so-{worker}-{n}"
                begin(journal, ref)
                journal.finish_add(ref, j.ACCEPTED, order_id=f"{worker}{n}")

        threads = [threading.Thread(target=place, args=(w,)) for w in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rows = journal.rows("orders.xlsx#Orders")
        assert len(rows) == 400
        assert all(row.state == j.ACCEPTED and row.order_id for row in rows.values())
        assert commits < 800  # some commits were shared


def test_a_failing_write_does_not_undo_the_others_of_its_commit(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        begin(journal, "so-ok")
        with pytest.raises(JournalError, match="cannot record"):
            journal._write(lambda db: db.execute("INSERT INTO no_such_table VALUES (1)"))
        journal.finish_add("so-ok", j.ACCEPTED, order_id="1")
        assert journal.get("so-ok").order_id == "1"


def test_the_prices_of_unresolved_adds_say_whether_they_linger(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        begin(journal, "so-1", estimated_cost="0.24")  # left sending: its answer is unknown
        begin(journal, "so-2", estimated_cost="0.5", link="https://x.com/b")
        journal.finish_add("so-2", j.AMBIGUOUS, error="502 page")  # the panel had answered
        begin(journal, "so-3", estimated_cost="0.7", link="https://x.com/c")
        journal.finish_add("so-3", j.ACCEPTED, order_id="9")
        begin(journal, "so-4", estimated_cost="0.9", panel="other", link="https://x.com/d")

        assert sorted(journal.unresolved_prices("main")) == [(Decimal("0.24"), True), (Decimal("0.5"), False)]


def test_refs_do_not_repeat_over_the_rows_of_a_large_journal(tmp_path):
    # A repeated ref names two rows: the second was refused as "sent before", which stopped a
    # 50,000-row pass (32 random bits repeat once in 200,000 refs almost surely).
    with Journal(tmp_path / "j.sqlite") as journal:
        refs = [journal.new_ref() for _ in range(200_000)]
        assert all(journal.issued(ref) for ref in refs[:10])
    assert len(set(refs)) == len(refs)
    others = [j.new_ref() for _ in range(200_000)]
    assert len(set(others)) == len(others)
