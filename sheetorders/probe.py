"""What the order IDs around an ambiguous `add` prove: the rules, without any I/O.

Panels number orders from one growing sequence shared by all their customers, and answer
`status` only for one's own orders (`Incorrect order ID` for the others). So an order made by
an ambiguous request R has an ID above every order of ours answered before R left (the
window's low bound) and below every order of ours sent after R's failure was seen (its high
bound). Asking `status` for every ID of the window, bounds included (they must come back as
ours, or the window proves nothing):

- an ID that is ours and unknown to the journal is a candidate; a candidate whose charge fits
  R's estimate, and fits no other request that could own it, is R's order;
- a complete window (both bounds, every ID answered) holding no candidate proves that R made
  nothing: R may be sent again, once.

A candidate that fits no request, more candidates than requests, or bounds out of order mean
the panel does not behave this way (it leaks other customers' statuses, or the account is used
by something else): the probe is then turned off for that panel.

"Before" and "after" are the journal's event counter (`Store.tick`), which orders the moments
of every process sharing the journal. A request that timed out may still be worked on by the
panel after it was given up: only an order sent `grace` seconds later bounds it from above.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sheetorders.journal import ProbeRecord
from sheetorders.models import ItemError, OrderStatus
from sheetorders.states import EntryState

OPEN_SPAN = 300  # IDs searched above the low bound of a window that has no high bound yet
IDS_PER_CALL = 100
# A charge fits an estimate within half a cent plus half a percent (panels round charges).
FIT_ABSOLUTE = Decimal("0.005")
FIT_RELATIVE = Decimal("0.005")
# Statuses after which the charge may be lower than the order's price (a refund).
_REFUNDED = ("partial", "canceled", "cancelled", "refunded")
_NOT_OURS = re.compile(
    r"(incorrect|invalid|wrong|unknown|no such)\b.*\border|order\b.*\b(not found|incorrect|invalid)"
)


@dataclass(frozen=True)
class Seen:
    """`status` answered for this ID: an order of ours."""

    charge: Decimal | None
    status: str = ""


@dataclass(frozen=True)
class NotOurs:
    """`status` said there is no such order of ours."""


Answer = Seen | NotOurs  # an ID absent from the answers got no clear answer


@dataclass(frozen=True)
class Window:
    """Where the order of one ambiguous request must be, if it made one."""

    ref: str
    low: int | None  # the highest ID of ours answered before the request left
    high: int | None  # the lowest ID of ours sent after its failure was seen (and the grace)

    def ids(self) -> range:
        """The IDs to ask for, bounds included (their answers check the window)."""
        if self.low is None:
            return range(0)
        top = self.high if self.high is not None else self.low + OPEN_SPAN
        return range(self.low, top + 1)

    def holds(self, order_id: int) -> bool:
        return self.low is not None and self.low < order_id and (self.high is None or order_id < self.high)

    @property
    def span(self) -> str:
        if self.high is None:
            return f"above our order {self.low}"
        return f"between our orders {self.low} and {self.high}"


@dataclass(frozen=True)
class Rival:
    """An unresolved add that is not searched itself, but may own a candidate: one that fits
    its cost, within the bounds the journal gives it (a missing bound bounds nothing)."""

    cost: Decimal | None
    bounds: Window | None

    def may_own(self, number: int, seen: Seen) -> bool:
        if not fits(seen, self.cost):
            return False
        low, high = (self.bounds.low, self.bounds.high) if self.bounds else (None, None)
        return (low is None or number > low) and (high is None or number < high)


@dataclass(frozen=True)
class Found:
    ref: str
    order_id: str
    note: str


@dataclass(frozen=True)
class Absent:
    ref: str
    note: str


@dataclass(frozen=True)
class Open:
    """Not settled: why, and the candidate IDs a person may choose from."""

    ref: str
    note: str
    candidates: tuple[str, ...] = ()


@dataclass
class Verdict:
    found: list[Found] = field(default_factory=list)
    absent: list[Absent] = field(default_factory=list)
    open: list[Open] = field(default_factory=list)
    misbehaves: str | None = None  # why the probe should not be used for this panel


def _order_number(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() else None


def windows(records: Sequence[ProbeRecord], targets: Iterable[ProbeRecord], grace: float) -> list[Window]:
    """The window of each target (an ambiguous add), from the panel's placed orders."""
    placed = [
        (number, record)
        for record in records
        if record.state == EntryState.ACCEPTED
        and record.settled_by != "person"  # a typed ID may be any order: it bounds nothing
        and (number := _order_number(record.order_id)) is not None
    ]
    found = []
    for target in targets:
        if target.sent_tick is None or target.answered_tick is None:
            continue  # from before the journal kept the moments: nothing to bound it with
        before = [number for number, record in placed if _answered_before(record, target, grace)]
        after = [number for number, record in placed if _sent_after(record, target, grace)]
        found.append(Window(target.ref, max(before, default=None), min(after, default=None)))
    return found


def _answered_before(record: ProbeRecord, target: ProbeRecord, grace: float) -> bool:
    """Whether `record`'s order surely existed when `target` left. An order found for an unclear
    add may have been made up to `grace` after its failure was seen."""
    if record.answered_tick is None or target.sent_tick is None or record.answered_tick >= target.sent_tick:
        return False
    if not record.lingers:
        return True
    if record.answered_clock is None or target.sent_clock is None:
        return False
    return record.answered_clock + grace <= target.sent_clock


def _sent_after(record: ProbeRecord, target: ProbeRecord, grace: float) -> bool:
    if record.sent_tick is None or target.answered_tick is None or record.sent_tick <= target.answered_tick:
        return False
    if not target.lingers or grace <= 0:
        return True
    if record.sent_clock is None or target.answered_clock is None:
        return False
    return record.sent_clock >= target.answered_clock + grace


def ids_to_ask(found: Sequence[Window], limit: int) -> tuple[list[str], list[Window]]:
    """The IDs to ask `status` for (at most `limit`), and the windows they cover whole;
    the narrowest windows first."""
    wanted: set[int] = set()
    covered = []
    for window in sorted(found, key=lambda w: (w.high is None, len(w.ids()))):
        ids = window.ids()
        if not ids:
            continue
        more = wanted.union(ids)
        if len(more) > limit:
            continue
        wanted = more
        covered.append(window)
    return [str(number) for number in sorted(wanted)], covered


def answer_of(item: OrderStatus | ItemError) -> Answer | None:
    """A `status` item as the probe reads it; None when it says neither."""
    if isinstance(item, OrderStatus):
        return Seen(_decimal(item.charge), item.status or "")
    if _NOT_OURS.search(item.message.lower()):
        return NotOurs()
    return None


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def fits(answer: Seen, estimate: Decimal | None) -> bool:
    """Whether an order of this charge may be one priced at `estimate`."""
    if answer.charge is None or estimate is None:
        return False
    tolerance = FIT_ABSOLUTE + FIT_RELATIVE * estimate
    if answer.status.lower() in _REFUNDED:  # charged less than its price, after a refund
        return answer.charge <= estimate + tolerance
    return abs(answer.charge - estimate) <= tolerance


def judge(
    found: Sequence[Window],
    answers: Mapping[int, Answer],
    known: Collection[str],
    estimates: Mapping[str, Decimal | None],
    bounds: Mapping[str, Window] | None = None,
) -> Verdict:
    """What the answers prove of each window. `known`: the order IDs the journal has;
    `estimates`: the estimated cost of every unresolved add of the panel, by ref; those
    without a window here (in flight, or not searched) may own any candidate that fits them,
    within their `bounds` when the journal gives them some."""
    verdict = Verdict()
    checked: list[Window] = []
    failed: set[str] = set()
    for window in found:
        problem = _check_bounds(window, answers)
        if problem is not None:
            verdict.open.append(Open(window.ref, problem))
            failed.add(window.ref)  # its bounds are not to be trusted either
        else:
            checked.append(_trusted_high(window, answers))
    searched = {w.ref for w in checked}
    windowless = {
        ref: Rival(cost, None if ref in failed else (bounds or {}).get(ref))
        for ref, cost in estimates.items()
        if ref not in searched
    }
    candidates = {
        number: answer
        for window in checked
        for number in window.ids()
        if window.holds(number)
        and isinstance(answer := answers.get(number), Seen)
        and str(number) not in known
    }
    owners = {
        number: {w.ref for w in checked if w.holds(number) and fits(seen, estimates.get(w.ref))}
        | {ref for ref, rival in windowless.items() if rival.may_own(number, seen)}
        for number, seen in candidates.items()
    }
    requests = len(checked) + len(windowless)
    verdict.misbehaves = (
        _out_of_sequence(checked)
        or _strays(owners)
        or (
            f"{len(candidates)} unknown orders of ours for {requests} unanswered requests"
            if len(candidates) > requests
            else None
        )
    )
    matches = None if verdict.misbehaves else _assign(owners)
    if matches is None:
        verdict.misbehaves = verdict.misbehaves or (
            f"{len(candidates)} unknown orders of ours cannot all be orders of the "
            f"{requests} unanswered requests"
        )
        verdict.open.extend(Open(w.ref, f"not settled: {verdict.misbehaves}") for w in checked)
        return verdict
    for window in checked:
        _decide(window, answers, candidates, owners, matches, verdict)
    return verdict


def judge_all(
    records: Sequence[ProbeRecord],
    answers: Mapping[int, Answer],
    asked: Collection[int],
    grace: float,
) -> Verdict:
    """`judge` the windows of the panel's ambiguous adds, again and again: an order found is
    an order of ours whose moments are known, and may narrow the windows of the others (only
    ever within the IDs `asked`, so no more questions are needed)."""
    found: list[Found] = []
    while True:
        targets = [r for r in records if r.state == EntryState.AMBIGUOUS and not r.keyed]
        every = windows(records, targets, grace)
        covered = [w for w in every if w.ids() and set(w.ids()) <= set(asked)]
        estimates = {r.ref: _cost(r) for r in records if r.state.unresolved}
        known = {r.order_id for r in records if r.order_id}
        verdict = judge(covered, answers, known, estimates, {w.ref: w for w in every})
        if verdict.misbehaves is not None or not verdict.found:
            verdict.found[:0] = found
            return verdict
        found.extend(verdict.found)
        settled = {f.ref: f.order_id for f in verdict.found}
        records = [
            dataclasses.replace(r, state=EntryState.ACCEPTED, order_id=settled[r.ref], settled_by="search")
            if r.ref in settled
            else r
            for r in records
        ]


def _cost(record: ProbeRecord) -> Decimal | None:
    try:
        return Decimal(record.estimated_cost) if record.estimated_cost else None
    except InvalidOperation:
        return None


def _check_bounds(window: Window, answers: Mapping[int, Answer]) -> str | None:
    if window.low is None:
        return "no earlier order of ours on this panel bounds the search: check the panel's order list"
    if not isinstance(answers.get(window.low), Seen):
        return f"the panel did not answer for our order {window.low}: the order-ID search proves nothing"
    return None


def _trusted_high(window: Window, answers: Mapping[int, Answer]) -> Window:
    """A high bound the panel does not answer for as ours bounds nothing."""
    if window.high is not None and not isinstance(answers.get(window.high), Seen):
        return Window(window.ref, window.low, None)
    return window


def _out_of_sequence(checked: Sequence[Window]) -> str | None:
    for window in checked:
        if window.low is not None and window.high is not None and window.low >= window.high:
            return f"order IDs out of sequence ({window.low} answered before {window.high} was sent)"
    return None


def _strays(owners: Mapping[int, set[str]]) -> str | None:
    strays = sorted(number for number, refs in owners.items() if not refs)
    if not strays:
        return None
    return (
        f"the panel answers for orders this journal did not place whose charge fits none of ours "
        f"({', '.join(map(str, strays[:5]))}): it shows other customers' orders, or the account "
        "orders through something else"
    )


def _assign(owners: Mapping[int, set[str]]) -> dict[str, int] | None:
    """Ref -> order ID, for the candidates only one request can have made (each unknown order
    of ours was made by one of our unanswered requests, each request made one order at most);
    repeated, as each assignment takes a request out of the others' owners. None: the
    candidates cannot all be our requests' orders."""
    left = {number: set(refs) for number, refs in owners.items()}
    matches: dict[str, int] = {}
    while True:
        sole = next(((n, refs) for n, refs in left.items() if len(refs) <= 1), None)
        if sole is None:
            return matches
        number, refs = sole
        del left[number]
        if not refs:
            return None
        (ref,) = refs
        matches[ref] = number
        for others in left.values():
            others.discard(ref)


def _decide(
    window: Window,
    answers: Mapping[int, Answer],
    candidates: Mapping[int, Seen],
    owners: Mapping[int, set[str]],
    matches: Mapping[str, int],
    verdict: Verdict,
) -> None:
    if window.ref in matches:
        number = matches[window.ref]
        verdict.found.append(
            Found(
                window.ref,
                str(number),
                f"order {number} found by the order-ID search: ours, unknown to the journal, "
                f"{window.span}, charged {candidates[number].charge} as this row's estimate",
            )
        )
        return
    taken = set(matches.values())
    mine = tuple(str(n) for n in sorted(candidates) if window.ref in owners[n] and n not in taken)
    if mine:
        verdict.open.append(
            Open(
                window.ref,
                f"the order-ID search found orders that may be this row's: {', '.join(mine)}. Type the "
                "right one in order_id; if none is, type retry in status",
                mine,
            )
        )
    elif window.high is None:
        verdict.open.append(
            Open(
                window.ref,
                f"no order of ours found {window.span} yet; a later order on this panel settles it",
            )
        )
    elif all(number in answers for number in window.ids()):
        verdict.absent.append(
            Absent(
                window.ref,
                f"the earlier attempt made no order (none of ours {window.span} can be it): placed again",
            )
        )
    else:
        verdict.open.append(Open(window.ref, f"the panel did not answer for every ID {window.span}"))
