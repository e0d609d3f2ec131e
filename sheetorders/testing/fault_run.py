"""Every fault at once, kills included: `sheetorders run` (SIGKILLed at random moments, then
run to its end) and one `sheetorders sync` against a local panel that fails in every way it
can, whose order IDs are shared with other customers. What it measures: rows left Uncertain
before and after settling, duplicates and wrong order IDs (both must be 0).

Used by `benchmarks/fault_suite.py` (many seeds) and by a short test.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet
from sheetorders.workbook import build_order_workbook

CONCURRENCY = 4
QUANTITIES = (100, 100, 100, 200, 250, 300, 500, 1000)


@dataclass(frozen=True)
class FaultRates:
    error_5xx: float = 0.10
    html: float = 0.05
    rate_limit_429: float = 0.05
    drop_after_create: float = 0.08
    create_after_drop: float = 0.02  # the panel makes the order after the connection is lost


@dataclass
class FaultRun:
    rows: int
    kills: int = 0
    unclear: int = 0  # rows whose add got no clear answer at least once (or was cut by a kill)
    uncertain_after_run: int = 0
    uncertain_after_sync: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    wrong_ids: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # order IDs the panel gave that no row shows
    unplaced: list[int] = field(default_factory=list)  # rows neither ordered nor Uncertain

    @property
    def sound(self) -> bool:
        return not (self.duplicates or self.wrong_ids or self.lost or self.unplaced)


def fault_run(
    folder: Path,
    *,
    rows: int = 60,
    seed: int = 0,
    kills: int = 2,
    latency: float = 0.02,
    rates: FaultRates | None = None,
    other_customers: float = 1.5,
    probe: bool = True,
) -> FaultRun:
    """One fault run in `folder`; see the module's docstring."""
    rng = random.Random(seed)
    rates = rates or FaultRates()
    links = [f"https://instagram.com/p/fault-{seed}-{i}" for i in range(rows)]
    result = FaultRun(rows)
    with PanelServer(key=TEST_KEY, balance="100000", other_customers=other_customers, seed=seed) as panel:
        faults = panel.faults
        faults.latency = latency
        faults.retry_after = 0.05
        faults.error_5xx, faults.html = rates.error_5xx, rates.html
        faults.rate_limit_429, faults.drop_after_create = rates.rate_limit_429, rates.drop_after_create
        faults.create_after_drop, faults.late_delay = rates.create_after_drop, 0.3  # within probe_grace
        sheet = build_order_workbook(
            folder / "orders.xlsx",
            [{"service": 2, "link": link, "quantity": rng.choice(QUANTITIES)} for link in links],
        )
        config = _config(folder, panel.url, sheet, probe)
        for _ in range(kills):
            if _cli(config, "run", kill_after=rng.uniform(0.05, 0.6)) is None:
                result.kills += 1
        _cli(config, "run")
        result.uncertain_after_run = _uncertain(sheet)
        _cli(config, "sync")
        result.uncertain_after_sync = _uncertain(sheet)
        orders = {oid: order.link or "" for oid, order in panel.ledger.orders.items()}
    result.unclear = _unclear(folder / "journal.sqlite")
    _check(result, read_sheet(sheet), orders)
    return result


def _config(folder: Path, url: str, sheet: Path, probe: bool) -> Path:
    panel = {
        "url": url,
        "key": "${TEST_PANEL_KEY}",
        "concurrency": CONCURRENCY,
        "probe": probe,
        "probe_grace": 1,
    }
    data = {
        "panels": {"main": panel},
        "sheet": {"source": str(sheet), "worksheet": "Orders"},
        "journal": str(folder / "journal.sqlite"),
    }
    path = folder / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cli(config: Path, command: str, kill_after: float | None = None) -> int | None:
    """Run a command; SIGKILL it after `kill_after` seconds. The exit code, or None if killed."""
    env = {**os.environ, "TEST_PANEL_KEY": TEST_KEY}
    args = [sys.executable, "-m", "sheetorders", command, "-c", str(config), "--json"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is None:
        _, stderr = process.communicate(timeout=300)
        if process.returncode not in (0, 1, 3):
            raise RuntimeError(f"sheetorders {command} exited {process.returncode}: {stderr.decode()}")
        return process.returncode
    deadline = time.monotonic() + kill_after
    while process.poll() is None:
        if time.monotonic() >= deadline:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return None
        time.sleep(0.005)
    return process.returncode


def _uncertain(sheet: Path) -> int:
    return sum(1 for row in read_sheet(sheet) if row["status"] == "Uncertain")


def _unclear(journal: Path) -> int:
    """Refs with an add that got no clear answer, or that a kill cut (never finished)."""
    with sqlite3.connect(journal) as db:
        found = db.execute(
            "SELECT COUNT(DISTINCT ref) FROM attempts WHERE action = 'add' "
            "AND (outcome = 'ambiguous' OR finished_at IS NULL)"
        ).fetchone()
    return int(found[0])


def _check(result: FaultRun, sheet_rows: list[dict[str, Any]], orders: dict[str, str]) -> None:
    per_link = Counter(orders.values())
    result.duplicates = {link: n for link, n in per_link.items() if n > 1}
    shown = {str(row["order_id"]) for row in sheet_rows if row["order_id"]}
    result.wrong_ids = [
        f"row {row['_row']}: {row['order_id']}"
        for row in sheet_rows
        if row["order_id"] and orders.get(str(row["order_id"])) != row["link"]
    ]
    uncertain_links = {row["link"] for row in sheet_rows if row["status"] == "Uncertain"}
    result.lost = [oid for oid, link in orders.items() if oid not in shown and link not in uncertain_links]
    result.unplaced = [
        row["_row"] for row in sheet_rows if not row["order_id"] and row["status"] != "Uncertain"
    ]
