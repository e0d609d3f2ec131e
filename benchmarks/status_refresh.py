"""Benchmark: one `run_sheets` pass whose only work is refreshing the status of N open orders.

Creates N orders straight in the project's PanelServer (in a child process, no HTTP), writes
a sheet whose rows already hold those order IDs with status Pending, then sets the panel's
latency and runs `run_sheets` once. Prints the `status` calls made against the minimum
(ceil(N / 100): the API takes 100 IDs per call) and the wall time against the ideal.

    .venv/bin/python benchmarks/status_refresh.py --orders 1000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from _bench import (
    KEY,
    PhaseTimer,
    ServerProcess,
    ThreadProfiler,
    build_sheet,
    clock,
    machine,
    order_rows,
    peak_rss_mib,
    print_phases,
)

from sheetorders import journal as j
from sheetorders.app import run_sheets
from sheetorders.config import Config, PanelConfig, SheetConfig
from sheetorders.journal import Journal
from sheetorders.panel import BATCH_SIZE

PANEL = "main"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000, help="open orders in the sheet (default 10000)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--concurrency", type=int, default=16, help="the panel's concurrency (default 16)")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="the panel's simulated seconds per real second (default 0: orders stay Pending)",
    )
    parser.add_argument(
        "--journal",
        action="store_true",
        help="also record the orders in the journal as placed by an earlier run (refs in the sheet), "
        "as after `sheetorders run`; by default only the sheet holds the order IDs",
    )
    parser.add_argument("--folder", type=Path, help="work in this folder instead of a new temp folder")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile the pass (all threads) and print the top N functions; slows the pass down",
    )
    parser.add_argument(
        "--profile-clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: each thread's CPU time (default); wall: waits for network and locks count too",
    )
    parser.add_argument(
        "--profile-out", type=Path, metavar="FILE", help="with --profile: also save the stats (pstats format)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1 or args.latency < 0:
        parser.error("--orders and --concurrency must be at least 1, --latency at least 0")
    return args


def journal_orders(config: Config, rows: list[dict[str, Any]]) -> None:
    """Record each row's order in the journal as an earlier pass would have (ref in the row)."""
    sheet = config.sheets[0]
    sheet_key = f"{sheet.source}#{sheet.worksheet or ''}"
    with Journal(config.journal) as journal:
        for number, row in enumerate(rows, start=2):
            ref = f"so-bench{number:06d}"
            journal.begin_add(
                ref=ref,
                sheet=sheet_key,
                fingerprint="0" * 24,
                panel=PANEL,
                service=str(row["service"]),
                link=row["link"],
                row_number=number,
                estimated_cost="0",
            )
            journal.finish_add(ref, j.ACCEPTED, order_id=row["order_id"])
            row["ref"] = ref
        journal.mark_written(row["ref"] for row in rows)


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    sheet = folder / f"open-orders-{args.orders}.xlsx"
    sheet.unlink(missing_ok=True)
    for stale in folder.glob(".sheetorders/journal.sqlite*"):
        stale.unlink()
    rows = order_rows(args.orders)
    with ServerProcess(latency=0.0, speed=args.speed) as server:
        forms = [{name: str(value) for name, value in row.items()} for row in rows]
        with clock() as placing:
            ids = server.place(forms)
        for row, order_id in zip(rows, ids, strict=True):
            row.update(order_id=order_id, status="Pending")
        config = Config(
            panels={PANEL: PanelConfig(name=PANEL, url=server.url, key=KEY, concurrency=args.concurrency)},
            sheets=[SheetConfig(source=str(sheet), worksheet="Orders")],
            journal=folder / ".sheetorders" / "journal.sqlite",
        )
        if args.journal:
            journal_orders(config, rows)
        build_sheet(sheet, rows)
        machine_before = machine()
        server.set_latency(args.latency)
        server.reset_calls()
        server_cpu = server.stats()["cpu"]
        profiler: Any = ThreadProfiler(args.profile_clock) if args.profile else contextlib.nullcontext()
        with PhaseTimer() as phases, profiler, clock() as elapsed:
            report = run_sheets(config)
        wall, cpu = elapsed()
        stats = server.stats()
        load_after = machine()["load_average"]

    batches = math.ceil(args.orders / BATCH_SIZE)
    made = stats["calls"].get("status", 0)
    concurrent = made * args.latency / args.concurrency
    rounds = math.ceil(made / args.concurrency) * args.latency
    sequential = made * args.latency
    refresh_wall = phases.wall.get("prefetch", 0.0) + phases.wall.get("refresh", 0.0)
    sheet_report = report.sheets[0]
    return {
        "benchmark": "status_refresh",
        "orders": args.orders,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "setup_place_s": placing()[0],
        "refreshed": sheet_report.refreshed,
        "exit_code": int(report.exit_code),
        "status_calls": made,
        "status_calls_minimum": batches,
        "other_calls": {action: n for action, n in stats["calls"].items() if action != "status"},
        "max_in_flight": stats["max_in_flight"],
        "wall_s": wall,
        "refresh_wall_s": refresh_wall,
        "ideal_concurrent_s": concurrent,
        "ideal_rounds_s": rounds,
        "sequential_bound_s": sequential,
        "batches_went": "concurrently" if stats["max_in_flight"] > 1 else "one at a time",
        "refresh_ratio": refresh_wall / rounds if rounds else None,
        "client_cpu_s": cpu,
        "client_cpu_ms_per_order": cpu * 1000 / args.orders,
        "server_cpu_s": stats["cpu"] - server_cpu,
        "phases": phases.as_dict(),
        "journal": args.journal,
        "machine": machine_before | {"load_average_after_pass": load_after},
        "peak_rss_mib": peak_rss_mib(),
        "profiled": bool(args.profile),
        "profile": profiler.report(args.profile, args.profile_out) if args.profile else None,
    }


def print_text(r: dict[str, Any]) -> None:
    where = "sheet and journal" if r["journal"] else "sheet only"
    print(
        f"status_refresh: {r['orders']} open orders ({where}), latency {r['latency_s'] * 1000:g} ms, "
        f"concurrency {r['concurrency']}{'  [PROFILED: times are inflated]' if r['profiled'] else ''}"
    )
    print(f"  refreshed               {r['refreshed']} rows (exit code {r['exit_code']})")
    print(f"  status calls            {r['status_calls']} made, minimum {r['status_calls_minimum']}")
    print(f"  other calls             {r['other_calls'] or 'none'}")
    print(f"  requests in flight      max {r['max_in_flight']}: batches went {r['batches_went']}")
    print(f"  wall time (whole pass)  {r['wall_s']:.2f} s")
    print(f"  wall time (status)      {r['refresh_wall_s']:.2f} s   (prefetch + refresh: calls, applying)")
    print(f"  ideal, concurrent       {r['ideal_concurrent_s']:.2f} s   (calls x latency / concurrency)")
    print(f"  ideal, in rounds        {r['ideal_rounds_s']:.2f} s   (ceil(calls / concurrency) x latency)")
    print(f"  sequential bound        {r['sequential_bound_s']:.2f} s   (calls x latency, one at a time)")
    ratio = f"{r['refresh_ratio']:.2f}x" if r["refresh_ratio"] is not None else "n/a (latency 0)"
    print(f"  status / ideal rounds   {ratio}")
    print(
        f"  client CPU              {r['client_cpu_s']:.2f} s = {r['client_cpu_ms_per_order']:.3f} ms/order"
        "   (time.process_time of this process; the panel runs in another process)"
    )
    print(f"  panel server CPU        {r['server_cpu_s']:.2f} s")
    print_phases(r["phases"])
    print(f"  peak memory             {r['peak_rss_mib']:.0f} MiB   (ru_maxrss of this process)")
    m = r["machine"]
    print(
        f"  machine                 {m['cpus']} CPUs, load average {m['load_average']} before, "
        f"{m['load_average_after_pass']} after the pass"
    )
    if r["profile"]:
        print("\nprofile of the pass (all threads):")
        print(r["profile"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.folder:
            folder = args.folder.resolve()
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sheetorders-bench-")))
        result = run(args, folder)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_text(result)


if __name__ == "__main__":
    main()
