"""The jobs the CLI offers, as plain functions: each takes a Config and returns data."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from sheetorders.config import Config
from sheetorders.errors import LockHeld, PanelError, SheetordersError, UsageError
from sheetorders.journal import Journal
from sheetorders.models import Balance, ItemError, OrderStatus, Service
from sheetorders.panel import ClientFactory, Panels
from sheetorders.pipeline import PassOptions, run_pass
from sheetorders.report import PassReport, RunReport

# --- panels ---------------------------------------------------------------------


def _panel_names(config: Config, panel: str | None) -> list[str]:
    if panel is None:
        return list(config.panels)
    config.panel(panel)  # raises a ConfigError naming the configured panels
    return [panel]


def list_services(
    config: Config, panel: str | None = None, search: str | None = None, factory: ClientFactory | None = None
) -> dict[str, list[Service] | PanelError]:
    """The catalog of each panel (or one), optionally only services whose name/category/type match."""
    needle = (search or "").lower()

    def fetch(name: str) -> list[Service]:
        services = panels.client(name).services()
        return [s for s in services if needle in f"{s.id} {s.name} {s.category} {s.type}".lower()]

    with Panels(config, factory) as panels:
        return panels.each(_panel_names(config, panel), fetch)


def get_balances(config: Config, factory: ClientFactory | None = None) -> dict[str, Balance | PanelError]:
    with Panels(config, factory) as panels:
        return panels.each(list(config.panels), lambda name: panels.client(name).balance())


def order_statuses(
    config: Config, order_ids: Iterable[str], panel: str | None = None, factory: ClientFactory | None = None
) -> dict[str, OrderStatus | ItemError]:
    with Panels(config, factory) as panels:
        return panels.client(_panel_names(config, panel)[0]).statuses(list(order_ids))


def request_refills(
    config: Config, order_ids: Iterable[str], panel: str | None = None, factory: ClientFactory | None = None
) -> dict[str, str | ItemError]:
    with Panels(config, factory) as panels:
        return panels.client(_panel_names(config, panel)[0]).refills(list(order_ids))


def request_cancels(
    config: Config, order_ids: Iterable[str], panel: str | None = None, factory: ClientFactory | None = None
) -> dict[str, bool | ItemError]:
    with Panels(config, factory) as panels:
        return panels.client(_panel_names(config, panel)[0]).cancel(list(order_ids))


# --- sheets -----------------------------------------------------------------------


@contextmanager
def sheet_lock(journal_path: Path, wait: bool = False) -> Iterator[None]:
    """One process at a time per journal (and so per sheet); says who holds it otherwise."""
    lock_path = Path(f"{journal_path}.lock")
    info_path = Path(f"{journal_path}.lock.owner")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        try:
            owner = json.loads(info_path.read_text())
            holder = f"pid {owner['pid']} on {owner['host']} since {owner['since']} ({owner['command']})"
        except (OSError, ValueError, KeyError):
            holder = "another sheetorders process"
        raise LockHeld(
            f"{journal_path} is in use by {holder}; wait for it to finish, or pass --wait to queue behind it"
        ) from None
    try:
        info_path.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join(_safe_argv()),
                }
            )
        )
        yield
    finally:
        info_path.unlink(missing_ok=True)
        lock.release()


def _safe_argv() -> list[str]:
    import sys

    return [Path(sys.argv[0]).name, *sys.argv[1:3]]


def run_sheets(
    config: Config,
    options: PassOptions | None = None,
    *,
    wait: bool = False,
    factory: ClientFactory | None = None,
    panels: Panels | None = None,
) -> RunReport:
    """One pass over every sheet of the config; a sheet's failure does not stop the others."""
    if not config.sheets:
        raise UsageError("the config has no `sheet:` (or `sheets:`) and no --sheet was given")
    report = RunReport()
    own_panels = panels is None
    panels = panels or Panels(config, factory)
    try:
        with sheet_lock(config.journal, wait), Journal(config.journal) as journal:
            for sheet in config.sheets:
                try:
                    report.sheets.append(run_pass(config, sheet, journal, panels, options))
                except SheetordersError as error:
                    report.sheets.append(_failed(sheet.label, error))
    finally:
        if own_panels:
            panels.close()
    return report


def _failed(sheet: str, error: SheetordersError) -> PassReport:
    return PassReport(sheet=sheet, failure=error)


def parse_interval(text: str) -> float:
    """`30s`, `10m`, `1h` (or plain seconds) as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise UsageError(f"--every: {text!r} is not an interval; use e.g. 30s, 10m or 1h") from None
    if seconds <= 0:
        raise UsageError(f"--every: {text!r} must be more than zero")
    return seconds


def sync_every(
    config: Config,
    interval: float,
    on_pass: Callable[[RunReport], None],
    stop: threading.Event,
    *,
    wait: bool = False,
    factory: ClientFactory | None = None,
    max_passes: int | None = None,
) -> RunReport:
    """Repeat `run_sheets` every `interval` seconds until `stop` is set; return the last report.

    A stop request lets the current pass finish (its write-back included) and ends
    before the next one starts.
    """
    last = RunReport()
    passes = 0
    with Panels(config, factory) as panels:
        while not stop.is_set():
            started = time.monotonic()
            try:
                last = run_sheets(config, PassOptions(), wait=wait, panels=panels)
            except (PanelError, LockHeld) as error:
                last = RunReport([_failed("*", error)])
            on_pass(last)
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return last
