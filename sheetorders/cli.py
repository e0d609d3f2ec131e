"""The command line: parses options, calls sheetorders.app, prints. Library errors become
one-line CLI errors here and nowhere else."""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sheetorders import __version__, app
from sheetorders.budget import utc_clock
from sheetorders.config import Config, find_config, load_config
from sheetorders.errors import ExitCode, JournalError, PanelError, SheetordersError
from sheetorders.exits import exit_code_of
from sheetorders.history import GROUPS
from sheetorders.history import as_csv as history_csv
from sheetorders.history import summary as history_summary
from sheetorders.journal import Journal
from sheetorders.journal_check import SheetCheck, check_sheets
from sheetorders.ledger import JournalCheck
from sheetorders.models import ItemError, money
from sheetorders.notify import notifier_for
from sheetorders.pipeline import PassOptions
from sheetorders.plan import Proposal
from sheetorders.report import PassReport, RunReport
from sheetorders.stopping import StopRequest, stop_on_signals

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


# --- options every command accepts, before or after the command name -------------


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        root = ctx.find_root()
        root.meta.setdefault("sheetorders", {})
        if value or name not in root.meta["sheetorders"]:
            root.meta["sheetorders"][name] = value
        return value

    return callback


def _common_params() -> list[click.Parameter]:
    return [
        click.Option(
            ["-c", "--config"],
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_remember("config"),
            help="Config file (default: ./sheetorders.yaml, else $SHEETORDERS_CONFIG).",
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_remember("verbose"),
            help="Say more.",
        ),
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            callback=_remember("debug"),
            help="Show debug logs and tracebacks.",
        ),
    ]


def _settings() -> dict[str, Any]:
    settings: dict[str, Any] = click.get_current_context().find_root().meta.get("sheetorders", {})
    return settings


def _config(sheet: str | None = None) -> Config:
    config = load_config(find_config(_settings().get("config")))
    return config.with_sheet_source(sheet) if sheet else config


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record is emitted (a test runner may swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextmanager
def _logging() -> Iterator[None]:
    """Log to stderr at the level -v/--debug ask for, for the time of one command."""
    settings = _settings()
    level = (
        logging.DEBUG
        if settings.get("debug")
        else logging.INFO
        if settings.get("verbose")
        else logging.WARNING
    )
    handler = _StderrHandler()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, level) if previous else level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _error(message: object) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=True)


def _print_traceback() -> None:
    """The current exception's traceback; third-party frames without their source (which rich
    would highlight slowly, and which rarely tell what went wrong)."""
    import tenacity

    err_console.print_exception(suppress=[click, tenacity])


class SheetordersCommand(click.Command):
    """Every command: takes the common options; the one place where errors become a message and
    an exit code (`exits.exit_code_of`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_common_params())

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(_settings().get("debug"))
        with _logging():
            try:
                return super().invoke(ctx)
            except SheetordersError as error:
                if debug:
                    _print_traceback()
                _error(error)
                sys.exit(int(exit_code_of(error)))
            except OSError as error:  # a folder or file the command needs (--dir, the journal...)
                if debug:
                    _print_traceback()
                where = f": {error.filename}" if error.filename else ""
                _error(f"{error.strerror or error}{where}")
                sys.exit(int(exit_code_of(error)))
            except (KeyboardInterrupt, click.exceptions.Abort) as error:  # Abort: Ctrl-C at a question
                err_console.print("interrupted")
                sys.exit(int(exit_code_of(error)))


class OrderedGroup(click.Group):
    command_class = SheetordersCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_common_params())

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=OrderedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sheetorders")
def cli() -> None:
    """Place SMM panel orders from a spreadsheet and keep the sheet up to date.

    Start with `sheetorders demo` (no account needed), then write a sheetorders.yaml
    (see config.example.yaml) and use `sheetorders run`.
    """


# --- panels ---------------------------------------------------------------------------


def _panel_failures(results: dict[str, Any]) -> ExitCode:
    code = ExitCode.OK
    for result in results.values():
        if isinstance(result, PanelError):
            _error(result)
            code = max(code, exit_code_of(result))
    return ExitCode(code)


@cli.command()
@click.option("--panel", help="Only this panel (a name from the config).")
@click.option("--search", help="Only services whose id, name, category or type contains this text.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def services(panel: str | None, search: str | None, as_json: bool) -> None:
    """The panels' service catalogs."""
    results = app.list_services(_config(), panel, search)
    if as_json:
        data = {
            name: [_service_dict(s) for s in result]
            if not isinstance(result, PanelError)
            else {"error": str(result)}
            for name, result in results.items()
        }
        click.echo(json.dumps(data, indent=2))
    else:
        for name, result in results.items():
            if isinstance(result, PanelError):
                continue
            console.print(f"[bold]{escape(f'panel {name}: {len(result)} services')}[/]")
            table = Table()
            for column in ("id", "name", "type", "rate /1000", "min", "max", "refill", "cancel"):
                table.add_column(
                    column, justify="right" if column in ("id", "rate /1000", "min", "max") else "left"
                )
            for s in result:
                table.add_row(
                    *map(escape, (s.id, s.name, s.type, str(s.rate))),
                    str(s.min),
                    str(s.max),
                    _yes(s.refill),
                    _yes(s.cancel),
                )
            console.print(table)
    sys.exit(int(_panel_failures(results)))


def _service_dict(service: Any) -> dict[str, Any]:
    return {
        "id": service.id,
        "name": service.name,
        "type": service.type,
        "category": service.category,
        "rate": str(service.rate),
        "min": service.min,
        "max": service.max,
        "refill": service.refill,
        "cancel": service.cancel,
        "dripfeed": service.dripfeed,
    }


def _yes(flag: bool | None) -> str:
    return "yes" if flag else "-" if flag is None else "no"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def balance(as_json: bool) -> None:
    """The balance of every configured panel."""
    results = app.get_balances(_config())
    if as_json:
        click.echo(
            json.dumps(
                {
                    name: {"balance": str(r.balance), "currency": r.currency}
                    if not isinstance(r, PanelError)
                    else {"error": str(r)}
                    for name, r in results.items()
                },
                indent=2,
            )
        )
    else:
        table = Table("panel", "balance", "currency")
        for name, result in results.items():
            if not isinstance(result, PanelError):
                table.add_row(escape(name), str(result.balance), escape(result.currency))
        if table.row_count:
            console.print(table)
    sys.exit(int(_panel_failures(results)))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def budget(as_json: bool) -> None:
    """Each budget of the config: what is spent in the current day or month, and what is left."""
    limits = app.budget_status(_config())
    if as_json:
        click.echo(json.dumps([limit.as_dict() for limit in limits], indent=2))
        return
    if not limits:
        console.print("no budget in the config (see budget: in config.example.yaml)")
        return
    table = Table("budget", "allowed", "spent", "left", "since")
    for limit in limits:
        row = limit.as_dict()
        table.add_row(escape(row["limit"]), row["allowed"], row["spent"], row["left"], row["since"][:16])
    console.print(table)


@cli.command()
@click.option(
    "--since", default="30d", show_default=True, help="From: 7d, 12h, 2w, or a date like 2026-11-01."
)
@click.option("--until", help="Until (not included): the same forms.")
@click.option("--sheet", help="Only this sheet (its name, or its file and tab as listed).")
@click.option("--panel", help="Only this panel.")
@click.option("--status", help="Only orders with this status (Completed, Partial, Uncertain...).")
@click.option("--summary", is_flag=True, help="Spend per day (or --by) with totals, instead of the orders.")
@click.option(
    "--by", type=click.Choice(GROUPS), default="day", show_default=True, help="What --summary sums by."
)
@click.option("--json", "as_json", is_flag=True, help="JSON: one object per order (or line).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, for a spreadsheet.")
def history(
    since: str,
    until: str | None,
    sheet: str | None,
    panel: str | None,
    status: str | None,
    summary: bool,
    by: str,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Every order the journal placed and what it cost: when, sheet, panel, service, link, quantity."""
    orders = app.order_history(_config(), since=since, until=until, sheet=sheet, panel=panel, status=status)
    rows = history_summary(orders, by) if summary else [order.as_dict() for order in orders]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif as_csv:
        click.echo(history_csv(orders) if not summary else _csv(rows), nl=False)
    else:
        table = Table(*(rows[0] if rows else ["orders"]))
        for row in rows:
            table.add_row(*(escape("" if value is None else str(value)) for value in row.values()))
        console.print(table)


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["group"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--probe-on", metavar="PANEL", help="Turn the order-ID search on again for this panel.")
def uncertain(as_json: bool, probe_on: str | None) -> None:
    """Orders that may or may not have been placed, left for a person: what the order-ID search
    found of each (candidate IDs), and the panels it is off for."""
    found = app.uncertain_orders(_config(), probe_on=probe_on)
    rows = [
        {
            "sent_at": entry.sent_at,
            "sheet": entry.sheet,
            "row": entry.row_number,
            "ref": entry.ref,
            "panel": entry.panel,
            "service": entry.service,
            "link": entry.link,
            "estimate": entry.estimated_cost,
            "found": entry.probe_note or entry.error,
        }
        for entry in found.entries
    ]
    if as_json:
        click.echo(json.dumps({"uncertain": rows, "search_off": found.search_off}, indent=2))
        return
    if not rows:
        console.print("No uncertain orders: every order sent is settled.")
    else:
        table = Table(*rows[0])
        for row in rows:
            table.add_row(*(escape("" if value is None else str(value)) for value in row.values()))
        console.print(table)
    for panel, why in found.search_off.items():
        console.print(f"  [yellow]![/] the order-ID search is off for panel {escape(panel)}: {escape(why)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--no-sheets", is_flag=True, help="Check the journal alone: do not read the sheets.")
def doctor(as_json: bool, no_sheets: bool) -> None:
    """Check the journal: SQLite's integrity check, what its entries say needs a person, whether the
    sheets show the orders it placed (exit 1 when not); and compact it (finished entries of over
    30 days whose results the sheets show; never an order's record), giving the space freed back
    to the file system."""
    config = _config()
    vacuumed: tuple[int, int] | None = None
    with Journal(config.journal) as journal:
        found = journal.ledger.check()
        compacted = journal.ledger.compact_if_due(utc_clock(), force=True) if found.sound else None
        if found.sound:
            try:
                vacuumed = journal.ledger.vacuum()
            except JournalError as error:  # another process busy with it, mostly: try again later
                err_console.print(f"  [yellow]![/] the journal's file was not shrunk: {escape(str(error))}")
        sheets = [] if no_sheets or not found.sound else check_sheets(config, journal)
    if as_json:
        report = {**found.__dict__, "sound": found.sound, "sheets": [sheet.as_dict() for sheet in sheets]}
        report["compacted"] = compacted and compacted.__dict__
        report["file_bytes"] = vacuumed and {"before": vacuumed[0], "after": vacuumed[1]}
        click.echo(json.dumps(report, indent=2))
    else:
        _print_journal_check(str(config.journal), found)
        if compacted is not None:
            console.print(f"  {escape(str(compacted))}")
        if vacuumed is not None:
            console.print(f"  the journal's file: {vacuumed[0]:,} bytes before, {vacuumed[1]:,} now")
        _print_sheet_checks(sheets)
    disagree = any(sheet.disagreements for sheet in sheets)
    sys.exit(int(ExitCode.USAGE if not found.sound else ExitCode.ROWS_FAILED if disagree else ExitCode.OK))


def _print_journal_check(path: str, found: JournalCheck) -> None:
    console.print(f"journal {escape(path)}: " + ("sound" if found.sound else "DAMAGED"))
    for line in found.integrity if not found.sound else []:
        console.print(f"  {escape(line)}")
    console.print(
        "  entries: " + (", ".join(f"{n} {state}" for state, n in sorted(found.states.items())) or "none")
    )
    console.print(f"  placed, not yet in the sheet: {found.unwritten} (the next pass writes them)")
    for line in found.unresolved:
        console.print(f"  [yellow]![/] may exist: {escape(line)}", soft_wrap=True)


def _print_sheet_checks(sheets: list[SheetCheck]) -> None:
    for sheet in sheets:
        if sheet.error is not None:
            console.print(f"sheet {escape(sheet.sheet)}: not checked: {escape(sheet.error)}", soft_wrap=True)
            continue
        agree = "agrees with the journal" if not sheet.disagreements else "DISAGREES with the journal"
        console.print(f"sheet {escape(sheet.sheet)}: {agree}")
        for line in sheet.disagreements:
            console.print(f"  [yellow]![/] {escape(line)}", soft_wrap=True)


# --- run and sync -----------------------------------------------------------------------


class Amount(click.ParamType):  # type: ignore[type-arg]
    """A sum of money: zero or more."""

    name = "amount"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount; use e.g. 25 or 12.50", param, ctx)
        if amount < 0 or not amount.is_finite():
            self.fail(f"{value!r} must be zero or more", param, ctx)
        return amount


class Interval(click.ParamType):  # type: ignore[type-arg]
    """`30s`, `10m`, `1h` (or plain seconds) as seconds."""

    name = "interval"
    units: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        text = str(value).strip().lower()
        try:
            seconds = (
                float(text[:-1]) * self.units[text[-1]] if text and text[-1] in self.units else float(text)
            )
        except ValueError:
            self.fail(f"{text!r} is not an interval; use e.g. 30s, 10m or 1h", param, ctx)
        if seconds <= 0:
            self.fail(f"{text!r} must be more than zero", param, ctx)
        return seconds


def _pass_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a pass, the same for `run` and `sync`; the command gets them as `options`
    (a PassOptions), besides `wait` and `as_json`."""

    @functools.wraps(command)
    def with_options(
        *args: Any, dry_run: bool, max_spend: Decimal | None, take_over: bool, yes: bool, **kwargs: Any
    ) -> Any:
        options = PassOptions(dry_run=dry_run, max_spend=max_spend, take_over=take_over)
        return command(*args, options=options, ask=not yes, **kwargs)

    options = [
        click.option(
            "--dry-run", is_flag=True, help="Validate and price every row; place nothing, write nothing."
        ),
        click.option(
            "--max-spend", type=Amount(), help="Leave rows for later before this pass's spend exceeds N."
        ),
        click.option("--wait", is_flag=True, help="If another sheetorders works on this sheet, wait for it."),
        click.option(
            "-y", "--yes", is_flag=True, help="Do not ask before placing orders (on a terminal it asks)."
        ),
        click.option(
            "--take-over",
            is_flag=True,
            help="Move a sheet that another journal tracks to this one (its refs then count as unknown).",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print the summary as JSON (one line per pass)."
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            help="Print nothing when a pass had no problem (for cron: mail on trouble).",
        ),
        click.option(
            "--log-file",
            type=click.Path(dir_okay=False),
            help="Also append each pass's line to this file (rotated by size).",
        ),
    ]
    for option in reversed(options):
        with_options = option(with_options)
    return with_options


@cli.command()
@click.option(
    "--sheet", help="The sheet to use instead of the config's (a path, URL, or a configured sheet name)."
)
@_pass_options
def run(
    sheet: str | None,
    options: PassOptions,
    ask: bool,
    wait: bool,
    as_json: bool,
    quiet: bool,
    log_file: str | None,
) -> None:
    """Validate the sheet's rows, place the new orders, write results back."""
    _one_pass(_config(sheet), options, wait, as_json, ask, _Output(as_json, quiet, log_file))


class _Output:
    """Where a pass's outcome goes: the terminal (or nothing, when quiet and all went well), and
    a log file of one line per sheet and pass."""

    def __init__(self, as_json: bool, quiet: bool, log_file: str | None) -> None:
        self.as_json, self.quiet = as_json, quiet
        self.log: logging.Logger | None = None
        if log_file:
            self.log = logging.getLogger(f"sheetorders.passes.{log_file}")
            self.log.propagate = False
            if not self.log.handlers:
                handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=1_000_000, backupCount=3)
                handler.setFormatter(logging.Formatter("%(message)s"))
                self.log.addHandler(handler)
            self.log.setLevel(logging.INFO)

    def silent(self, report: RunReport) -> bool:
        return self.quiet and exit_code_of(report) == ExitCode.OK

    def logged(self, report: RunReport) -> None:
        if self.log is not None:
            for sheet in report.sheets:
                self.log.info(json.dumps(sheet.as_dict()) if self.as_json else _one_line(sheet))


def _one_pass(
    config: Config,
    options: PassOptions,
    wait: bool,
    as_json: bool,
    ask: bool = True,
    output: _Output | None = None,
) -> None:
    """One pass over every sheet; the first Ctrl-C or SIGTERM stops sending, the second stops at once.

    Where a person is there to answer (a terminal), it shows what it is about to spend and asks
    first, unless told not to (-y, `confirm: false`)."""
    stop = StopRequest()
    if ask and config.confirm and not options.dry_run and sys.stdin.isatty() and err_console.is_terminal:
        options = replace(options, confirm=lambda proposal: _ask_before_placing(proposal, stop))

    def on_first(signum: int) -> None:
        err_console.print(
            "stopping: nothing new is sent; writing back what was placed… (again to stop at once)"
        )

    with stop_on_signals(stop, on_first):
        options = replace(options, stop=stop)
        output = output or _Output(as_json, False, None)
        report = _with_progress(
            as_json or output.quiet,
            lambda progress: app.run_sheets(config, replace(options, on_progress=progress), wait=wait),
        )
    output.logged(report)
    notifier = notifier_for(config)
    if notifier is not None:
        notifier.after_pass(report)
    if not output.silent(report):
        _print_report(report, as_json)
    if report.stopped_by is not None:
        placed = sum(sheet.ordered for sheet in report.sheets)
        left = sum(sheet.not_sent for sheet in report.sheets)
        err_console.print(
            f"stopped: {placed} order(s) placed and written back, {left} not sent; a later run continues"
        )
    sys.exit(int(exit_code_of(report)))


def _ask_before_placing(proposal: Proposal, stop: StopRequest) -> bool:
    """Show what a pass is about to spend; `y` or `yes` places it, anything else (or a stop
    asked for meanwhile) nothing."""
    table = Table("panel", "orders", "estimated", "balance after", title=f"about to order: {proposal.sheet}")
    for panel, count in proposal.orders.items():
        after = proposal.balance_after.get(panel)
        currency = proposal.currency.get(panel, "")
        table.add_row(
            escape(panel),
            str(count),
            f"{money(proposal.estimated.get(panel, Decimal(0)))} {escape(currency)}",
            "?" if after is None else f"{money(after)} {escape(currency)}",
        )
    err_console.print(table)
    question = f"Place these {proposal.total_orders} order(s)? [y/N]"
    if os.name != "posix":
        return _answered_yes(click.prompt(question, default="", show_default=False, err=True))
    click.echo(f"{question}: ", nl=False, err=True)
    # Waiting in short steps, not in one blocking read: a signal that comes while the read is
    # starting would otherwise be handled only once the person presses Enter.
    while not stop.is_set():
        if select.select([sys.stdin], [], [], 0.1)[0]:
            return _answered_yes(sys.stdin.readline())
    return False


def _answered_yes(answer: object) -> bool:
    return str(answer).strip().lower() in ("y", "yes")


def _with_progress(quiet: bool, job: Callable[[Callable[[int, int], None] | None], RunReport]) -> RunReport:
    """The job, with a progress bar on a terminal once orders start going out (not before: the
    pass may ask a question first)."""
    if quiet or not err_console.is_terminal:
        return job(None)
    progress = Progress(
        TextColumn("placing orders"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )
    task = progress.add_task("orders", total=None)

    def update(done: int, total: int) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=done, total=total)

    try:
        return job(update)
    finally:
        progress.stop()


@cli.command()
@click.option("--sheet", help="Only this sheet (a configured sheet name or source, or a path).")
@click.option("--every", type=Interval(), help="Repeat the pass forever at this interval: 30s, 10m, 1h.")
@_pass_options
def sync(
    sheet: str | None,
    every: float | None,
    options: PassOptions,
    ask: bool,
    wait: bool,
    as_json: bool,
    quiet: bool,
    log_file: str | None,
) -> None:
    """Place ready rows, refresh open orders, send refills and cancels; once or on a schedule."""
    config = _config(sheet)
    output = _Output(as_json, quiet, log_file)
    if every is None:
        _one_pass(config, options, wait, as_json, ask, output)
        return

    def on_first(signum: int) -> None:
        err_console.print("stopping after the current pass has written… (again to stop at once)")

    notifier = notifier_for(config)

    def on_pass(report: RunReport) -> None:
        output.logged(report)
        if notifier is not None:
            notifier.after_pass(report)
        if output.silent(report):
            return
        if as_json:
            click.echo(json.dumps(report.as_dict()))
        else:
            for sheet_report in report.sheets:
                console.print(escape(_one_line(sheet_report)), soft_wrap=True)
        sys.stdout.flush()

    with stop_on_signals(StopRequest(), on_first) as stop:
        try:
            app.sync_every(config, every, on_pass, stop, wait=wait, options=options)
        except SheetordersError as error:
            if notifier is not None:
                notifier.stopped(str(error))
            raise
    err_console.print("sync stopped")  # as asked: each pass's own outcome was on its line


def _one_line(report: PassReport) -> str:
    """One pass over one sheet in a line: what was placed and what it cost, what was refreshed and
    sent, the first problem rows, the balance left per panel."""
    from datetime import datetime

    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if report.error:
        return f"{stamp} {report.sheet}: error: {report.error}"
    if report.unchanged:
        return f"{stamp} {report.sheet}: unchanged, nothing to do"
    cost = ", ".join(f"{money(s.actual or s.estimated)} {s.currency}".strip() for s in report.spend.values())
    parts = [
        f"{report.ordered} ordered" + (f" ({cost})" if report.ordered and cost else ""),
        f"{report.refreshed} refreshed",
        f"{report.refills} refills",
        f"{report.cancels} cancels",
    ]
    counts = [
        f"{count} {name}"
        for name, count in (
            ("invalid", report.invalid),
            ("rejected", report.rejected),
            ("uncertain", report.uncertain),
            ("found by the order-ID search", report.found),
            ("proven never made, placed again", report.proven_absent),
            ("still uncertain", report.still_uncertain),
            ("held", report.held_back),
            ("waiting", report.waiting),
        )
        if count
    ]
    line = f"{stamp} {report.sheet}: " + ", ".join(parts + counts)
    if report.problems:
        shown = "; ".join(report.problems[:3])
        more = f" (+{len(report.problems) - 3} more)" if len(report.problems) > 3 else ""
        line += f"; problems: {shown}{more}"
    line += "".join(f"; panel {name} unreachable" for name in report.unreachable)
    line += "".join(f"; {message}" for message in report.panel_errors.values())
    balances = ", ".join(
        f"{name} {money(report.balance_left(name) or b.balance)} {b.currency}"
        for name, b in report.balances.items()
    )
    return line + (f"; balance {balances}" if balances else "")


def _print_report(report: RunReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for sheet_report in report.sheets:
        if sheet_report.error:
            several = len(report.sheets) > 1
            _error(f"{sheet_report.sheet}: {sheet_report.error}" if several else sheet_report.error)
            continue
        _print_sheet_report(sheet_report)


def _print_sheet_report(report: PassReport) -> None:
    if report.unchanged:
        console.print(f"{escape(report.sheet)}: unchanged since the last pass, nothing to do", soft_wrap=True)
        return
    title = f"{report.sheet}" + (" (dry run: nothing placed)" if report.dry_run else "")
    console.print(f"[bold]{escape(title)}[/]", soft_wrap=True)  # a long path would squeeze a table title
    table = Table(show_header=True)
    table.add_column("")
    table.add_column("rows", justify="right")
    counts = [
        (
            "would order" if report.dry_run else "ordered",
            len(report.would_order) if report.dry_run else report.ordered,
        ),
        ("invalid", report.invalid),
        ("rejected", report.rejected),
        ("uncertain", report.uncertain),
        ("uncertain settled: found by the order-ID search", report.found),
        ("uncertain settled: proven never made, placed again", report.proven_absent),
        ("still uncertain", report.still_uncertain),
        ("waiting", report.waiting),
        ("left for later", report.held_back),
        ("recovered from journal", report.recovered),
        ("statuses refreshed", report.refreshed),
        ("refills sent", report.refills),
        ("cancels sent", report.cancels),
    ]
    for label, value in counts:
        if value or label in ("ordered", "would order", "invalid", "rejected", "uncertain", "waiting"):
            table.add_row(label, str(value))
    console.print(table)
    _print_spend(report)
    for problem in report.problems:
        console.print(f"  [yellow]![/] {escape(problem)}", soft_wrap=True)
    for notice in report.notices:
        console.print(f"  [cyan]i[/] {escape(notice)}", soft_wrap=True)
    for message in (*report.unreachable.values(), *report.panel_errors.values()):
        _error(message)


def _print_spend(report: PassReport) -> None:
    if report.spend:
        spend = Table("panel", "estimated", "actual", "currency", title="spend", title_justify="left")
        for panel, s in report.spend.items():
            actual = "-" if report.dry_run else money(s.actual)
            spend.add_row(escape(panel), money(s.estimated), actual, escape(s.currency))
        console.print(spend)
    if report.dry_run and report.would_order:
        orders = Table("row", "panel", "service", "quantity", "estimated cost", title="would order")
        for request in report.would_order:
            orders.add_row(
                str(request.row),
                escape(request.panel),
                escape(f"{request.service.id} {request.service.name}"),
                "" if request.quantity is None else str(request.quantity),
                money(request.estimated_cost),
            )
        console.print(orders)


# --- one-shot commands ------------------------------------------------------------------


def _order_ids(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """IDs as separate arguments or comma-separated (`status 101 102` = `status 101,102`)."""
    ids = [part.strip() for value in values for part in value.split(",")]
    if not any(ids) or not all(ids):
        raise click.BadParameter("give order IDs like 10001 or 10001,10002 (an ID cannot be empty)")
    return tuple(dict.fromkeys(ids))


def _one_shot_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
    command = click.option("--panel", help="The panel (default: the first configured).")(command)
    command = click.argument("order_ids", nargs=-1, required=True, callback=_order_ids)(command)
    return command


def _print_items(results: dict[str, Any], as_json: bool, describe: Callable[[Any], dict[str, Any]]) -> None:
    """One line per ID: the answer, or the panel's error for it (then exit 1)."""
    data = {
        key: {"error": value.message} if isinstance(value, ItemError) else describe(value)
        for key, value in results.items()
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        columns = sorted({column for row in data.values() for column in row}, key=lambda c: (c == "error", c))
        table = Table("id", *columns)
        for key, row in data.items():
            cells = ["" if row.get(c) is None else str(row[c]) for c in columns]
            table.add_row(escape(key), *map(escape, cells))
        console.print(table)
    if any("error" in row for row in data.values()):
        sys.exit(int(ExitCode.ROWS_FAILED))


@cli.command()
@_one_shot_options
def status(order_ids: tuple[str, ...], panel: str | None, as_json: bool) -> None:
    """The status of orders, by ID."""
    results = app.order_statuses(_config(), order_ids, panel)
    _print_items(
        results,
        as_json,
        lambda s: {
            "status": s.status,
            "charge": str(s.charge) if s.charge is not None else None,
            "start_count": s.start_count,
            "remains": s.remains,
            "currency": s.currency,
        },
    )


@cli.command()
@_one_shot_options
def refill(order_ids: tuple[str, ...], panel: str | None, as_json: bool) -> None:
    """Ask for a refill of orders, by ID."""
    _print_items(app.request_refills(_config(), order_ids, panel), as_json, lambda r: {"refill_id": r})


@cli.command()
@_one_shot_options
def cancel(order_ids: tuple[str, ...], panel: str | None, as_json: bool) -> None:
    """Ask the panel to cancel orders, by ID."""
    _print_items(
        app.request_cancels(_config(), order_ids, panel),
        as_json,
        lambda ok: {"cancel": "requested"} if ok else {"error": "the panel did not accept the cancel"},
    )


# --- init and template ----------------------------------------------------------------------


def _ask(label: str, check: Callable[[str], str], default: str | None = None) -> str:
    """Ask on the terminal until the answer passes `check` (which raises SheetordersError)."""

    def value(text: str) -> str:
        try:
            return check(text)
        except SheetordersError as error:
            raise click.UsageError(str(error)) from None

    answer: str = click.prompt(label, default=default, value_proc=value)
    return answer


@cli.command()
@click.option("--url", help="The panel's API URL, like https://smmkings.com/api/v2.")
@click.option(
    "--key-env", metavar="NAME", help="The NAME of the environment variable that holds the panel's API key."
)
@click.option("--sheet", help="The order sheet: an .xlsx path or a Google Sheets URL (default orders.xlsx).")
def init(url: str | None, key_env: str | None, sheet: str | None) -> None:
    """Write a commented sheetorders.yaml for your panel (asked on a terminal, or given as options)."""
    import os

    from sheetorders import init as setup
    from sheetorders.errors import UsageError

    path = Path(_settings().get("config") or "sheetorders.yaml")
    setup.refuse_existing(path)
    asking = sys.stdin.isatty()
    if not asking and (url is None or key_env is None):
        raise UsageError("give --url and --key-env (on a terminal, sheetorders init asks for them)")
    url = setup.check_url(url) if url is not None else _ask("Panel API URL", setup.check_url)
    if key_env is not None:
        key_env = setup.check_key_env(key_env)
    else:
        label = "Name of the environment variable that holds the API key"
        key_env = _ask(label, setup.check_key_env, setup.suggested_key_env(url))
    if sheet is not None:
        sheet = setup.check_sheet(sheet)
    else:
        label = "Order sheet (.xlsx path or Google Sheets URL)"
        sheet = _ask(label, setup.check_sheet, setup.DEFAULT_SHEET) if asking else setup.DEFAULT_SHEET
    answers = setup.InitAnswers(url, key_env, sheet)
    setup.write_new(path, setup.render_config(answers))
    for line in setup.next_steps(path, answers, os.environ):
        console.print(escape(line), soft_wrap=True)


@cli.command()
@click.argument("out", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--google",
    "google_sheet",
    metavar="URL_OR_KEY",
    help="Set up this Google spreadsheet (shared with the config's Google account) instead of a file.",
)
@click.option("--panel", help="Only this panel's services (a name from the config).")
@click.option("--category", help="Only services whose category contains this text.")
@click.option("--type", "service_type", metavar="TYPE", help="Only services of this type, like Default.")
@click.option("--all-columns", is_flag=True, help="Every order column, not only those the services take.")
@click.option(
    "--rows",
    type=click.IntRange(1, 50_000),
    default=1000,
    show_default=True,
    help="Rows prepared with the estimate formula, dropdowns and status colours.",
)
def template(
    out: str | None,
    google_sheet: str | None,
    panel: str | None,
    category: str | None,
    service_type: str | None,
    all_columns: bool,
    rows: int,
) -> None:
    """Build an order sheet (OUT.xlsx, or --google) from the panels' live catalogs."""
    import shlex

    from sheetorders import template as layouts
    from sheetorders.errors import UsageError

    if (out is None) == (google_sheet is None):
        raise UsageError("give either OUT.xlsx or --google URL_OR_KEY")
    if out is not None and not out.lower().endswith(".xlsx"):
        raise UsageError(f"{out}: the template is an Excel workbook; give a name ending in .xlsx")
    if out is not None and Path(out).exists():
        raise UsageError(f"{out} already exists: it was left as it is; give another name")
    config = _config()
    source = out or str(google_sheet)
    layout = layouts.layout_from_config(
        config,
        panel=panel,
        category=category,
        service_type=service_type,
        all_columns=all_columns,
        rows=rows,
        source=source,
    )
    if out is not None:
        from sheetorders.template_xlsx import write_template

        where = str(write_template(Path(out), layout))
    else:
        from sheetorders.template_google import write_google_template

        where = f"Google spreadsheet {write_google_template(source, config.google, layout).key}"
    given = _settings().get("config")
    run = "sheetorders" + (f" -c {shlex.quote(str(given))}" if given else "") + " run --dry-run"
    if not layouts.is_configured_sheet(config, source):
        run += f" --sheet {shlex.quote(source)}"
    for line in layouts.summary(layout, where, run):
        console.print(escape(line), soft_wrap=True)


# --- demo -----------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--dir", "folder", type=click.Path(file_okay=False), default=".", help="Where to write the demo files."
)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the demo panel running afterwards, with a config for it, to try the other commands.",
)
def demo(folder: str, serve: bool) -> None:
    """Run the whole job on an example sheet against a built-in local panel (no account needed)."""
    from sheetorders.demo import demo_session

    def say(text: str) -> None:
        console.print(escape(text), soft_wrap=True)

    with demo_session(Path(folder), on_step=say, serve=serve) as report:
        _print_report(report.run, as_json=False)
        say(report.closing)
        if report.config is not None:
            say(
                f"\nThe demo panel keeps running. In another terminal, try:\n"
                f"  sheetorders -c {report.config} services\n"
                f"  sheetorders -c {report.config} balance\n"
                f"  sheetorders -c {report.config} sync      (statuses move on: 1 s here is 1 minute there)\n"
                "Ctrl-C stops it."
            )
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            while not stop.wait(0.5):
                pass


def main() -> None:
    cli(prog_name="sheetorders")


if __name__ == "__main__":
    main()
