"""What the journal says beyond placing each order once: what was spent and ordered (for
budgets and the history), approvals, the file's health, and sheets left with nothing to do."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sheetorders.models import is_final_refill_status
from sheetorders.states import EntryState
from sheetorders.store import Store, utc_now

ACCEPTED, SENDING, AMBIGUOUS = EntryState.ACCEPTED, EntryState.SENDING, EntryState.AMBIGUOUS
# States of an `add` that count as spent: it may have cost money.
_SPENDING = (SENDING, ACCEPTED, AMBIGUOUS)
_UNRESOLVED = tuple(state for state in EntryState if state.unresolved)
COMPACTED_AT = "compacted_at"  # meta key: when the journal was last compacted (UTC, as stored)
KEEP_DAYS = 30  # finished attempts and requests younger than this are never compacted
COMPACT_EVERY = timedelta(days=1)
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class HistoryEntry:
    placed_at: str
    sheet: str
    ref: str
    panel: str
    service: str
    service_name: str
    link: str
    quantity: int | None
    order_id: str
    state: str
    status: str
    estimate: str
    charge: str
    currency: str


@dataclass(frozen=True)
class JournalCheck:
    integrity: list[str]  # ["ok"] when SQLite finds the file sound
    states: dict[str, int]  # entries by state
    unresolved: list[str]  # orders that may or may not exist: a person (or the next pass) settles them
    unwritten: int  # placed orders whose results the sheet does not show yet (the next pass writes them)

    @property
    def sound(self) -> bool:
        return self.integrity == ["ok"]


@dataclass(frozen=True)
class Compaction:
    """What one compaction removed: finished `add` attempts and refill/cancel requests last
    changed before `before`, whose outcome the sheet shows and nothing waits for."""

    before: str
    attempts: int
    requests: int
    sessions: int = 0  # moments passes began, before `before` and before any add left unanswered

    def __str__(self) -> str:
        return (
            f"compacted the journal: {self.attempts} finished attempt(s) and {self.requests} finished "
            f"request(s) from before {self.before} removed (every order's record is kept)"
        )


class Ledger:
    """The journal's orders as accounts: spend, history, integrity, idle sheets."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def check(self) -> JournalCheck:
        """The file's integrity, and what its entries say needs a person."""
        states = {
            row["state"]: int(row["count"])
            for row in self._store.query("SELECT state, COUNT(*) AS count FROM rows GROUP BY state")
        }
        unresolved = self._store.query(
            "SELECT ref, sheet, panel, service, link, state FROM rows WHERE state IN (?, ?) ORDER BY ref",
            (SENDING, AMBIGUOUS),
        )
        unwritten = self._store.query(
            "SELECT COUNT(*) AS count FROM rows WHERE state = ? AND written = 0", (ACCEPTED,)
        )[0]["count"]
        return JournalCheck(
            integrity=self._store.integrity(),
            states=states,
            unresolved=[
                f"{row['ref']} ({row['state']}): panel {row['panel']}, service {row['service']}, "
                f"{row['link'] or 'no link'}, sheet {row['sheet']}"
                for row in unresolved
            ],
            unwritten=int(unwritten),
        )

    def idle_stamp(self, sheet: str) -> str | None:
        """The content stamp of the sheet after a pass that left it with nothing to do."""
        return self._store.get_meta(f"idle:{sheet}")

    def set_idle_stamp(self, sheet: str, stamp: str | None) -> None:
        if stamp != self.idle_stamp(sheet):
            self._store.set_meta(f"idle:{sheet}", stamp)

    def history(
        self, since: str, until: str | None = None, *, sheet: str | None = None
    ) -> list[HistoryEntry]:
        """Every order sent since `since` (and before `until`), oldest first: placed, uncertain or
        being sent (an order that may exist is accounted for); of one sheet (its journal key), or all."""
        query = (
            "SELECT * FROM rows WHERE state IN (?, ?, ?) AND COALESCE(sent_at, created_at) >= ?"
            + (" AND COALESCE(sent_at, created_at) < ?" if until else "")
            + (" AND sheet = ?" if sheet is not None else "")
            + " ORDER BY COALESCE(sent_at, created_at), ref"
        )
        params = [*_SPENDING, since, *([until] if until else []), *([sheet] if sheet is not None else [])]
        found = self._store.query(query, params)
        return [
            HistoryEntry(
                placed_at=row["sent_at"] or row["created_at"],
                sheet=row["sheet"],
                ref=row["ref"],
                panel=row["panel"],
                service=row["service"],
                service_name=row["service_name"] or "",
                link=row["link"] or "",
                quantity=int(row["quantity"]) if row["quantity"] is not None else None,
                order_id=row["order_id"] or "",
                state=row["state"],
                status=row["order_status"] or ("Uncertain" if row["state"] != ACCEPTED else ""),
                estimate=row["estimated_cost"] or "",
                charge=row["charge"] or "",
                currency=row["currency"] or "",
            )
            for row in found
        ]

    def spent(self, since: str, *, panel: str | None = None, sheet: str | None = None) -> Decimal:
        """What the orders sent since `since` (UTC, as stored) may have cost: the panel's charge
        once known, else the estimate; of one panel or sheet, or all."""
        query = (
            "SELECT COALESCE(charge, estimated_cost) AS cost FROM rows "
            f"WHERE state IN ({', '.join('?' * len(_SPENDING))}) AND COALESCE(sent_at, created_at) >= ?"
        )
        params: list[Any] = [*_SPENDING, since]
        for column, value in (("panel", panel), ("sheet", sheet)):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        total = Decimal(0)
        for row in self._store.query(query, params):
            try:
                total += Decimal(row["cost"] or 0)
            except ArithmeticError:
                continue
        return total

    def compact(self, older_than: str) -> Compaction:
        """Remove what only tells the past: `add` attempts finished before `older_than` (UTC, as
        stored) of orders whose record is settled and shown in the sheet, and refill/cancel
        requests likewise finished, shown, and not an open refill. Never an order's record (the
        `rows` table), nor anything unresolved or not yet written."""

        def work(db: sqlite3.Connection) -> Compaction:
            attempts = db.execute(
                f"""DELETE FROM attempts WHERE finished_at IS NOT NULL AND finished_at < ?
                    AND ref IN (SELECT ref FROM rows WHERE written = 1
                                AND state NOT IN ({", ".join("?" * len(_UNRESOLVED))}))""",
                (older_than, *_UNRESOLVED),
            ).rowcount
            ids = [(row["id"],) for row in _finished_requests(db, older_than)]
            db.executemany("DELETE FROM requests WHERE id = ?", ids)
            # A session's moment bounds the lost answer of an add left `sending` before it (the
            # first session after that add): every session after the oldest such add stays.
            sessions = db.execute(
                """DELETE FROM sessions WHERE clock < ? AND tick < COALESCE(
                       (SELECT MIN(CAST(sent_tick AS INTEGER)) FROM rows WHERE state = ?), tick + 1)""",
                (_parsed(older_than).timestamp(), SENDING),
            ).rowcount
            return Compaction(older_than, attempts, len(ids), sessions)

        return self._store.write(work)

    def vacuum(self) -> tuple[int, int] | None:
        """Shrink the file by the space compaction freed: its bytes before and after (None: none free)."""
        return self._store.vacuum()

    def last_compacted(self) -> str | None:
        return self._store.get_meta(COMPACTED_AT)

    def compact_if_due(
        self, now: datetime, keep: timedelta = timedelta(days=KEEP_DAYS), *, force: bool = False
    ) -> Compaction | None:
        """`compact` what is older than `keep`, unless the journal was compacted less than a day
        before `now` (and not `force`); remembers when (in the meta table). None: not due."""
        last = self.last_compacted()
        if not force and last is not None and _parsed(last) > now - COMPACT_EVERY:
            return None
        done = self.compact(_stamped(now - keep))
        self._store.set_meta(COMPACTED_AT, _stamped(now))
        return done

    def due(self, what: str, now: datetime, every: timedelta) -> bool:
        """Whether `what` is due: never before, or last due `every` or longer before `now` (or
        after it: a clock set back); if so, `now` is remembered as its last time (meta table)."""
        key, last = f"due:{what}", self._store.get_meta(f"due:{what}")
        if last is not None and now - every < _parsed(last) <= now:
            return False
        self._store.set_meta(key, _stamped(now))
        return True


def _finished_requests(db: sqlite3.Connection, older_than: str) -> list[sqlite3.Row]:
    """Requests last changed before `older_than`, shown in the sheet, resolved, and not a refill
    whose status may still change (those are asked about every pass)."""
    found = db.execute(
        f"""SELECT id, action, state, refill_status FROM requests
            WHERE written = 1 AND updated_at < ? AND state NOT IN ({", ".join("?" * len(_UNRESOLVED))})""",
        (older_than, *_UNRESOLVED),
    ).fetchall()
    return [
        row
        for row in found
        if not (
            row["action"] == "refill"
            and row["state"] == ACCEPTED
            and not is_final_refill_status(row["refill_status"])
        )
    ]


def _stamped(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime(_TIME)


def _parsed(text: str) -> datetime:
    try:
        return datetime.strptime(text, _TIME).replace(tzinfo=timezone.utc)
    except ValueError:  # not a time this journal wrote: as if never compacted
        return datetime.min.replace(tzinfo=timezone.utc)


class Approvals:
    """Which rows a pass saw approved, and for what content (their fingerprint)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def seen(self, sheet: str) -> dict[str, str]:
        """ref -> fingerprint of what the row asked for when a pass first saw it approved ('' once
        an edit voided it)."""
        found = self._store.query("SELECT ref, fingerprint FROM approvals WHERE sheet = ?", (sheet,))
        return {row["ref"]: row["fingerprint"] for row in found}

    def record(self, sheet: str, approved: Mapping[str, str]) -> None:
        now = utc_now()

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO approvals (ref, sheet, fingerprint, approved_at) VALUES (?, ?, ?, ?)",
                [(ref, sheet, print_, now) for ref, print_ in approved.items()],
            )

        self._store.write(work)

    def forget(self, refs: Iterable[str]) -> None:
        """The approvals no longer hold (the rows were edited); the refs stay this journal's."""
        refs = list(refs)

        def work(db: sqlite3.Connection) -> None:
            db.executemany("UPDATE approvals SET fingerprint = '' WHERE ref = ?", [(ref,) for ref in refs])

        self._store.write(work)
