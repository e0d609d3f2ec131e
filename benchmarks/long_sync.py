"""Benchmark: memory over a long `sync --every` life: many passes over one sheet in one process.

Builds a sheet of `--rows` valid rows, then runs `--passes` passes through `app.sync_every` (the
loop `sheetorders sync --every` runs, here with no wait between passes) against the local panel in
a child process. The first pass places every row; the panel's simulated clock (`--speed`) then
moves the orders' `remains` on, so every later pass refreshes 1,000 open orders, reads the
workbook and writes it back, until the orders finish (afterwards the passes find nothing to do).
Prints the process's resident memory after the first pass, at a few passes between, and after
the last, with the number of objects the garbage collector tracks.

    .venv/bin/python benchmarks/long_sync.py                       # 1,000 rows, 500 passes
    .venv/bin/python benchmarks/long_sync.py --rows 200 --passes 50  # a quick try
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import KEY, ServerProcess, build_sheet, machine, order_rows, peak_rss_mib

from sheetorders.app import sync_every
from sheetorders.config import Config, PanelConfig, SheetConfig
from sheetorders.report import RunReport
from sheetorders.stopping import StopRequest

PANEL = "main"


def rss_mib() -> float:
    """The resident memory of this process now (Linux /proc; else the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mib()
    import resource

    return pages * resource.getpagesize() / (1024 * 1024)


def checkpoints(passes: int) -> set[int]:
    """Passes after which memory is shown: the first, a few between, the last."""
    marks = {1, 2, 5, 10, 25, 50, 100, 200, 300, 400, passes}
    return {mark for mark in marks if mark <= passes}


class Recorder:
    def __init__(self, passes: int) -> None:
        self.marks = checkpoints(passes)
        self.count = 0
        self.points: list[dict[str, Any]] = []
        self.read = self.written_passes = 0
        self.started = time.perf_counter()

    def __call__(self, report: RunReport) -> None:
        self.count += 1
        sheet = report.sheets[0]
        if sheet.failure is not None:
            raise RuntimeError(f"pass {self.count} failed: {sheet.failure}")
        self.read += not sheet.unchanged
        self.written_passes += sheet.refreshed > 0
        if self.count in self.marks:
            gc.collect()
            self.points.append(
                {
                    "pass": self.count,
                    "rss_mib": round(rss_mib(), 1),
                    "gc_objects": len(gc.get_objects()),
                    "seconds": round(time.perf_counter() - self.started, 1),
                }
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--passes", type=int, default=500)
    parser.add_argument("--speed", type=float, default=0.02, help="the panel's simulated seconds per second")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder_name,
        ServerProcess(latency=args.latency, speed=args.speed) as server,
    ):
        folder = Path(folder_name)
        sheet = folder / "orders.xlsx"
        build_sheet(sheet, order_rows(args.rows))
        config = Config(
            panels={PANEL: PanelConfig(name=PANEL, url=server.url, key=KEY, concurrency=16)},
            sheets=[SheetConfig(source=str(sheet), worksheet="Orders", summary_tab="Summary")],
            journal=folder / ".sheetorders" / "journal.sqlite",
        )
        recorder = Recorder(args.passes)
        sync_every(config, 0.0, recorder, StopRequest(), max_passes=args.passes)
        calls = server.stats()["calls"]
    result = {
        "rows": args.rows,
        "passes": recorder.count,
        "passes_that_read_the_sheet": recorder.read,
        "passes_that_refreshed_orders": recorder.written_passes,
        "memory": recorder.points,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "api_calls": calls,
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"long_sync: {result['rows']} rows, {result['passes']} passes in one process (sync_every)")
    print(
        f"  passes that read the sheet {recorder.read}, that refreshed orders {recorder.written_passes}; "
        f"API calls {dict(sorted(calls.items()))}"
    )
    print("  after pass     RSS MiB   gc objects   seconds")
    for point in recorder.points:
        print(f"  {point['pass']:>10} {point['rss_mib']:>11} {point['gc_objects']:>12} {point['seconds']:>9}")
    first, last = recorder.points[0], recorder.points[-1]
    print(
        f"  RSS first → last: {first['rss_mib']} → {last['rss_mib']} MiB "
        f"({last['rss_mib'] - first['rss_mib']:+.1f}); peak {result['peak_rss_mib']} MiB; {machine()}"
    )


if __name__ == "__main__":
    main()
