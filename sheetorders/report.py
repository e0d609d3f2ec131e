"""What one pass over one sheet did: counters, spend, problems and panel failures, as a value."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sheetorders.errors import ExitCode, PanelError, PanelUnavailable, SheetordersError
from sheetorders.models import Balance, money
from sheetorders.states import TextEnum
from sheetorders.validate import OrderRequest


class Tally(TextEnum):
    """The things a pass counts, one counter each."""

    ORDERED = "ordered"
    INVALID = "invalid"
    REJECTED = "rejected"
    UNCERTAIN = "uncertain"
    WAITING = "waiting"
    HELD_BACK = "held_back"  # valid rows left for a later run (funds, max_spend, unreachable panel)
    NOT_SENT = "not_sent"  # planned orders not sent because a stop was asked for
    SKIPPED = "skipped"  # rows newly told why they are not placed (a stray status)
    NEEDS_APPROVAL = "needs_approval"  # valid rows waiting for a yes in `approved`
    NEWLY_HELD = "newly_held"  # valid rows that became Held in this pass (funds, a budget, max_spend)
    RECOVERED = "recovered"  # orders placed earlier whose ID reached the sheet only now
    FOUND = "found"  # Uncertain rows whose order the order-ID search found
    PROVEN_ABSENT = "proven_absent"  # Uncertain rows proven never made: placed again
    STILL_UNCERTAIN = "still_uncertain"  # rows Uncertain when the pass ended
    REFRESHED = "refreshed"
    REFILLS = "refills"
    CANCELS = "cancels"
    ACTION_ERRORS = "action_errors"


class _Count:
    """A read-only attribute for one counter of `PassReport.counts`."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def __get__(self, report: PassReport | None, owner: type) -> Any:
        return self if report is None else report.counts[self.tally]


@dataclass
class PanelSpend:
    estimated: Decimal = Decimal(0)
    actual: Decimal = Decimal(0)
    currency: str = ""


@dataclass
class PassReport:
    sheet: str
    dry_run: bool = False
    counts: Counter[Tally] = field(default_factory=Counter)
    spend: dict[str, PanelSpend] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    would_order: list[OrderRequest] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    panel_errors: dict[str, str] = field(default_factory=dict)  # panels that refused us (a wrong key...)
    balances: dict[str, Balance] = field(default_factory=dict)
    failure: SheetordersError | None = None  # the pass could not run at all (sheet unreadable...)
    worst: ExitCode = ExitCode.OK  # the most serious panel failure's exit code
    declined: bool = False  # the person asked said no: nothing was placed or written
    unchanged: bool = False  # the sheet was as the last pass left it, with nothing to do: not read

    ordered = _Count(Tally.ORDERED)
    invalid = _Count(Tally.INVALID)
    rejected = _Count(Tally.REJECTED)
    uncertain = _Count(Tally.UNCERTAIN)
    waiting = _Count(Tally.WAITING)
    held_back = _Count(Tally.HELD_BACK)
    not_sent = _Count(Tally.NOT_SENT)
    skipped = _Count(Tally.SKIPPED)
    newly_held = _Count(Tally.NEWLY_HELD)
    needs_approval = _Count(Tally.NEEDS_APPROVAL)
    recovered = _Count(Tally.RECOVERED)
    found = _Count(Tally.FOUND)
    proven_absent = _Count(Tally.PROVEN_ABSENT)
    still_uncertain = _Count(Tally.STILL_UNCERTAIN)
    refreshed = _Count(Tally.REFRESHED)
    refills = _Count(Tally.REFILLS)
    cancels = _Count(Tally.CANCELS)
    action_errors = _Count(Tally.ACTION_ERRORS)

    def add(self, tally: Tally, count: int = 1) -> None:
        self.counts[tally] += count

    def spend_on(self, panel: str) -> PanelSpend:
        return self.spend.setdefault(panel, PanelSpend())

    def balance_left(self, panel: str) -> Decimal | None:
        """The panel's balance when the pass began, less what this pass spent there."""
        balance = self.balances.get(panel)
        if balance is None:
            return None
        spend = self.spend.get(panel)
        return balance.balance - ((spend.actual or spend.estimated) if spend and not self.dry_run else 0)

    def panel_failed(self, panel: str, error: PanelError) -> None:
        if isinstance(error, PanelUnavailable):
            self.unreachable.setdefault(panel, str(error))
        else:
            self.panel_errors.setdefault(panel, str(error))
        self.worst = max(self.worst, error.exit_code)

    def panel_down(self, panel: str) -> bool:
        """Whether this pass already found the panel unreachable or refusing us."""
        return panel in self.unreachable or panel in self.panel_errors

    @property
    def error(self) -> str | None:
        return None if self.failure is None else str(self.failure)

    @property
    def error_code(self) -> ExitCode:
        return ExitCode.OK if self.failure is None else self.failure.exit_code

    @property
    def failed(self) -> bool:
        new_problems = (
            self.invalid
            + self.rejected
            + self.uncertain
            + self.action_errors
            + self.skipped
            + self.newly_held
        )
        return bool(new_problems or self.error)

    @property
    def exit_code(self) -> ExitCode:
        from sheetorders.exits import exit_code_of

        return exit_code_of(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "dry_run": self.dry_run,
            **{str(tally): self.counts[tally] for tally in Tally},
            "spend": {
                panel: {"estimated": money(s.estimated), "actual": money(s.actual), "currency": s.currency}
                for panel, s in self.spend.items()
            },
            "problems": self.problems,
            "notices": self.notices,
            "would_order": [
                {
                    "row": request.row,
                    "panel": request.panel,
                    "service": request.service.id,
                    "quantity": request.quantity,
                    "estimated_cost": str(request.estimated_cost),
                }
                for request in self.would_order
            ],
            "unreachable": self.unreachable,
            "panel_errors": self.panel_errors,
            "error": self.error,
            "exit_code": int(self.exit_code),
        }


@dataclass
class RunReport:
    """The outcome of one pass over every configured sheet."""

    sheets: list[PassReport] = field(default_factory=list)
    stopped_by: int | None = None  # the signal that asked the run to stop, if one did

    @property
    def exit_code(self) -> ExitCode:
        from sheetorders.exits import exit_code_of

        return exit_code_of(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": int(self.exit_code),
            "stopped": self.stopped_by is not None,
            "sheets": [report.as_dict() for report in self.sheets],
        }
