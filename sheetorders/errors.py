"""The one exception tree of sheetorders, and the exit codes the CLI maps it to.

Every error the library raises on purpose derives from `SheetordersError` and
carries the `ExitCode` the CLI should end with. Messages are one line, specific,
and never contain an API key.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ROWS_FAILED = 1  # the job ran, but some rows or orders failed
    USAGE = 2  # bad command line or bad config
    PANEL_UNREACHABLE = 3  # a panel (or Google Sheets) could not be reached, or did not answer properly
    INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT)
    TERMINATED = 143  # stopped by SIGTERM


class SheetordersError(Exception):
    exit_code: ExitCode = ExitCode.ROWS_FAILED


class ConfigError(SheetordersError):
    """The config file is missing, unreadable, or does not match the schema."""

    exit_code = ExitCode.USAGE


class Terminated(SheetordersError):
    """A second SIGTERM: stop at once."""

    exit_code = ExitCode.TERMINATED


class UsageError(SheetordersError):
    """The command was asked for something that cannot be done (unknown panel name...)."""

    exit_code = ExitCode.USAGE


# --- panel -----------------------------------------------------------------


class PanelError(SheetordersError):
    """Base of everything that went wrong talking to a panel."""

    def __init__(self, message: str, *, panel: str = "", action: str = "") -> None:
        self.panel = panel
        self.action = action
        self.message = message
        prefix = f"panel {panel!r}: " if panel else ""
        where = f"{action}: " if action else ""
        super().__init__(f"{prefix}{where}{message}")


class PanelRefused(PanelError):
    """The panel answered and said no. `message` is the panel's own words, verbatim."""


class InvalidKey(PanelRefused):
    """The panel does not accept the API key: a config problem, not a row's."""

    exit_code = ExitCode.USAGE


class NotEnoughFunds(PanelRefused):
    """The panel refused because the balance is too low."""


class ActiveOrderExists(PanelRefused):
    """The panel refused because an order for the same link and service is still running."""


class PanelUnavailable(PanelError):
    """The panel could not be reached, or did not answer with JSON (5xx, HTML, empty body)."""

    exit_code = ExitCode.PANEL_UNREACHABLE

    def __init__(self, message: str, *, panel: str = "", action: str = "", snippet: str = "") -> None:
        self.snippet = snippet
        if snippet:
            message = f"{message} (got: {snippet})"
        super().__init__(message, panel=panel, action=action)


class RateLimited(PanelUnavailable):
    """HTTP 429. `retry_after` is the server's Retry-After in seconds, when it gave one."""

    def __init__(
        self, message: str, *, panel: str = "", action: str = "", retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, panel=panel, action=action)


class AmbiguousOrder(PanelError):
    """An `add` (or `refill`/`cancel`) may have reached the panel: it may have taken effect.

    Never retried automatically: the caller records the row as uncertain. `lingers`: nothing
    shows the panel was done with the request when this was raised (no answer of its own: a
    timeout, a reset or dropped connection, a proxy's page), so it may still make the order.
    """

    def __init__(self, message: str, *, panel: str = "", action: str = "", lingers: bool = False) -> None:
        self.lingers = lingers
        super().__init__(message, panel=panel, action=action)


# --- sheets ----------------------------------------------------------------


class SheetError(SheetordersError):
    """The order sheet cannot be opened, read or written."""

    exit_code = ExitCode.USAGE


class SheetUnavailable(SheetError):
    """The sheet's service could not be reached, or kept answering "busy" (Google's 429/5xx)."""

    exit_code = ExitCode.PANEL_UNREACHABLE


class SheetLocked(SheetError):
    """The workbook is open in another program (Excel's `~$` lock file) or another sync holds it."""


class SheetNotWritable(SheetError):
    """The sheet cannot take results as it is (a read-only file or folder, merged cells or no
    columns left where results go): `SheetBackend.check_writable` says so before anything is ordered."""


class SheetTrackedElsewhere(SheetError):
    """The sheet carries the mark of another journal: two journals on one sheet would both order."""


class SheetChanged(SheetError):
    """Someone changed the sheet while it was being written: the write (or its rest) was not saved."""


class RowsNotFound(SheetError):
    """People moved rows while a write was retried, and some were not found again: the cells of
    `rows` (numbered as the write named them) were not written; every other cell was."""

    def __init__(self, message: str, rows: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.rows = rows


# --- journal ---------------------------------------------------------------


class JournalError(SheetordersError):
    """The journal database cannot be opened or is not a sheetorders journal."""

    exit_code = ExitCode.USAGE


class LockHeld(SheetordersError):
    """Another sheetorders process is working on the same sheet."""

    exit_code = ExitCode.USAGE
