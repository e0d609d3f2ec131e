"""The jobs the CLI offers, as plain functions: each takes a Config and returns data."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sheetorders.budget import BudgetLimit, all_limits, stamp, utc_clock
from sheetorders.config import Config
from sheetorders.errors import PanelError, SheetordersError, UsageError
from sheetorders.history import Order, parse_when, select
from sheetorders.journal import Journal, UnresolvedAdd
from sheetorders.locks import process_lock
from sheetorders.models import Balance, ItemError, OrderStatus, Service
from sheetorders.panel import ClientFactory, Panels
from sheetorders.pipeline import PassOptions, run_pass
from sheetorders.report import PassReport, RunReport
from sheetorders.sheets.base import open_backend
from sheetorders.stopping import StopSignal

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


def sheet_lock(journal_path: Path, wait: bool = False) -> AbstractContextManager[None]:
    """One process at a time per journal; says who holds it otherwise."""
    return process_lock(Path(f"{journal_path}.lock"), str(journal_path), wait)


def run_sheets(
    config: Config,
    options: PassOptions | None = None,
    *,
    wait: bool = False,
    factory: ClientFactory | None = None,
    panels: Panels | None = None,
) -> RunReport:
    """One pass over every sheet of the config; a sheet's failure does not stop the others."""
    _require_sheets(config)
    with _panels(config, factory, panels) as opened, _journal(config, wait) as journal:
        return _pass_over_sheets(config, journal, opened, replace(options or PassOptions(), wait=wait))


def budget_status(config: Config, now: datetime | None = None) -> list[BudgetLimit]:
    """Each budget of the config with what is spent in its current day or month, and what is left."""
    keys = {}
    for sheet in config.sheets:
        backend = open_backend(sheet.source, sheet.worksheet, config.google)
        keys[sheet.label] = sheet.journal_key if sheet.name else backend.identity
    with Journal(config.journal) as journal:
        return all_limits(journal, config, keys, now or utc_clock())


def order_history(
    config: Config,
    *,
    since: str = "30d",
    until: str | None = None,
    sheet: str | None = None,
    panel: str | None = None,
    status: str | None = None,
    now: datetime | None = None,
) -> list[Order]:
    """The journal's orders placed in a time span (default: the last 30 days), oldest first."""
    now = now or utc_clock()
    start = stamp(parse_when(since, now))
    end = stamp(parse_when(until, now)) if until else None
    with Journal(config.journal) as journal:
        entries = journal.ledger.history(start, end)
    return select(entries, sheet=sheet, panel=panel, status=status)


@dataclass(frozen=True)
class UncertainOrders:
    """What is left for a person to settle: unresolved adds, and panels the search is off for."""

    entries: list[UnresolvedAdd]
    search_off: dict[str, str]  # panel -> why the order-ID search is off


def uncertain_orders(config: Config, *, probe_on: str | None = None) -> UncertainOrders:
    """The journal's adds that may or may not have made an order, with what the order-ID search
    found of each; `probe_on`: turn the search on again for that panel first."""
    with Journal(config.journal) as journal:
        if probe_on is not None:
            config.panel(probe_on)  # a panel of the config, or a usage error naming them
            journal.set_probe_off(probe_on, None)
        off = {name: why for name in config.panels if (why := journal.probe_off(name)) is not None}
        for name, panel in config.panels.items():
            if not panel.probe:
                off.setdefault(name, "probe: false in the config")
        return UncertainOrders(journal.unresolved(), off)


def _require_sheets(config: Config) -> None:
    if not config.sheets:
        raise UsageError("the config has no `sheet:` (or `sheets:`) and no --sheet was given")


@contextmanager
def _journal(config: Config, wait: bool) -> Iterator[Journal]:
    """The config's journal, locked for this process while inside."""
    with sheet_lock(config.journal, wait), Journal(config.journal) as journal:
        journal.begin_session()
        yield journal


@contextmanager
def _panels(config: Config, factory: ClientFactory | None, panels: Panels | None) -> Iterator[Panels]:
    """The given panels (left open), or new ones closed afterwards."""
    if panels is not None:
        yield panels
        return
    with Panels(config, factory) as opened:
        yield opened


def _pass_over_sheets(config: Config, journal: Journal, panels: Panels, options: PassOptions) -> RunReport:
    report = RunReport()
    left = options.max_spend if options.max_spend is not None else config.max_spend
    for sheet in config.sheets:
        if options.stopping:
            break  # nothing new is sent after a stop request, not even to the next sheet
        try:
            done = run_pass(config, sheet, journal, panels, replace(options, max_spend=left))
        except SheetordersError as error:
            done = _failed(sheet.label, error)
        report.sheets.append(done)
        if left is not None:  # max_spend bounds the whole pass, over every sheet
            left = max(Decimal(0), left - sum((s.estimated for s in done.spend.values()), Decimal(0)))
    if options.stopping and options.stop is not None:
        report.stopped_by = getattr(options.stop, "signum", None) or signal.SIGINT
    return report


def _failed(sheet: str, error: SheetordersError) -> PassReport:
    return PassReport(sheet=sheet, failure=error)


def sync_every(
    config: Config,
    interval: float,
    on_pass: Callable[[RunReport], None],
    stop: StopSignal,
    *,
    wait: bool = False,
    factory: ClientFactory | None = None,
    max_passes: int | None = None,
    options: PassOptions | None = None,
) -> RunReport:
    """Repeat the pass over every sheet every `interval` seconds until `stop` is set; return the
    last report.

    The journal is locked for the life of the loop. A sheet or panel in trouble is reported in
    that pass's report and tried again the next pass. A stop request ends the loop: during a
    pass, nothing new is sent and what was placed is written back.
    """
    _require_sheets(config)
    last = RunReport()
    passes = 0
    each_pass = replace(options or PassOptions(), stop=stop, wait=wait)
    with Panels(config, factory) as panels, _journal(config, wait) as journal:
        while not stop.is_set():
            started = time.monotonic()
            last = _pass_over_sheets(config, journal, panels, each_pass)
            on_pass(last)
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
            _wait(stop, max(0.0, interval - (time.monotonic() - started)))
    return last


def _wait(stop: StopSignal, seconds: float) -> None:
    wait = getattr(stop, "wait", None)
    if wait is not None:
        wait(seconds)
    else:
        time.sleep(seconds)
