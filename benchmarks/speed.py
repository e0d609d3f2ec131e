"""Benchmark: where the limit is. One report over every figure the speed goals name.

For each `--runs` entry (rows@latency), one `run_orders.py --pass-only --json` in a child process
of its own (so each peak RSS is that run's alone): wall time, the ideal, their ratio, CPU ms per
row, peak RSS and the time of each step of the pass. Then the scheduled syncs of `--sync-rows`
rows (`noop_sync.py`: nothing open, nothing changed; `status_refresh.py --journal`: every order
open, none changed since the last pass), and a naive loop over the same sheet and panel (one
`add` per row through a plain urllib3 pool, one at a time, the IDs written at the end with
openpyxl) against the pass, with their ratio.

The ideal of a pass: rows x latency / concurrency (the `add` calls), plus one round trip for the
catalog and balance (sent together) and one per round of status batches (ceil(batches /
concurrency), 100 orders a batch).

    .venv/bin/python benchmarks/speed.py                          # every figure, ~5 minutes
    .venv/bin/python benchmarks/speed.py --runs 600@0.04 --naive 600@0.04 --sync-rows 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from _bench import KEY, ServerProcess, build_sheet, machine, order_rows
from openpyxl import load_workbook

HERE = Path(__file__).resolve().parent
BATCH = 100
STEPS = (
    ("load", ("read",)),
    ("plan", ("reconcile", "services+balance", "plan")),
    ("check+claim", ("check+claim",)),
    ("place", ("submit", "handle_actions")),
    ("refresh", ("prefetch", "refresh")),
    ("save", ("write_back",)),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        default="600@0.04,10000@0.01,50000@0.01",
        help="passes to time, rows@latency, comma-separated",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--naive", default="600@0.04", help="rows@latency of the naive loop ('' for none)")
    parser.add_argument("--sync-rows", type=int, default=10_000, help="rows of the sync figures (0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser.parse_args(argv)


def _sized(text: str) -> tuple[int, float]:
    rows, latency = text.split("@")
    return int(rows), float(latency)


def ideal(rows: int, latency: float, concurrency: int) -> float:
    """The `add` calls at full concurrency, the catalog, and the rounds of status batches."""
    rounds = math.ceil(math.ceil(rows / BATCH) / concurrency)
    return rows * latency / concurrency + latency + rounds * latency


def _child(script: str, *args: str) -> str:
    command = [sys.executable, str(HERE / script), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=HERE.parent).stdout


def run_pass(rows: int, latency: float, concurrency: int, *options: str) -> dict[str, Any]:
    out = _child(
        "run_orders.py",
        *("--rows", str(rows), "--latency", str(latency), "--concurrency", str(concurrency)),
        *("--pass-only", "--json", *options),
    )
    result = json.loads(out)
    phases = result["phases"]
    steps = {label: sum(phases.get(name, {}).get("wall", 0.0) for name in names) for label, names in STEPS}
    best = ideal(rows, latency, concurrency)
    return {
        "rows": rows,
        "latency_s": latency,
        "ordered": result["ordered"],
        "exit_code": result["exit_code"],
        "wall_s": result["wall_s"],
        "ideal_s": best,
        "ratio": result["wall_s"] / best if best else None,
        "cpu_ms_per_row": result["client_cpu_ms_per_row"],
        "peak_rss_mib": result["peak_rss_mib"],
        "steps_wall_s": steps,
        "load_average": result["machine"]["load_average"],
        "problems": result.get("problems", []),
        "error": result.get("error"),
    }


def run_syncs(rows: int) -> dict[str, Any]:
    noop = json.loads(_child("noop_sync.py", "--rows", str(rows), "--json"))
    refresh = json.loads(_child("status_refresh.py", "--orders", str(rows), "--journal", "--json"))
    return {
        "rows": rows,
        "noop_sync_s": noop["noop_best_s"],
        "noop_read_passes_s": noop["read_passes_s"],
        "open_orders_sync_s": refresh["wall_s"],
        "open_orders_status_calls": refresh["status_calls"],
        "open_orders_latency_s": refresh["latency_s"],
    }


def naive_loop(sheet: Path, url: str) -> float:
    """One `add` per row, one at a time, through a plain urllib3 pool; the IDs written at the end."""
    started = time.perf_counter()
    workbook = load_workbook(sheet)
    tab = workbook["Orders"]
    headers = [cell.value for cell in tab[1]]
    service, link, quantity = (headers.index(name) for name in ("service", "link", "quantity"))
    order_column = len(headers) + 1
    target = urlsplit(url)
    ids: list[tuple[int, str]] = []
    with urllib3.HTTPConnectionPool(target.hostname or "127.0.0.1", target.port, maxsize=1) as pool:
        for number, row in enumerate(tab.iter_rows(min_row=2, values_only=True), start=2):
            form = {"key": KEY, "action": "add", "service": row[service], "link": row[link]}
            form["quantity"] = row[quantity]
            reply = pool.request(
                "POST",
                target.path,
                body=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            ids.append((number, str(json.loads(reply.data)["order"])))
    tab.cell(1, order_column, "order_id")
    for number, order_id in ids:
        tab.cell(number, order_column, order_id)
    workbook.save(sheet)
    return time.perf_counter() - started


def run_naive(rows: int, latency: float, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sheetorders-naive-") as folder:
        sheet = Path(folder) / "orders.xlsx"
        build_sheet(sheet, order_rows(rows))
        with ServerProcess(latency=latency) as server:
            naive = naive_loop(sheet, server.url)
    sheetorders = run_pass(rows, latency, concurrency)
    try:
        unpaced = run_pass(rows, latency, concurrency, "--no-probe")
    except subprocess.CalledProcessError:  # a version without `probe`: nothing paced anyway
        unpaced = sheetorders
    return {
        "rows": rows,
        "latency_s": latency,
        "naive_s": naive,
        "sheetorders_s": sheetorders["wall_s"],
        "speedup": naive / sheetorders["wall_s"],
        "sheetorders_no_probe_s": unpaced["wall_s"],
        "speedup_no_probe": naive / unpaced["wall_s"],
    }


def print_text(result: dict[str, Any]) -> None:
    print(f"speed: concurrency {result['concurrency']}, {result['machine']}")
    print(
        "  rows  latency   wall s  ideal s  ratio  CPU ms/row  peak MiB   "
        + "  ".join(f"{label:>7}" for label, _ in STEPS)
        + "   load average"
    )
    for r in result["passes"]:
        steps = "  ".join(f"{r['steps_wall_s'][label]:>7.2f}" for label, _ in STEPS)
        print(
            f"  {r['rows']:>6} {r['latency_s'] * 1000:>5.0f} ms {r['wall_s']:>8.2f} {r['ideal_s']:>8.2f}"
            f" {r['ratio']:>5.2f}x {r['cpu_ms_per_row']:>10.3f} {r['peak_rss_mib']:>9.0f}   {steps}"
            f"   {r['load_average']}"
        )
        if r["ordered"] != r["rows"]:
            print(
                f"         ordered {r['ordered']} of {r['rows']} (exit {r['exit_code']}): "
                f"{r['error'] or ''} {r['problems'][:2]}"
            )
    if result.get("syncs"):
        s = result["syncs"]
        print(f"  sync of {s['rows']} rows, nothing open, nothing changed: {s['noop_sync_s']:.3f} s a pass")
        print(
            f"  sync of {s['rows']} open orders (unchanged, {s['open_orders_status_calls']} status calls at "
            f"{s['open_orders_latency_s'] * 1000:g} ms): {s['open_orders_sync_s']:.2f} s"
        )
    if result.get("naive"):
        n = result["naive"]
        print(
            f"  naive loop, {n['rows']} rows at {n['latency_s'] * 1000:g} ms: {n['naive_s']:.2f} s; "
            f"sheetorders {n['sheetorders_s']:.2f} s: {n['speedup']:.1f}x faster "
            f"(probe: false, no paced first and last adds: {n['sheetorders_no_probe_s']:.2f} s, "
            f"{n['speedup_no_probe']:.1f}x)"
        )
    print(f"  load average after: {os.getloadavg()}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result: dict[str, Any] = {"concurrency": args.concurrency, "machine": machine()}
    result["passes"] = [run_pass(*_sized(text), args.concurrency) for text in args.runs.split(",") if text]
    if args.sync_rows:
        result["syncs"] = run_syncs(args.sync_rows)
    if args.naive:
        result["naive"] = run_naive(*_sized(args.naive), args.concurrency)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_text(result)


if __name__ == "__main__":
    main()
