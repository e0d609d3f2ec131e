"""Every exit status comes from `exits.exit_code_of`, and the README's table says them all."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from sheetorders.errors import (
    ConfigError,
    ExitCode,
    InvalidKey,
    JournalError,
    LockHeld,
    PanelUnavailable,
    SheetError,
    SheetTrackedElsewhere,
    SheetUnavailable,
    Terminated,
    UsageError,
)
from sheetorders.exits import exit_code_of
from sheetorders.report import PassReport, RunReport, Tally

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_codes() -> dict[int, str]:
    table = README.read_text().split("<!-- exit-codes -->", 1)[1].strip().split("\n\n", 1)[0]
    rows = (re.match(r"\| `(\d+)` \| ([^|]+) \|", line) for line in table.splitlines())
    return {int(row.group(1)): row.group(2).strip() for row in rows if row}


def sheet(**counts: int) -> PassReport:
    report = PassReport(sheet="s")
    for name, count in counts.items():
        report.add(Tally(name), count)
    return report


# For each code of the README's table: outcomes that must end with it.
EXAMPLES: dict[int, list[object]] = {
    0: [None, RunReport([sheet(ordered=3, refreshed=2)]), RunReport([sheet(waiting=1, held_back=4)])],
    1: [
        RunReport([sheet(invalid=1)]),
        RunReport([sheet(rejected=1), sheet(ordered=1)]),
        RunReport([sheet(uncertain=1)]),
        RunReport([sheet(action_errors=1)]),
    ],
    2: [
        ConfigError("bad"),
        UsageError("bad"),
        InvalidKey("no"),
        LockHeld("busy"),
        JournalError("full"),
        RunReport([PassReport(sheet="s", failure=SheetError("no such file"))]),
        RunReport([sheet(ordered=1), PassReport(sheet="t", failure=SheetTrackedElsewhere("other"))]),
        OSError("no such folder"),
    ],
    3: [
        PanelUnavailable("down"),
        SheetUnavailable("Google Sheets is unavailable: HTTP 503 after 5 tries"),
        RunReport([PassReport(sheet="s", worst=ExitCode.PANEL_UNREACHABLE)]),
    ],
    130: [KeyboardInterrupt(), RunReport([sheet(ordered=1)], stopped_by=signal.SIGINT)],
    143: [Terminated("again"), RunReport([sheet(invalid=1)], stopped_by=signal.SIGTERM)],
}


def test_the_readme_lists_every_exit_code_and_nothing_else() -> None:
    assert set(readme_codes()) == {int(code) for code in ExitCode} == set(EXAMPLES)


@pytest.mark.parametrize(("code", "outcome"), [(c, o) for c, os in EXAMPLES.items() for o in os])
def test_each_outcome_exits_as_the_readme_says(code: int, outcome: object) -> None:
    assert exit_code_of(outcome) == code  # type: ignore[arg-type]


def test_the_same_failure_exits_the_same_with_one_sheet_or_several() -> None:
    failure = SheetError("the sheet is gone")
    alone = RunReport([PassReport(sheet="s", failure=failure)])
    among = RunReport([sheet(ordered=1), PassReport(sheet="t", failure=failure), sheet(ordered=2)])
    assert exit_code_of(alone) == exit_code_of(among) == ExitCode.USAGE
