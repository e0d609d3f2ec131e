"""What the journal says beyond placing each order once: what was spent and ordered (for
budgets and the history), approvals, the file's health, and sheets left with nothing to do."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sheetorders.states import EntryState
from sheetorders.store import Store, utc_now

ACCEPTED, SENDING, AMBIGUOUS = EntryState.ACCEPTED, EntryState.SENDING, EntryState.AMBIGUOUS
# States of an `add` that count as spent: it may have cost money.
_SPENDING = (SENDING, ACCEPTED, AMBIGUOUS)


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

    def history(self, since: str, until: str | None = None) -> list[HistoryEntry]:
        """Every order sent since `since` (and before `until`), oldest first: placed, uncertain or
        being sent (an order that may exist is accounted for)."""
        query = (
            "SELECT * FROM rows WHERE state IN (?, ?, ?) AND COALESCE(sent_at, created_at) >= ?"
            + (" AND COALESCE(sent_at, created_at) < ?" if until else "")
            + " ORDER BY COALESCE(sent_at, created_at), ref"
        )
        found = self._store.query(query, [*_SPENDING, since, *([until] if until else [])])
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
