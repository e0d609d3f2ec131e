"""The SQLite journal: what was sent to a panel, before it is sent and after it is answered.

Every row the tool submits gets a `ref` (written into the sheet with the results).
Before an `add` leaves, its row is recorded as `sending`; the answer moves it to
`accepted` (with the order ID), `rejected`, `ambiguous` or `not_sent`. A process
killed at any moment leaves a journal that tells the next run exactly what may
have happened. Refill and cancel requests are journaled the same way.

No API key is ever stored here.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sheetorders.ledger import Approvals, Ledger
from sheetorders.models import is_final_order_status, is_final_refill_status
from sheetorders.states import EntryState
from sheetorders.store import Store, utc_now

SCHEMA_VERSION = 1

# The states, by their old names too.
SENDING = EntryState.SENDING
ACCEPTED = EntryState.ACCEPTED
REJECTED = EntryState.REJECTED
AMBIGUOUS = EntryState.AMBIGUOUS
NOT_SENT = EntryState.NOT_SENT
RELEASED = EntryState.RELEASED
UNRESOLVED_STATES = frozenset(state for state in EntryState if state.unresolved)
# An `add` may be sent for a ref only while nothing sent for it may have reached the panel.
_SENDABLE = (NOT_SENT, RELEASED, REJECTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    ref TEXT PRIMARY KEY,
    sheet TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    panel TEXT NOT NULL,
    service TEXT NOT NULL,
    link TEXT,
    row_number INTEGER,
    state TEXT NOT NULL,
    order_id TEXT,
    error TEXT,
    estimated_cost TEXT,
    written INTEGER NOT NULL DEFAULT 0,
    order_status TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_by_sheet ON rows (sheet, written);
CREATE INDEX IF NOT EXISTS rows_by_order ON rows (panel, order_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    ref TEXT NOT NULL,
    action TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_ref ON attempts (ref);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    sheet TEXT NOT NULL,
    ref TEXT,
    panel TEXT NOT NULL,
    order_id TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    error TEXT,
    written INTEGER NOT NULL DEFAULT 0,
    refill_status TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_sheet ON requests (sheet, written);
CREATE TABLE IF NOT EXISTS sessions (tick INTEGER PRIMARY KEY, clock REAL NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    ref TEXT PRIMARY KEY,
    sheet TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    approved_at TEXT NOT NULL
);
"""


# Columns added after the first release: journals written before get them (empty).
_MISSING_COLUMNS = (
    ("rows", "order_status"),
    ("requests", "refill_status"),
    ("rows", "sent_at"),  # when the last `add` for the row left (UTC)
    ("rows", "charge"),  # the last charge the panel reported
    ("rows", "service_name"),  # for the history: what a person needs to account for an order
    ("rows", "quantity"),
    ("rows", "currency"),
    # When the row's last `add` left and when its answer (or the lack of one) was seen, as numbers
    # of the journal's event counter (`Store.tick`) and as Unix time: what the order-ID probe
    # bounds its search with (see probe.py).
    ("rows", "sent_tick"),
    ("rows", "answered_tick"),
    ("rows", "sent_clock"),
    ("rows", "answered_clock"),
    ("rows", "lingers"),  # 1: the panel may still have been working on it when it was given up
    ("rows", "probe_note"),  # what the probe found of an unresolved add (candidate IDs, say)
    ("rows", "keyed"),  # 1: the add carried the ref as the panel's idempotency key
    ("rows", "settled_by"),  # who gave an unresolved add its order ID, or released it: "person" or "search"
)


@dataclass(frozen=True)
class OrderDetails:
    """What the history shows of an order besides what the journal needs to place it once."""

    service_name: str = ""
    quantity: int | None = None
    currency: str = ""


@dataclass(frozen=True)
class JournalMark:
    """Which journal tracks a sheet, as the sheet carries it."""

    journal: str
    path: str
    host: str

    @property
    def text(self) -> str:
        return json.dumps({"journal": self.journal, "path": self.path, "host": self.host}, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> JournalMark:
        try:
            data = json.loads(text)
            return cls(str(data["journal"]), str(data.get("path", "?")), str(data.get("host", "?")))
        except (ValueError, KeyError, TypeError):
            return cls(text, "?", "?")

    def __str__(self) -> str:
        return f"the journal {self.path} on {self.host}"


# 64 random bits: a journal that issues a million refs repeats one with a chance of 3 in 10^8.
# (32 bits repeated one within a single 50,000-row pass about one time in four; the repeat
# was refused as "sent before", which stopped the pass.)
_REF_BYTES = 8


def new_ref() -> str:
    """A random reference, unique enough to name one row forever."""
    return "so-" + secrets.token_hex(_REF_BYTES)


@dataclass(frozen=True)
class JournalRow:
    ref: str
    sheet: str
    fingerprint: str
    panel: str
    service: str
    link: str | None
    row_number: int | None
    state: EntryState
    order_id: str | None
    error: str | None
    estimated_cost: str | None
    written: bool
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ProbeRecord:
    """One add as the order-ID probe sees it (ticks: see `Store.tick`; clocks: Unix time)."""

    ref: str
    sheet: str
    state: EntryState
    order_id: str | None
    estimated_cost: str | None
    quantity: int | None
    row_number: int | None
    sent_tick: int | None
    answered_tick: int | None
    sent_clock: float | None
    answered_clock: float | None
    lingers: bool
    keyed: bool = False  # sent with the ref as the panel's idempotency key
    settled_by: str | None = None  # "person" or "search": its order ID came after its answer


@dataclass(frozen=True)
class UnresolvedAdd:
    """An add that may or may not have created an order, as a person needs it to settle it."""

    ref: str
    sheet: str
    panel: str
    service: str
    link: str
    row_number: int | None
    estimated_cost: str
    sent_at: str
    error: str
    probe_note: str


@dataclass(frozen=True)
class JournalRequest:
    id: int
    sheet: str
    ref: str | None
    panel: str
    order_id: str
    action: str
    state: EntryState
    result: str | None
    error: str | None
    written: bool


class Journal:
    """The journal's records and their allowed changes; safe to use from the submitting threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._store = Store(self.path, _SCHEMA, SCHEMA_VERSION, _MISSING_COLUMNS)
        self._write = self._store.write
        self.id = self._store.meta("journal_id", lambda: uuid.uuid4().hex)
        self.ledger = Ledger(self._store)  # what was spent, the history, checks
        self.approvals = Approvals(self._store)

    @property
    def mark(self) -> str:
        """What a sheet tracked by this journal carries, to tell it from other journals."""
        return JournalMark(self.id, str(self.path.resolve()), socket.gethostname()).text

    def new_ref(self) -> str:
        """A ref for a new row: random, and telling which journal issued it."""
        return f"so-{self.id[:4]}-{secrets.token_hex(_REF_BYTES)}"

    def issued(self, ref: str) -> bool | None:
        """Whether this journal issued `ref` (None: a ref of the older form, which does not say)."""
        parts = ref.split("-")
        if len(parts) != 3 or parts[0] != "so":
            return None
        return parts[1] == self.id[:4]

    def move_sheet(self, old: str, new: str) -> None:
        """File the rows and requests of sheet key `old` under `new` (the same sheet, named anew)."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE rows SET sheet = ? WHERE sheet = ?", (new, old))
            db.execute("UPDATE requests SET sheet = ? WHERE sheet = ?", (new, old))
            db.execute("UPDATE approvals SET sheet = ? WHERE sheet = ?", (new, old))

        if self._store.query("SELECT 1 FROM rows WHERE sheet = ? LIMIT 1", (old,)) or self._store.query(
            "SELECT 1 FROM requests WHERE sheet = ? LIMIT 1", (old,)
        ):
            self._write(work)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- orders ------------------------------------------------------------

    def rows(self, sheet: str) -> dict[str, JournalRow]:
        found = self._store.query("SELECT * FROM rows WHERE sheet = ?", (sheet,))
        return {row["ref"]: _journal_row(row) for row in found}

    def get(self, ref: str) -> JournalRow | None:
        found = self._store.query("SELECT * FROM rows WHERE ref = ?", (ref,))
        return _journal_row(found[0]) if found else None

    def begin_add(
        self,
        *,
        ref: str,
        sheet: str,
        fingerprint: str,
        panel: str,
        service: str,
        link: str | None,
        row_number: int,
        estimated_cost: str,
        sent_at: str | None = None,
        details: OrderDetails | None = None,
        keyed: bool = False,
    ) -> None:
        """Record, durably, that an `add` for this row is about to be sent (`sent_at`: its time, as
        the pass's clock says, UTC; default now)."""
        now = utc_now()
        details = details or OrderDetails()

        def work(db: sqlite3.Connection) -> Any:
            cursor = db.execute(
                """INSERT INTO rows (ref, sheet, fingerprint, panel, service, link, row_number, state,
                                     estimated_cost, created_at, updated_at, sent_at,
                                     service_name, quantity, currency, sent_tick, sent_clock, keyed)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (ref) DO UPDATE SET
                     fingerprint = excluded.fingerprint, panel = excluded.panel,
                     service = excluded.service, link = excluded.link,
                     row_number = excluded.row_number, state = excluded.state,
                     estimated_cost = excluded.estimated_cost, order_id = NULL, error = NULL,
                     written = 0, updated_at = excluded.updated_at, sent_at = excluded.sent_at,
                     charge = NULL, order_status = NULL, service_name = excluded.service_name,
                     quantity = excluded.quantity, currency = excluded.currency,
                     sent_tick = excluded.sent_tick, sent_clock = excluded.sent_clock,
                     answered_tick = NULL, answered_clock = NULL, lingers = NULL, probe_note = NULL,
                     keyed = excluded.keyed, settled_by = NULL
                   WHERE rows.state IN (?, ?, ?)""",
                (
                    ref,
                    sheet,
                    fingerprint,
                    panel,
                    service,
                    link,
                    row_number,
                    SENDING,
                    estimated_cost,
                    now,
                    now,
                    sent_at or now,
                    details.service_name,
                    details.quantity,
                    details.currency,
                    self._store.tick(),
                    time.time(),
                    int(keyed),
                    *_SENDABLE,
                ),
            )
            if cursor.rowcount == 0:
                raise _NotAllowed(f"ref {ref} was sent before and may have reached the panel: not sent again")
            db.execute(
                "INSERT INTO attempts (ref, action, started_at) VALUES (?, 'add', ?)",
                (ref, now),
            )

        self._write(work)

    def finish_add(
        self,
        ref: str,
        state: EntryState,
        *,
        order_id: str | None = None,
        error: str | None = None,
        lingers: bool = False,
    ) -> None:
        """Record the panel's answer (or the lack of one) for the row's `add` being sent;
        `lingers`: no answer, and the panel may still have been working on the request."""
        self._write(self._finishing(ref, state, (SENDING,), order_id, error, lingers, None))

    def settle(self, ref: str, order_id: str, note: str, *, by: str = "person") -> None:
        """An unresolved `add` did create this order: `by` a person who typed its ID, or the
        order-ID "search" that found it."""
        self._write(self._finishing(ref, ACCEPTED, tuple(UNRESOLVED_STATES), order_id, note, None, by))

    def release(self, ref: str, *, by: str = "person") -> None:
        """An unresolved `add` may be sent again: `by` a person who found it created nothing, or
        the order-ID "search" that proved it."""

        def work(db: sqlite3.Connection) -> Any:
            _update_state(
                db,
                ref,
                RELEASED,
                tuple(UNRESOLVED_STATES),
                "error = NULL, updated_at = ?, settled_by = ?",
                (utc_now(), by),
            )

        self._write(work)

    def proven_absent(self, refs: Iterable[str]) -> set[str]:
        """Those of `refs` whose add the order-ID search proved made nothing, not sent since (a
        few at most: such an add is sent again by the next pass of its sheet)."""
        found = self._store.query(
            "SELECT ref FROM rows WHERE state = ? AND settled_by = 'search'", (RELEASED,)
        )
        return {str(row["ref"]) for row in found} & set(refs)

    def mark_interrupted(self, ref: str) -> None:
        """An `add` left `sending` by a process that died while waiting for the panel."""

        def work(db: sqlite3.Connection) -> Any:
            tick, clock = self._store.tick(), time.time()
            # The process died before the first session that began after the add left (sessions
            # hold the journal's lock: one at a time): its answer was lost by then, no later.
            died = db.execute(
                """SELECT tick, clock FROM sessions
                   WHERE tick > (SELECT CAST(sent_tick AS INTEGER) FROM rows WHERE ref = ?)
                   ORDER BY tick LIMIT 1""",
                (ref,),
            ).fetchone()
            if died is not None:
                tick, clock = died["tick"], died["clock"]
            _update_state(
                db,
                ref,
                AMBIGUOUS,
                (SENDING,),
                "error = ?, updated_at = ?, answered_tick = ?, answered_clock = ?, lingers = 1",
                ("interrupted while waiting for the panel", utc_now(), tick, clock),
            )

        self._write(work)

    def begin_session(self) -> None:
        """A process that holds the journal's lock begins its work: the moment tells when the
        adds a killed process left unanswered had lost their answer, at the latest."""

        def work(db: sqlite3.Connection) -> Any:
            db.execute("INSERT INTO sessions (tick, clock) VALUES (?, ?)", (self._store.tick(), time.time()))

        self._write(work)

    def resend(self, ref: str) -> None:
        """Send an unresolved `add` again with the same idempotency key (the panel answers a
        key it has seen with the order it made for it, and makes no other)."""
        now = utc_now()

        def work(db: sqlite3.Connection) -> Any:
            _update_state(
                db,
                ref,
                SENDING,
                (AMBIGUOUS,),
                "updated_at = ?, answered_tick = NULL, answered_clock = NULL, lingers = NULL",
                (now,),
            )
            db.execute("INSERT INTO attempts (ref, action, started_at) VALUES (?, 'add', ?)", (ref, now))

        self._write(work)

    def set_probe_notes(self, notes: Mapping[str, str]) -> None:
        """What the order-ID probe found of unresolved adds (by ref), for the person who settles them."""
        if notes:
            rows = [(note, ref) for ref, note in notes.items()]
            self._write(lambda db: db.executemany("UPDATE rows SET probe_note = ? WHERE ref = ?", rows))

    def probe_records(self, panel: str) -> list[ProbeRecord]:
        """Every add of `panel` the probe can learn from: placed orders, and unresolved adds."""
        found = self._store.query(
            """SELECT ref, sheet, state, order_id, estimated_cost, quantity, row_number, sent_tick,
                      answered_tick, sent_clock, answered_clock, lingers, keyed, settled_by
               FROM rows WHERE panel = ? AND (state = ? OR state IN (?, ?))""",
            (panel, ACCEPTED, *UNRESOLVED_STATES),
        )
        return [_probe_record(row) for row in found]

    def has_orders(self, panel: str) -> bool:
        """Whether the journal has an order placed on `panel` (a lower bound for later adds)."""
        found = self._store.query(
            "SELECT 1 FROM rows WHERE panel = ? AND state = ? AND order_id IS NOT NULL"
            " AND COALESCE(settled_by, '') != 'person' LIMIT 1",
            (panel, ACCEPTED),
        )
        return bool(found)

    def unresolved_prices(self, panel: str) -> list[tuple[Decimal, bool]]:
        """The estimated cost of each unresolved add of `panel`, and whether the panel may still
        have been working on it when its answer was lost (for the pacing of later adds)."""
        states = ", ".join("?" * len(UNRESOLVED_STATES))
        found = self._store.query(
            f"SELECT estimated_cost, lingers FROM rows WHERE panel = ? AND state IN ({states})",
            (panel, *UNRESOLVED_STATES),
        )
        prices = []
        for row in found:
            with contextlib.suppress(ArithmeticError, TypeError):
                prices.append((Decimal(row["estimated_cost"]), row["lingers"] != "0"))
        return prices

    def probe_off(self, panel: str) -> str | None:
        """Why the order-ID probe is turned off for `panel`, if it is."""
        return self._store.get_meta(f"probe_off:{panel}")

    def set_probe_off(self, panel: str, reason: str | None) -> None:
        self._store.set_meta(f"probe_off:{panel}", reason)

    def unwritten_elsewhere(self, sheet: str, since: str) -> list[JournalRow]:
        """The orders of other sheets, sent since `since` (a journal time), that never reached
        their sheet: placed and not written, or cut off while being sent (an unclear answer a
        pass saw is shown Uncertain in its row, and is not among them)."""
        found = self._store.query(
            "SELECT * FROM rows WHERE sheet != ? AND COALESCE(sent_at, created_at) >= ?"
            " AND ((state = ? AND written = 0) OR state = ?)",
            (sheet, since, ACCEPTED, SENDING),
        )
        return [_journal_row(row) for row in found]

    def unresolved(self, sheet: str | None = None) -> list[UnresolvedAdd]:
        """Every add (of one sheet, or all) that may or may not have created an order, oldest
        first, with what the probe found of it."""
        states = ", ".join("?" * len(UNRESOLVED_STATES))
        found = self._store.query(
            f"""SELECT ref, sheet, panel, service, link, row_number, estimated_cost, sent_at, created_at,
                      error, probe_note FROM rows WHERE state IN ({states})"""
            + (" AND sheet = ?" if sheet is not None else "")
            + " ORDER BY COALESCE(sent_at, created_at), CAST(sent_tick AS INTEGER), ref",
            (*UNRESOLVED_STATES, *([sheet] if sheet is not None else [])),
        )
        return [
            UnresolvedAdd(
                ref=row["ref"],
                sheet=row["sheet"],
                panel=row["panel"],
                service=row["service"],
                link=row["link"] or "",
                row_number=row["row_number"],
                estimated_cost=row["estimated_cost"] or "",
                sent_at=row["sent_at"] or row["created_at"],
                error=row["error"] or "",
                probe_note=row["probe_note"] or "",
            )
            for row in found
        ]

    def accept_add(self, ref: str, panel: str, order_id: str) -> tuple[int, str] | None:
        """Record that the row's `add` made `order_id`, unless the journal holds that order of
        `panel` for another row: then nothing is recorded, and that row's number and sheet are
        returned (in the same transaction: no other statement for the common case)."""
        finish = self._finishing(ref, ACCEPTED, (SENDING,), order_id, None, False, None)

        def work(db: sqlite3.Connection) -> tuple[int, str] | None:
            held = db.execute(
                "SELECT row_number, sheet FROM rows WHERE panel = ? AND order_id = ? AND ref != ? LIMIT 1",
                (panel, order_id, ref),
            ).fetchone()
            if held is not None:
                return int(held["row_number"]), str(held["sheet"])
            finish(db)
            return None

        return self._write(work)

    def _finishing(
        self,
        ref: str,
        state: EntryState,
        allowed: tuple[EntryState, ...],
        order_id: str | None,
        error: str | None,
        answered: bool | None,
        settled_by: str | None,
    ) -> Callable[[sqlite3.Connection], None]:
        """The work that records an add's answer or settlement. `answered`: record now as the
        moment the answer was seen (True/False: whether the panel may still be working on the
        request); None keeps the moment recorded before (a settlement)."""
        now = utc_now()

        def work(db: sqlite3.Connection) -> None:
            assignments = "order_id = ?, error = ?, written = 0, updated_at = ?, settled_by = ?"
            values: tuple[Any, ...] = (order_id, error, now, settled_by)
            if answered is not None:
                assignments += ", answered_tick = ?, answered_clock = ?, lingers = ?"
                values += (self._store.tick(), time.time(), int(answered))
            _update_state(db, ref, state, allowed, assignments, values)
            if answered is None:
                return  # a settlement, not an answer: the attempt keeps the outcome it had
            db.execute(
                """UPDATE attempts SET finished_at = ?, outcome = ?, result = ?, error = ?
                   WHERE id = (SELECT MAX(id) FROM attempts WHERE ref = ? AND action = 'add')""",
                (now, state, order_id, error, ref),
            )

        return work

    def mark_written(self, refs: Iterable[str]) -> None:
        """The sheet now holds these rows' refs and outcomes."""
        refs = list(refs)

        def work(db: sqlite3.Connection) -> Any:
            db.executemany("UPDATE rows SET written = 1 WHERE ref = ?", [(ref,) for ref in refs])

        self._write(work)

    def attempts(self, ref: str) -> list[sqlite3.Row]:
        return self._store.query("SELECT * FROM attempts WHERE ref = ? ORDER BY id", (ref,))

    def open_orders(self, sheet: str) -> list[tuple[str, str, str]]:
        """(ref, panel, order_id) of the sheet's placed orders whose last known status is not final."""
        found = self._store.query(
            "SELECT ref, panel, order_id, order_status FROM rows WHERE sheet = ? AND state = ?",
            (sheet, ACCEPTED),
        )
        return [
            (row["ref"], row["panel"], row["order_id"])
            for row in found
            if row["order_id"] and not is_final_order_status(row["order_status"])
        ]

    def set_order_statuses(
        self, statuses: Mapping[str, str], charges: Mapping[str, str] | None = None
    ) -> None:
        """Remember the last status (and charge) seen of each ref's order."""
        charges = charges or {}

        def work(db: sqlite3.Connection) -> Any:
            db.executemany(
                "UPDATE rows SET order_status = ?, charge = COALESCE(?, charge) WHERE ref = ?",
                [(s, charges.get(ref), ref) for ref, s in statuses.items()],
            )

        self._write(work)

    # --- refills and cancels -------------------------------------------------

    def begin_request(self, *, sheet: str, ref: str | None, panel: str, order_id: str, action: str) -> int:
        now = utc_now()

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                """INSERT INTO requests (sheet, ref, panel, order_id, action, state, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (sheet, ref, panel, order_id, action, SENDING, now, now),
            )
            return int(cursor.lastrowid or 0)

        return self._write(work)

    def finish_request(
        self, request_id: int, state: EntryState, *, result: str | None = None, error: str | None = None
    ) -> None:
        def work(db: sqlite3.Connection) -> Any:
            db.execute(
                "UPDATE requests SET state = ?, result = ?, error = ?, updated_at = ? WHERE id = ?",
                (state, result, error, utc_now(), request_id),
            )

        self._write(work)

    def requests(self, sheet: str, *, unwritten_only: bool = True) -> list[JournalRequest]:
        query = "SELECT * FROM requests WHERE sheet = ?" + (" AND written = 0" if unwritten_only else "")
        found = self._store.query(query + " ORDER BY id", (sheet,))
        return [
            JournalRequest(
                id=row["id"],
                sheet=row["sheet"],
                ref=row["ref"],
                panel=row["panel"],
                order_id=row["order_id"],
                action=row["action"],
                state=EntryState(row["state"]),
                result=row["result"],
                error=row["error"],
                written=bool(row["written"]),
            )
            for row in found
        ]

    def open_refills(self, sheet: str) -> list[tuple[int, str, str]]:
        """(request id, panel, refill id) of the sheet's refills whose last known status is not final."""
        found = self._store.query(
            """SELECT id, panel, result, refill_status FROM requests
               WHERE sheet = ? AND action = 'refill' AND state = ?""",
            (sheet, ACCEPTED),
        )
        return [
            (row["id"], row["panel"], row["result"])
            for row in found
            if row["result"] and not is_final_refill_status(row["refill_status"])
        ]

    def set_refill_statuses(self, statuses: Mapping[str, str], sheet: str) -> None:
        """Remember the last status seen of each refill (by refill ID)."""

        def work(db: sqlite3.Connection) -> Any:
            db.executemany(
                "UPDATE requests SET refill_status = ? WHERE sheet = ? AND action = 'refill' AND result = ?",
                [(s, sheet, refill_id) for refill_id, s in statuses.items()],
            )

        self._write(work)

    def mark_requests_written(self, request_ids: Iterable[int]) -> None:
        ids = list(request_ids)

        def work(db: sqlite3.Connection) -> Any:
            db.executemany("UPDATE requests SET written = 1 WHERE id = ?", [(i,) for i in ids])

        self._write(work)


class _NotAllowed(sqlite3.Error):
    """A state change the journal refuses; nothing of the transaction is kept."""


def _update_state(
    db: sqlite3.Connection,
    ref: str,
    state: EntryState,
    allowed: tuple[EntryState, ...],
    assignments: str,
    values: tuple[Any, ...],
) -> None:
    marks = ", ".join("?" * len(allowed))
    cursor = db.execute(
        f"UPDATE rows SET state = ?, {assignments} WHERE ref = ? AND state IN ({marks})",
        (state, *values, ref, *allowed),
    )
    if cursor.rowcount == 0:
        found = db.execute("SELECT state FROM rows WHERE ref = ?", (ref,)).fetchone()
        now = f"is {found['state']}" if found else "is not in the journal"
        raise _NotAllowed(f"ref {ref} {now}: it cannot become {state}")


def _number(value: Any, kind: type[int] | type[float] = int) -> Any:
    """An added column's value (stored as text) as a number, or None."""
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError:
        return None


def _probe_record(row: sqlite3.Row) -> ProbeRecord:
    return ProbeRecord(
        ref=row["ref"],
        sheet=row["sheet"],
        state=EntryState(row["state"]),
        order_id=row["order_id"],
        estimated_cost=row["estimated_cost"],
        quantity=_number(row["quantity"]),
        row_number=row["row_number"],
        sent_tick=_number(row["sent_tick"]),
        answered_tick=_number(row["answered_tick"]),
        sent_clock=_number(row["sent_clock"], float),
        answered_clock=_number(row["answered_clock"], float),
        lingers=bool(_number(row["lingers"])),
        keyed=bool(_number(row["keyed"])),
        settled_by=row["settled_by"],
    )


def _journal_row(row: sqlite3.Row) -> JournalRow:
    return JournalRow(
        ref=row["ref"],
        sheet=row["sheet"],
        fingerprint=row["fingerprint"],
        panel=row["panel"],
        service=row["service"],
        link=row["link"],
        row_number=row["row_number"],
        state=EntryState(row["state"]),
        order_id=row["order_id"],
        error=row["error"],
        estimated_cost=row["estimated_cost"],
        written=bool(row["written"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
