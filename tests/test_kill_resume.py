"""A `run` killed with SIGKILL at random moments, again and again, then run to the end:
no order is placed twice and no order ID the panel gave is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, write_config
from sheetorders.workbook import build_order_workbook


def run_cli(
    config: Path, kill_after: float | None, kill_when: Callable[[], bool] | None = None
) -> int | None:
    """Run `sheetorders run`; SIGKILL it after `kill_after` seconds or as soon as `kill_when()`.

    Returns the exit code, or None when it was killed.
    """
    env = {**os.environ, "TEST_PANEL_KEY": TEST_KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "sheetorders", "run", "-c", str(config), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if kill_after is None and kill_when is None:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode in (0, 1), stderr.decode()
        return process.returncode
    deadline = time.monotonic() + (kill_after if kill_after is not None else 120)
    while process.poll() is None:
        if time.monotonic() >= deadline or (kill_when is not None and kill_when()):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return None
        time.sleep(0.005)
    return process.returncode


def kill_and_resume(
    tmp_path: Path, rows: int, kills: int, seed: int, latency: float = 0.02
) -> dict[str, int]:
    print(f"seed {seed}")  # shown when the test fails, to replay it
    rng = random.Random(seed)
    links = [f"https://instagram.com/p/kill-{i}" for i in range(rows)]
    with PanelServer(key=TEST_KEY, balance="100000") as panel:
        panel.faults.latency = latency
        sheet = build_order_workbook(
            tmp_path / "orders.xlsx", [{"service": 2, "link": link, "quantity": 100} for link in links]
        )
        config = write_config(tmp_path, panel.url, sheet)
        # Once in the middle of placing orders for sure, then at random moments.
        first = run_cli(config, None, kill_when=lambda: panel.ledger.calls["add"] >= rows // 4)
        killed = 1 if first is None else 0
        for kill in range(kills):
            # At random moments, half of them in time (reading, planning, placing, writing back)
            # and half in the placing, a few adds on: how many land does not hang on the
            # machine's speed while orders are left.
            if kill % 2:
                sent = panel.ledger.calls["add"]
                target = sent + rng.randint(1, 5)
                outcome = run_cli(config, None, kill_when=lambda t=target: panel.ledger.calls["add"] >= t)
            else:
                outcome = run_cli(config, kill_after=rng.uniform(0.1, 1.5))
            if outcome is None:
                killed += 1
        for _ in range(3):  # to the end: nothing is placed by the last of these
            run_cli(config, kill_after=None)
        orders = dict(panel.ledger.orders)

    result = read_sheet(sheet)
    by_link = {row["link"]: row for row in result}
    per_link = Counter(order.link for order in orders.values())
    duplicates = {link: n for link, n in per_link.items() if n > 1}
    assert not duplicates, f"placed twice: {duplicates}"

    in_sheet = {row["order_id"] for row in result if row["order_id"]}
    for order_id in in_sheet:
        assert orders[order_id].link == by_link[orders[order_id].link]["link"]
        assert by_link[orders[order_id].link]["order_id"] == order_id  # not attributed to another row

    uncertain = {row["link"] for row in result if row["status"] == "Uncertain"}
    lost = [oid for oid, order in orders.items() if oid not in in_sheet and order.link not in uncertain]
    assert not lost, f"order IDs the panel gave that the sheet does not show: {lost}"
    unfinished = [row["_row"] for row in result if not row["order_id"] and row["status"] != "Uncertain"]
    assert not unfinished, f"rows neither ordered nor flagged: {unfinished}"
    assert len(in_sheet) + len(uncertain) == rows
    return {"killed": killed, "ordered": len(in_sheet), "uncertain": len(uncertain)}


def test_killed_runs_resume_without_duplicates_or_lost_orders(tmp_path):
    outcome = kill_and_resume(tmp_path, rows=40, kills=6, seed=int(time.time()))
    assert outcome["killed"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_many_kills_many_rows(tmp_path, seed):
    # Enough latency that a run placing the 200 orders lasts longer than most kill delays.
    outcome = kill_and_resume(tmp_path, rows=200, kills=25, seed=seed, latency=0.08)
    assert outcome["killed"] >= 10
