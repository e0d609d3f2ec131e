"""Benchmark: a scheduled `sync` over a big sheet where nothing is open and nothing changed.

Builds a sheet of N rows that the panel's catalog refuses (quantities below every minimum: each
row ends Invalid, so nothing is ever open), runs two passes (the first marks the rows, the second
finds nothing to do and remembers it), then times further passes. The figure is the wall time of
one such pass; a pass that had to read the workbook is shown beside it for comparison.

    .venv/bin/python benchmarks/noop_sync.py --rows 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _bench import KEY, ServerProcess, build_sheet

from sheetorders.app import run_sheets
from sheetorders.config import Config, PanelConfig, SheetConfig

PANEL = "main"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder_name, ServerProcess(latency=0.0, speed=0.0) as server:
        folder = Path(folder_name)
        sheet = folder / "orders.xlsx"
        rows = [
            {"service": 2, "link": f"https://instagram.com/p/{i:06d}", "quantity": 1}
            for i in range(args.rows)
        ]
        build_sheet(sheet, rows)
        config = Config(
            panels={PANEL: PanelConfig(name=PANEL, url=server.url, key=KEY)},
            sheets=[SheetConfig(source=str(sheet), worksheet="Orders")],
            journal=folder / ".sheetorders" / "journal.sqlite",
        )
        timings = []
        for index in range(2 + args.passes):
            started = time.perf_counter()
            report = run_sheets(config)
            timings.append((time.perf_counter() - started, report.sheets[0].unchanged))
            if index == 0:
                time.sleep(0.01)
        read_passes = [t for t, unchanged in timings if not unchanged]
        noop = [t for t, unchanged in timings if unchanged]
        if args.json:
            figures = {"rows": args.rows, "read_passes_s": read_passes, "noop_passes_s": noop}
            print(json.dumps(figures | {"noop_best_s": min(noop) if noop else None}))
            return
        print(f"noop_sync: {args.rows} rows, nothing open, nothing changed")
        print(f"  passes that read the workbook   {', '.join(f'{t:.2f} s' for t in read_passes)}")
        print(f"  no-op passes (not read)         {', '.join(f'{t:.3f} s' for t in noop)}")
        if noop:
            print(f"  no-op pass, best of {len(noop)}        {min(noop):.3f} s")


if __name__ == "__main__":
    main()
