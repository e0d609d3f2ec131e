"""Every exit status of sheetorders, decided here and nowhere else."""

from __future__ import annotations

import signal

from sheetorders.errors import ExitCode, SheetordersError
from sheetorders.report import PassReport, RunReport


def exit_code_of(outcome: BaseException | PassReport | RunReport | None) -> ExitCode:
    """The exit status for an error, one sheet's report, or a report over several sheets.

    A report ends with its most serious part: a failure of ours or of a panel (2, 3) over
    rows that failed (1) over success (0); the same failure gives the same code whether the
    config has one sheet or many.
    """
    if outcome is None:
        return ExitCode.OK
    if isinstance(outcome, BaseException):
        return _error_code(outcome)
    if isinstance(outcome, RunReport):
        if outcome.stopped_by is not None:
            return ExitCode.TERMINATED if outcome.stopped_by == signal.SIGTERM else ExitCode.INTERRUPTED
        return max((exit_code_of(sheet) for sheet in outcome.sheets), default=ExitCode.OK)
    rows = ExitCode.ROWS_FAILED if outcome.failed and not outcome.declined else ExitCode.OK
    return max(outcome.worst, outcome.error_code, rows)


def _error_code(error: BaseException) -> ExitCode:
    if isinstance(error, SheetordersError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    import click

    if isinstance(error, click.exceptions.Abort):
        return ExitCode.INTERRUPTED
    if isinstance(error, (click.ClickException, OSError)):
        return ExitCode.USAGE  # a bad command line, or a folder or file the command needs
    return ExitCode.ROWS_FAILED
