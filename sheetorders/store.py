"""The journal's SQLite file: opened once, written durably, with threads sharing commits."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sheetorders.errors import JournalError

T = TypeVar("T")


_LAST_SECOND: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """Now, as the journal stores times (UTC, to the second). Asked several times for each
    order placed: the text is made once a second."""
    global _LAST_SECOND
    second = int(time.time())
    last = _LAST_SECOND
    if last[0] != second:
        last = _LAST_SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return last[1]


@dataclass
class _Job:
    work: Callable[[sqlite3.Connection], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Store:
    """One SQLite connection, safe to use from many threads of one process."""

    def __init__(
        self, path: Path, schema: str, version: int, added_columns: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.path = path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed "sending" or "accepted" survives a power cut, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(schema)
            self._add_columns(added_columns)
            self._check_version(version)
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{self.path}: cannot open the journal ({error})") from None
        except OSError as error:
            raise JournalError(f"{self.path}: cannot create the journal ({error.strerror})") from None
        self._lock = threading.Lock()  # the connection: one statement at a time
        self._commit_lock = threading.Lock()  # one group commit at a time
        self._queue_lock = threading.Lock()
        self._queue: list[_Job] = []
        self._ticks: list[int] | None = None  # [next, first] while a transaction runs

    def tick(self) -> int:
        """The next number of the journal's event counter, for work running inside `write`.

        The counter orders events across every process sharing the file by when they were
        committed: work that calls it before a request leaves and after its answer arrives
        gets numbers that tell which answers came before which requests."""
        if self._ticks is None:
            raise RuntimeError("tick() is only available inside Store.write")
        value = self._ticks[0]
        self._ticks[0] += 1
        return value

    def _check_version(self, version: int) -> None:
        found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
        elif int(found["value"]) > version:
            raise JournalError(
                f"{self.path}: journal written by a newer sheetorders (schema {found['value']}); upgrade"
            )

    def _add_columns(self, added: Iterable[tuple[str, str]]) -> None:
        for table, column in added:
            names = {info[1] for info in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in names:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    def close(self) -> None:
        self._db.close()

    def get_meta(self, key: str) -> str | None:
        found = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(found[0]["value"]) if found else None

    def set_meta(self, key: str, value: str | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

        self.write(work)

    def meta(self, key: str, default: Callable[[], str]) -> str:
        """A value of the meta table, set to `default()` the first time it is asked for."""
        found = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        if found:
            return str(found[0]["value"])

        def insert(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, default()))

        self.write(insert)
        return str(self.query("SELECT value FROM meta WHERE key = ?", (key,))[0]["value"])

    def vacuum(self) -> tuple[int, int] | None:
        """Give the pages earlier deletes freed back to the file system (SQLite's VACUUM, which
        rewrites the file): its size in bytes before and after; None when nothing was free."""
        try:
            with self._commit_lock, self._lock:
                if not self._db.execute("PRAGMA freelist_count").fetchone()[0]:
                    return None
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                before = self.path.stat().st_size
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return before, self.path.stat().st_size
        except sqlite3.Error as error:
            raise JournalError(f"{self.path}: cannot vacuum the journal ({error})") from error

    def integrity(self) -> list[str]:
        """SQLite's own check of the file: ["ok"] when it is sound."""
        return [str(row[0]) for row in self.query("PRAGMA integrity_check")]

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as error:
            raise JournalError(f"{self.path}: cannot read the journal ({error})") from error

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in a transaction that is on disk when this returns.

        Threads that write at the same time share one commit (one sync to disk): each queues
        its work, and whichever thread gets the commit lock commits everything queued so far.
        `work` may run twice (when another job of the batch fails, the batch runs again, each
        job in a savepoint): it must change nothing but the database.
        """
        job = _Job(work)
        with self._queue_lock:
            self._queue.append(job)
        while not job.done.is_set():
            with self._commit_lock:
                if job.done.is_set():
                    break
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if isinstance(job.error, sqlite3.Error):
            raise JournalError(f"{self.path}: cannot record in the journal ({job.error})") from job.error
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._start_ticks()
                if len(batch) == 1:
                    batch[0].result = batch[0].work(self._db)
                elif not self._run_together(batch):
                    # A job failed: start again, a savepoint each, so that it undoes no other job.
                    self._db.execute("ROLLBACK")
                    self._db.execute("BEGIN IMMEDIATE")
                    self._start_ticks()
                    self._run_apart(batch)
                self._save_ticks()
                self._db.execute("COMMIT")
        except BaseException as error:
            with self._lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            for job in batch:
                job.error = job.error or error
            if not isinstance(error, sqlite3.Error):
                raise
        finally:
            self._ticks = None
            for job in batch:
                job.done.set()

    def _run_together(self, batch: list[_Job]) -> bool:
        """Every job in the open transaction, no savepoint between them (the common case: none
        fails); False, results undefined, as soon as one raises a database error."""
        for job in batch:
            try:
                job.result = job.work(self._db)
            except sqlite3.Error:
                return False
        return True

    def _run_apart(self, batch: list[_Job]) -> None:
        """Every job in its own savepoint: a job's database error undoes that job alone."""
        for job in batch:
            self._db.execute("SAVEPOINT job")
            try:
                job.result = job.work(self._db)
            except sqlite3.Error as error:
                self._db.execute("ROLLBACK TO job")
                job.error = error
            self._db.execute("RELEASE job")

    def _start_ticks(self) -> None:
        found = self._db.execute("SELECT value FROM meta WHERE key = 'tick'").fetchone()
        first = int(found["value"]) + 1 if found else 1
        self._ticks = [first, first]

    def _save_ticks(self) -> None:
        if self._ticks is not None and self._ticks[0] != self._ticks[1]:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('tick', ?)", (str(self._ticks[0] - 1),))
