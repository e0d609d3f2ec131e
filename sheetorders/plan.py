"""What a pass will do, decided without I/O: rows + catalogs + balances + limits → a `Plan`.

Nothing here talks to a panel, the journal or a sheet, and no row is changed: the plan
says which rows to mark and why, and the pass applies it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sheetorders.budget import BudgetLimit
from sheetorders.journal import JournalRequest, JournalRow
from sheetorders.models import Balance, Service, is_final_order_status, money
from sheetorders.rows import SheetRow, fingerprint, order_cells
from sheetorders.states import RETRY, EntryState, RowStatus
from sheetorders.validate import OrderRequest, same_target_key, validate_row

ACTIONS = ("refill", "cancel")
Catalogs = Mapping[str, Mapping[str, Service]]


@dataclass(frozen=True)
class PlannedOrder:
    row: SheetRow
    request: OrderRequest


@dataclass(frozen=True)
class RowMark:
    row: SheetRow
    status: RowStatus
    message: str


@dataclass(frozen=True)
class RowNote:
    """A row that is not placed, with why: its status is the user's, so only `error` says it."""

    row: SheetRow
    message: str


@dataclass(frozen=True)
class HeldRow:
    """A valid row this pass leaves for a later one."""

    row: SheetRow
    reason: str


@dataclass(frozen=True)
class Approval:
    """A sheet whose rows are placed only once approved; `seen`: ref -> fingerprint of what each
    approved row asked for when a pass first saw the approval."""

    seen: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    orders: list[PlannedOrder] = field(default_factory=list)
    approved: list[SheetRow] = field(default_factory=list)  # approvals seen now for the first time
    voided: list[RowMark] = field(default_factory=list)  # approvals an edit made void
    estimates: list[tuple[SheetRow, Decimal]] = field(default_factory=list)
    marks: list[RowMark] = field(default_factory=list)  # Invalid and Waiting rows
    notes: list[RowNote] = field(default_factory=list)
    held: list[HeldRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    estimated: dict[str, Decimal] = field(default_factory=dict)  # per panel

    def marked(self, status: RowStatus) -> int:
        return sum(1 for mark in self.marks if mark.status == status)


@dataclass(frozen=True)
class Proposal:
    """What a pass is about to spend, to show a person before it does: per panel, the orders,
    their estimated total, and the balance that would be left."""

    sheet: str
    orders: dict[str, int]
    estimated: dict[str, Decimal]
    balance_after: dict[str, Decimal | None]
    currency: dict[str, str]

    @property
    def total_orders(self) -> int:
        return sum(self.orders.values())


def proposal(sheet: str, plan: Plan, balances: Mapping[str, Balance]) -> Proposal:
    orders: dict[str, int] = defaultdict(int)
    for order in plan.orders:
        orders[order.request.panel] += 1
    after = {
        panel: (balances[panel].balance - plan.estimated.get(panel, Decimal(0)))
        if panel in balances
        else None
        for panel in orders
    }
    currency = {panel: balances[panel].currency if panel in balances else "" for panel in orders}
    return Proposal(sheet, dict(orders), dict(plan.estimated), after, currency)


@dataclass(frozen=True)
class Limits:
    max_spend: Decimal | None = None
    balances: Mapping[str, Balance] = field(default_factory=dict)
    budgets: Sequence[BudgetLimit] = ()


# Services a panel's catalog lists but that cannot be trusted: panel -> service ID -> why.
Refused = Mapping[str, Mapping[str, str]]


def make_plan(
    rows: Sequence[SheetRow],
    catalogs: Catalogs,
    limits: Limits,
    *,
    default_panel: str,
    down_panels: Collection[str] = (),
    refused: Refused | None = None,
    approval: Approval | None = None,
    elsewhere: Sequence[JournalRow] = (),
) -> Plan:
    """`elsewhere`: the orders of other sheets whose IDs never reached their sheet."""
    plan = Plan()
    active = active_targets(rows, default_panel)
    shown = {row.order_id for row in rows if row.order_id} if elsewhere else set()  # IDs typed in
    placed_elsewhere = {entry.fingerprint: entry for entry in elsewhere if entry.order_id not in shown}
    candidates: list[PlannedOrder] = []
    for row in rows:
        if row.stray_status:
            plan.notes.append(RowNote(row, _stray_message(row)))
            continue
        if not row.awaits_order:
            continue
        if placed_elsewhere and (entry := _placed_elsewhere(row, placed_elsewhere)):
            plan.held.append(HeldRow(row, _placed_elsewhere_message(entry)))
            continue
        if row.panel_name(default_panel) in down_panels:
            plan.held.append(HeldRow(row, "its panel is unreachable"))
            continue
        why = _refused(row, refused or {}, default_panel)
        if why:
            plan.marks.append(RowMark(row, RowStatus.INVALID, why))
            plan.problems.append(f"row {row.number}, {why}")
            continue
        outcome = validate_row(row.number, order_cells(row), catalogs, default_panel)
        if isinstance(outcome, list):
            message = "; ".join(f"{p.column}: {p.message}" for p in outcome)
            plan.marks.append(RowMark(row, RowStatus.INVALID, message))
            plan.problems.extend(str(p) for p in outcome)
            continue
        earlier = active.get(outcome.dedupe_key)
        if earlier is not None:
            message = f"waits for {earlier} on the same link and service"
            plan.marks.append(RowMark(row, RowStatus.WAITING, message))
            continue
        if approval is not None and not _approved(plan, row, outcome, approval, limits):
            continue
        active[outcome.dedupe_key] = f"row {row.number}"
        candidates.append(PlannedOrder(row, outcome))
    _within_limits(plan, candidates, limits)
    return plan


def _approved(plan: Plan, row: SheetRow, request: OrderRequest, approval: Approval, limits: Limits) -> bool:
    """Whether the row may be placed: approved, for what it asks now. An approval that a pass has
    seen holds only for the content it was given for: an edit voids it."""
    cost = request.estimated_cost
    balance = limits.balances.get(request.panel)
    price = f"estimated {money(cost)}{f' {balance.currency}' if balance else ''}"
    seen = approval.seen.get(row.ref) or None if row.ref else None  # '': voided, not seen since
    if not row.approved:
        plan.marks.append(
            RowMark(row, RowStatus.NEEDS_APPROVAL, f"{price}: type yes in approved to place it")
        )
    elif seen is not None and seen != fingerprint(row):
        plan.voided.append(
            RowMark(
                row,
                RowStatus.NEEDS_APPROVAL,
                f"the row was edited after it was approved, so that approval is void ({price} now): "
                "type yes in approved again to place it",
            )
        )
    else:
        if seen is None:
            plan.approved.append(row)
        return True
    plan.estimates.append((row, cost))
    return False


def _placed_elsewhere(row: SheetRow, entries: Mapping[str, JournalRow]) -> JournalRow | None:
    """The order of another sheet that asked exactly what this new row asks, and never reached
    its sheet: that sheet may be this one under its former name (a tab renamed, a file moved,
    after a pass that could not write). A row whose status says retry is placed all the same."""
    if row.ref or row.status.lower() == RETRY:
        return None
    return entries.get(fingerprint(row))


def _placed_elsewhere_message(entry: JournalRow) -> str:
    what = f"order {entry.order_id}" if entry.order_id else "an order that may exist (no clear answer)"
    return (
        f"{what} for exactly this row was placed from {entry.sheet}, row {entry.row_number}, and "
        "never written there: if that was this sheet under its former name, type the order's ID "
        "in order_id; to order this row all the same, type retry in status"
    )


def _refused(row: SheetRow, refused: Refused, default_panel: str) -> str | None:
    panel = row.panel_name(default_panel)
    _, service, _ = same_target_key(panel, row.text("service"), "")
    reason = refused.get(panel, {}).get(service)
    if reason is None:
        return None
    return (
        f"service: {service} is left out of the catalog of panel {panel!r}, which cannot be trusted "
        f"for it ({reason}); ask the panel, or choose another service"
    )


def _stray_message(row: SheetRow) -> str:
    return (
        f"not placed: status says {row.status!r} but the row has no order_id; clear status to order "
        "this row, or type its order ID in order_id if it was ordered elsewhere"
    )


def active_targets(rows: Sequence[SheetRow], default_panel: str) -> dict[tuple[str, str, str], str]:
    """(panel, service, link) of the orders still running, from the sheet."""
    active = {}
    for row in rows:
        if row.order_id and not is_final_order_status(row.status):
            key = same_target_key(
                row.panel_name(default_panel), row.text("service"), row.text("link"), row.text("username")
            )
            active[key] = f"order {row.order_id} (row {row.number})"
    return active


def _within_limits(plan: Plan, candidates: list[PlannedOrder], limits: Limits) -> None:
    """Keep the candidates that every limit allows, in sheet order; hold the others with the
    tightest limit's reason. A row that does not fit does not stop a cheaper one after it, but
    max_spend (the pass's own limit) leaves every row from the first that does not fit."""
    spent = Decimal(0)
    per_panel: dict[str, Decimal] = defaultdict(Decimal)
    used = [Decimal(0)] * len(limits.budgets)  # planned in this pass, per budget
    for index, order in enumerate(candidates):
        request, cost, number = order.request, order.request.estimated_cost, order.row.number
        if limits.max_spend is not None and spent + cost > limits.max_spend:
            left = candidates[index:]
            stopped = (
                f"max_spend of this pass: {money(limits.max_spend)}, planned {money(spent)}; "
                f"row {number} needs {money(cost)}"
            )
            plan.held.extend(HeldRow(later.row, stopped) for later in left)
            plan.notices.append(
                f"{stopped}: {len(left)} row(s) from row {number} on are left for a later run"
            )
            break
        reason = _budget_refusal(limits, used, request.panel, number, cost)
        if reason is None and request.unbounded and (limits.max_spend is not None or limits.budgets):
            reason = (
                f"its cost has no upper bound (a subscription without posts: up to {money(cost)} for every "
                "new post), and spend is limited here: set posts to bound it"
            )
        balance = limits.balances.get(request.panel)
        if reason is None and balance is not None and per_panel[request.panel] + cost > balance.balance:
            reason = (
                f"the balance of panel {request.panel!r} ({balance.balance} {balance.currency}) "
                "does not cover it"
            )
        if reason is not None:
            plan.held.append(HeldRow(order.row, reason))
            plan.notices.append(f"row {number}: left for a later run, {reason}")
            continue
        spent += cost
        per_panel[request.panel] += cost
        for position, budget in enumerate(limits.budgets):
            if budget.applies(request.panel):
                used[position] += cost
        plan.orders.append(order)
    plan.estimated = dict(per_panel)


def _budget_refusal(limits: Limits, used: list[Decimal], panel: str, row: int, cost: Decimal) -> str | None:
    """The reason of the tightest budget that `cost` would overrun, if any."""
    failing = [
        (budget.limit - budget.spent - used[position], budget, budget.spent + used[position])
        for position, budget in enumerate(limits.budgets)
        if budget.applies(panel) and budget.spent + used[position] + cost > budget.limit
    ]
    if not failing:
        return None
    _, budget, spent_now = min(failing, key=lambda item: item[0])
    balance = limits.balances.get(panel)
    return budget.refusal(spent_now, row, cost, balance.currency if balance else "")


# --- refills and cancels typed in the sheet ------------------------------------------


@dataclass
class ActionPlan:
    shown: list[tuple[SheetRow, JournalRequest]] = field(default_factory=list)  # journaled, not yet shown
    errors: list[tuple[SheetRow, str]] = field(default_factory=list)
    send: dict[tuple[str, str], list[SheetRow]] = field(default_factory=dict)  # (panel, action) -> rows


def plan_actions(
    rows: Sequence[SheetRow],
    journaled: Sequence[JournalRequest],
    catalogs: Catalogs,
    *,
    default_panel: str,
) -> ActionPlan:
    plan = ActionPlan()
    pending = {(r.panel, r.order_id, r.action): r for r in journaled if r.state != EntryState.NOT_SENT}
    by_order = {row.order_id: row for row in rows if row.order_id}
    for request in pending.values():
        row = by_order.get(request.order_id)
        if row is not None:
            plan.shown.append((row, request))
    send: dict[tuple[str, str], list[SheetRow]] = defaultdict(list)
    for row in rows:
        action = row.action.lower()
        if not action:
            continue
        panel = row.panel_name(default_panel)
        if row.order_id and (panel, row.order_id, action) in pending:
            continue  # sent by an earlier, interrupted pass: never twice
        problem = _action_problem(row, action, catalogs.get(panel, {}))
        if problem:
            plan.errors.append((row, problem))
        elif action in ACTIONS:
            send[(panel, action)].append(row)
    plan.send = dict(send)
    return plan


def _action_problem(row: SheetRow, action: str, catalog: Mapping[str, Service]) -> str | None:
    if action not in ACTIONS:
        if action.split(" ")[0] in ACTIONS:
            return None  # "refill sent" etc. are the tool's own marks
        return f"action: {row.action!r} is not an action; type refill or cancel"
    if not row.order_id:
        return f"action: {action} needs an order_id in this row"
    _, service_id, _ = same_target_key("", row.text("service"), "")  # a dropdown entry gives its ID
    service = catalog.get(service_id)
    if service is not None and not getattr(service, action):
        return f'service {service.id} "{service.name}" does not allow {action} (the panel\'s catalog says so)'
    return None
