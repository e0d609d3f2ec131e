"""Benchmark: one `run_sheets` pass that places N orders against a panel with per-request latency.

Builds a sheet of N valid Default-type rows (unique links) in a temp folder, starts the
project's PanelServer in a child process with `--latency` seconds per request and a big
balance, runs `run_sheets` once with one panel at `--concurrency`, and prints wall time
against the ideal, API calls against the minimum, client CPU per row, the cost of
validation and journaling per row, workbook load/save time and peak memory.

    .venv/bin/python benchmarks/run_orders.py --rows 500
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
import time
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
from sheetorders.columns import INPUT_COLUMNS, map_headers
from sheetorders.config import Config, PanelConfig, SheetConfig
from sheetorders.journal import Journal
from sheetorders.panel import PanelClient
from sheetorders.rows import CORE_OUTPUT_COLUMNS, fingerprint, rows_from_table
from sheetorders.sheets.base import CellWrite
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.validate import OrderRequest, validate_row

PANEL = "main"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the sheet (default 10000)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--concurrency", type=int, default=16, help="the panel's concurrency (default 16)")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="the panel's simulated seconds per real second (default 0: orders stay Pending)",
    )
    parser.add_argument(
        "--folder", type=Path, help="work in this folder (sheet, journal) instead of a new temp folder"
    )
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
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="the panel with probe: false (its first and last adds are then not sent one at a time)",
    )
    parser.add_argument(
        "--pass-only",
        action="store_true",
        help="measure the pass alone: no client probe, no separate load/save/journal measurements",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.concurrency < 1 or args.latency < 0:
        parser.error("--rows and --concurrency must be at least 1, --latency at least 0")
    return args


def measure_pass(args: argparse.Namespace, folder: Path, sheet: Path) -> dict[str, Any]:
    """Run the pass against a panel in another process; the figures of the pass itself."""
    unpaced = {"probe": False} if args.no_probe else {}  # probe: the config's default
    with ServerProcess(latency=args.latency, speed=args.speed) as server:
        config = Config(
            panels={
                PANEL: PanelConfig(
                    name=PANEL, url=server.url, key=KEY, concurrency=args.concurrency, **unpaced
                )
            },
            sheets=[SheetConfig(source=str(sheet), worksheet="Orders")],
            journal=folder / ".sheetorders" / "journal.sqlite",
        )
        server.reset_calls()
        server_cpu = server.stats()["cpu"]
        profiler: Any = ThreadProfiler(args.profile_clock) if args.profile else contextlib.nullcontext()
        with PhaseTimer() as phases, profiler, clock() as elapsed:
            report = run_sheets(config)
        wall, cpu = elapsed()
        peak = peak_rss_mib()
        stats = server.stats()
        load_after = machine()["load_average"]
        server.set_latency(0.0)
        with PanelClient(server.url, KEY, name=PANEL, concurrency=1) as client:
            catalog = {service.id: service for service in client.services()}
            probe = 0.0 if args.pass_only else client_probe(client, min(1000, args.rows))
    sheet_report = report.sheets[0]
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_rss_mib": peak,
        "server_cpu": stats["cpu"] - server_cpu,
        "calls": stats["calls"],
        "max_in_flight": stats["max_in_flight"],
        "connections": stats["connections"],
        "report": sheet_report.as_dict() | {"would_order": len(sheet_report.would_order)},
        "problems": sheet_report.problems[:5],
        "notices": sheet_report.notices[:5],
        "exit_code": int(report.exit_code),
        "phases": phases.as_dict(),
        "catalog": catalog,
        "client_add_cpu_ms": probe,
        "load_average_after": load_after,
        "profile": profiler.report(args.profile, args.profile_out) if args.profile else None,
    }


def client_probe(client: PanelClient, count: int) -> float:
    """CPU ms of one PanelClient.add (HTTP round trip to a zero-latency panel, one thread)."""
    client.add(1, {"link": "https://instagram.com/p/probe-warmup", "quantity": 1000})
    with clock() as spent:
        for index in range(count):
            client.add(1, {"link": f"https://instagram.com/p/probe-{index:06d}", "quantity": 1000})
    return spent()[1] * 1000 / count


def measure_parts(folder: Path, sheet: Path, catalog: dict[str, Any], count: int) -> dict[str, Any]:
    """Workbook load and save, validation and journaling, each timed on its own (no network)."""
    backend = ExcelBackend(str(sheet), "Orders")
    with clock() as load:
        table = backend.read()
    columns = map_headers(table.headers)
    rows = rows_from_table(table, columns)

    catalogs = {PANEL: catalog}
    cells = [{name: row.cells.get(name) for name in INPUT_COLUMNS} for row in rows]
    with clock() as validation:
        outcomes = [validate_row(row.number, c, catalogs, PANEL) for row, c in zip(rows, cells, strict=True)]
    valid = sum(isinstance(outcome, OrderRequest) for outcome in outcomes)

    with clock() as prints:
        for row in rows:
            fingerprint(row)

    with Journal(folder / "bench-journal.sqlite") as journal, clock() as journaling:
        for index, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
            ref = f"bench-{index:06d}"
            journal.begin_add(
                ref=ref,
                sheet="bench#Orders",
                fingerprint="0" * 24,
                panel=PANEL,
                service=row.text("service"),
                link=row.text("link"),
                row_number=row.number,
                estimated_cost=str(outcome.estimated_cost) if isinstance(outcome, OrderRequest) else "0",
            )
            journal.finish_add(ref, j.ACCEPTED, order_id=str(100_000 + index))

    writes = [
        CellWrite(row.number, columns[name] + 1, row.cells.get(name))
        for row in rows
        for name in CORE_OUTPUT_COLUMNS
        if name in columns
    ]
    time.sleep(0.01)  # the save must not land in the same mtime tick as the read
    with clock() as save:
        backend.write(writes)
    backend.close()
    return {
        "rows_read": len(rows),
        "valid": valid,
        "load_s": load()[0],
        "save_s": save()[0],
        "save_cells": len(writes),
        "validate_cpu_ms_per_row": validation()[1] * 1000 / count,
        "validate_wall_ms_per_row": validation()[0] * 1000 / count,
        "fingerprint_cpu_ms_per_row": prints()[1] * 1000 / count,
        "journal_cpu_ms_per_row": journaling()[1] * 1000 / count,
        "journal_wall_ms_per_row": journaling()[0] * 1000 / count,
        "peak_rss_mib_after": peak_rss_mib(),
    }


def summarize(
    args: argparse.Namespace, run: dict[str, Any], parts: dict[str, Any], machine_before: dict[str, Any]
) -> dict[str, Any]:
    ordered = run["report"]["ordered"]
    minimum = {"services": 1, "balance": 1, "add": args.rows, "status": math.ceil(ordered / 100)}
    calls = {action: run["calls"].get(action, 0) for action in (*minimum, *sorted(run["calls"]))}
    ideal = args.rows * args.latency / args.concurrency
    return {
        "benchmark": "run_orders",
        "rows": args.rows,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "ordered": ordered,
        "exit_code": run["exit_code"],
        "wall_s": run["wall"],
        "ideal_s": ideal,
        "ratio": run["wall"] / ideal if ideal else None,
        "calls": calls,
        "calls_minimum": minimum,
        "max_in_flight": run["max_in_flight"],
        "connections": run["connections"],
        "client_cpu_s": run["cpu"],
        "client_cpu_ms_per_row": run["cpu"] * 1000 / args.rows,
        "server_cpu_s": run["server_cpu"],
        "phases": run["phases"],
        "client_add_cpu_ms": run["client_add_cpu_ms"],
        "machine": machine_before | {"load_average_after_pass": run["load_average_after"]},
        "peak_rss_mib": run["peak_rss_mib"],
        **parts,
        "profiled": bool(args.profile),
        "problems": run["problems"],
        "notices": run["notices"],
        "error": run["report"].get("error"),
    }


def print_text(result: dict[str, Any], profile: str | None) -> None:
    r = result
    ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "n/a (latency 0)"
    print(
        f"run_orders: {r['rows']} rows, latency {r['latency_s'] * 1000:g} ms, concurrency {r['concurrency']}"
        f"{'  [PROFILED: times are inflated]' if r['profiled'] else ''}"
    )
    print(f"  ordered                 {r['ordered']} (exit code {r['exit_code']})")
    print(f"  wall time               {r['wall_s']:.2f} s   (run_sheets, one pass)")
    print(f"  ideal                   {r['ideal_s']:.2f} s   (rows x latency / concurrency)")
    print(f"  ratio                   {ratio}")
    print("  API calls      made  minimum")
    for action, made in r["calls"].items():
        print(f"    {action:<10} {made:>8} {r['calls_minimum'].get(action, 0):>8}")
    total_min = sum(r["calls_minimum"].values())
    print(f"    {'total':<10} {sum(r['calls'].values()):>8} {total_min:>8}")
    print(
        f"  requests in flight      max {r['max_in_flight']} at the server, "
        f"{r['connections']} TCP connections"
    )
    print(
        f"  client CPU              {r['client_cpu_s']:.2f} s = {r['client_cpu_ms_per_row']:.3f} ms/row"
        "   (time.process_time of this process, all threads; the panel runs in another process)"
    )
    print(f"  panel server CPU        {r['server_cpu_s']:.2f} s   (its own process, not counted above)")
    print_phases(r["phases"])
    print(
        f"  PanelClient.add         {r['client_add_cpu_ms']:.3f} ms CPU per call"
        "   (HTTP round trip to a zero-latency panel, one thread)"
    )
    print(
        f"  validation              {r['validate_cpu_ms_per_row']:.3f} ms/row CPU"
        f"   (validate_row over the {r['rows_read']} rows, {r['valid']} valid)"
    )
    print(f"  fingerprint             {r['fingerprint_cpu_ms_per_row']:.3f} ms/row CPU")
    print(
        f"  journal                 {r['journal_cpu_ms_per_row']:.3f} ms/row CPU, "
        f"{r['journal_wall_ms_per_row']:.3f} ms/row wall   (begin_add + finish_add, one thread)"
    )
    print(f"  workbook load           {r['load_s']:.2f} s   (ExcelBackend.read of the finished sheet)")
    print(f"  workbook save           {r['save_s']:.2f} s   (ExcelBackend.write of {r['save_cells']} cells)")
    print(
        f"  peak memory             {r['peak_rss_mib']:.0f} MiB after the pass, "
        f"{r['peak_rss_mib_after']:.0f} MiB at the end   (ru_maxrss of this process)"
    )
    m = r["machine"]
    print(
        f"  machine                 {m['cpus']} CPUs, load average {m['load_average']} before, "
        f"{m['load_average_after_pass']} after the pass"
    )
    if profile:
        print("\nprofile of the pass (all threads):")
        print(profile)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.folder:
            folder = args.folder.resolve()
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sheetorders-bench-")))
        sheet = folder / f"orders-{args.rows}.xlsx"
        sheet.unlink(missing_ok=True)
        for stale in folder.glob(".sheetorders/journal.sqlite*"):
            stale.unlink()
        for stale in folder.glob("bench-journal.sqlite*"):
            stale.unlink()
        build_sheet(sheet, order_rows(args.rows))
        machine_before = machine()
        run = measure_pass(args, folder, sheet)
        parts = {} if args.pass_only else measure_parts(folder, sheet, run["catalog"], args.rows)
    result = summarize(args, run, parts, machine_before)
    if args.json:
        print(json.dumps(result | {"profile": run["profile"]}, indent=2))
    elif args.pass_only:
        print(json.dumps({k: v for k, v in result.items() if k != "phases"}, indent=2))
        print_phases(result["phases"])
    else:
        print_text(result, run["profile"])


if __name__ == "__main__":
    main()
