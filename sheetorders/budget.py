"""Budgets over time: how much the journal's orders of this day or month may have cost, against
the limits of the config (for all, per panel, per sheet). Pure but for `limits_for`, which asks
the journal."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sheetorders.config import Budget, Config, SheetConfig
from sheetorders.journal import Journal
from sheetorders.models import money

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    """A moment as the journal stores it (UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def period_start(now: datetime, period: str, zone: str) -> datetime:
    """The local midnight that starts the day (or the month) of `now` in `zone`."""
    local = now.astimezone(ZoneInfo(zone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "monthly":
        start = start.replace(day=1)
    return start


@dataclass(frozen=True)
class BudgetLimit:
    """One limit: which spend it counts, how much it allows, how much is spent already."""

    scope: str  # "all", "panel" or "sheet"
    name: str  # the panel's or sheet's name ("" for all)
    period: str  # "daily" or "monthly"
    limit: Decimal
    spent: Decimal
    since: datetime  # local midnight that started the period

    def applies(self, panel: str) -> bool:
        return self.scope != "panel" or self.name == panel

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.limit - self.spent)

    @property
    def label(self) -> str:
        owner = {"all": "", "panel": f" of panel {self.name}", "sheet": f" of sheet {self.name}"}[self.scope]
        return f"{self.period} budget{owner}"

    def as_dict(self) -> dict[str, str]:
        return {
            "limit": self.label,
            "scope": self.scope,
            "name": self.name,
            "period": self.period,
            "allowed": money(self.limit),
            "spent": money(self.spent),
            "left": money(self.left),
            "since": self.since.isoformat(),
        }

    def refusal(self, spent_now: Decimal, row: int, cost: Decimal, currency: str) -> str:
        when = "today" if self.period == "daily" else "this month"
        unit = f" {currency}" if currency else ""
        return (
            f"{self.label}: {money(self.limit)}{unit}, spent {money(spent_now)} {when}; "
            f"row {row} needs {money(cost)}"
        )


def _limits(budget: Budget | None, scope: str, name: str) -> Iterable[tuple[str, str, str, Decimal, str]]:
    if budget is None:
        return
    for period, limit in (("daily", budget.daily), ("monthly", budget.monthly)):
        if limit is not None:
            yield scope, name, period, limit, budget.timezone


def all_limits(journal: Journal, config: Config, keys: dict[str, str], now: datetime) -> list[BudgetLimit]:
    """Every limit of the config, each once: for all, per panel, per sheet (`keys`: a sheet's
    label -> what the journal files it under)."""
    seen: dict[tuple[str, str, str], BudgetLimit] = {}
    for sheet in config.sheets or [SheetConfig(source="")]:
        for limit in limits_for(journal, config, sheet, keys.get(sheet.label, ""), now):
            seen.setdefault((limit.scope, limit.name, limit.period), limit)
    return list(seen.values())


def limits_for(
    journal: Journal, config: Config, sheet: SheetConfig, key: str, now: datetime
) -> list[BudgetLimit]:
    """Every limit that applies to a pass over `sheet` (filed under `key`), with what the journal
    counts as spent in its period."""
    found = []
    wanted = [
        *_limits(config.budget, "all", ""),
        *(limit for panel in config.panels.values() for limit in _limits(panel.budget, "panel", panel.name)),
        *_limits(sheet.budget, "sheet", sheet.label),
    ]
    for scope, name, period, limit, zone in wanted:
        since = period_start(now, period, zone)
        spent = journal.ledger.spent(
            stamp(since), panel=name if scope == "panel" else None, sheet=key if scope == "sheet" else None
        )
        found.append(BudgetLimit(scope, name, period, limit, spent, since))
    return found
