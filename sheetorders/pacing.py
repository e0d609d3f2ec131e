"""In which order, and how many at once, one panel's adds leave when the order-ID search
settles its unclear answers (probe.py): so that each unclear add has orders of ours answered
before it left and sent after it failed, and the fewest other requests of its price between.

- On a panel the journal has no order of yet, the first adds go one at a time until one is
  placed: the others then have a lower bound.
- An add leaves, if one comes soon in the queue, of another price than the adds in flight:
  two adds of one price in flight together have one window, and if both answers are unclear,
  charges cannot tell which made an order.
- After an unclear answer the next adds go one at a time for a while, and those of the price
  of an unclear add wait their turn until an add sent after its answer is placed (sent
  `grace` seconds after it, if the panel may still have been working on it): until then an
  unclear add of that price would share its window.
- The prices of the adds earlier passes left unclear (a killed pass's adds in flight among
  them) wait the same way, until an add of this pass is placed.
- Once an answer was unclear, the last adds go one at a time, each once the one before it is
  answered. The first of them waits for every add in flight, so that an unclear answer among
  those counts (a round trip at most, once a pass).

A pass whose answers are all clear costs a round trip more at most (two on a new panel); one
with unclear answers, a few round trips each. Reordering never delays an add: the first one
in the queue goes when none of another price comes soon.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

from sheetorders.errors import AmbiguousOrder
from sheetorders.plan import PlannedOrder

LOOK_AHEAD = 50  # orders looked at for one of another price
GRACE = 60.0  # seconds, probe_grace's default: an unclear add that lingers bounds nothing sooner


class _Placed(Protocol):
    @property
    def placed(self) -> bool: ...

    @property
    def error(self) -> object: ...


P = TypeVar("P", bound=_Placed)


def paced(
    orders: Sequence[PlannedOrder],
    place: Callable[[PlannedOrder], P],
    workers: int,
    name: str,
    anchored: bool = False,
    *,
    grace: float = GRACE,
    clock: Callable[[], float] = time.monotonic,
    unresolved: Sequence[tuple[Decimal, bool]] = (),
) -> list[P]:
    """`place` each order, `workers` at most at once, in the order described above; the
    results in the order of `orders`. `anchored`: the journal has an order of the panel;
    `grace`: the panel's probe_grace; `unresolved`: the price of each add of the panel that
    earlier passes left unclear, and whether it lingers (a killed pass's adds in flight are
    among them): their prices are avoided as this pass's own unclear adds' are."""
    results: list[P | None] = [None] * len(orders)
    queue = _Queue(orders)
    gate = _Gate(2 * workers, anchored, grace, clock, unresolved)

    def work() -> None:
        while True:
            # An add that goes alone is chosen once the one before it is answered.
            with gate.turn(last=0 < queue.left() <= workers):
                index = queue.take(gate.avoided)
                if index is None:
                    return
                try:
                    results[index] = gate.place(place, orders[index])
                finally:
                    queue.done(index)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
    return [result for result in results if result is not None]


def _price(order: PlannedOrder) -> Decimal:
    return order.request.estimated_cost


class _Queue:
    """The orders still to send, by index, and the prices of those in flight. The next one:
    the first, within `LOOK_AHEAD`, of neither an avoided price nor one in flight; else the
    first not of an avoided price; else the first not of a price in flight; else the first."""

    def __init__(self, orders: Sequence[PlannedOrder]) -> None:
        self._left = deque(range(len(orders)))
        self._orders = orders
        self._flying: Counter[Decimal] = Counter()
        self._lock = threading.Lock()

    def left(self) -> int:
        with self._lock:
            return len(self._left)

    def take(self, avoided: Callable[[], frozenset[Decimal]]) -> int | None:
        """The next order to send, counted in flight from now on. `avoided` is asked under the
        queue's lock: the price of an add that was just answered unclearly is then either still
        in flight or already avoided (it is avoided before it leaves the flight)."""
        with self._lock:
            if not self._left:
                return None
            index = self._choose(avoided())
            self._left.remove(index)
            self._flying[_price(self._orders[index])] += 1
            return index

    def done(self, index: int) -> None:
        with self._lock:
            self._flying[_price(self._orders[index])] -= 1
            self._flying += Counter()  # drops the prices no longer in flight

    def _choose(self, avoided: frozenset[Decimal]) -> int:
        flying = frozenset(self._flying)
        if not avoided and not flying:
            return self._left[0]
        soon = [self._left[position] for position in range(min(LOOK_AHEAD, len(self._left)))]
        for shunned in (avoided | flying, avoided, flying):
            for index in soon:
                if _price(self._orders[index]) not in shunned:
                    return index
        return self._left[0]


@dataclass(frozen=True)
class _Moment:
    step: int  # the gate's count of sends and answers: which came first
    clock: float


@dataclass(frozen=True)
class _Unclear:
    price: Decimal
    answered: _Moment
    lingers: bool


class _Gate:
    """Whether an add goes alone (after the answers before it): while none is placed yet, for
    `count` adds after an unclear answer, and for the last ones once one was unclear; and which
    prices to avoid: those of the unclear adds that no add placed since bounds yet."""

    def __init__(
        self,
        count: int,
        anchored: bool,
        grace: float,
        clock: Callable[[], float],
        unresolved: Sequence[tuple[Decimal, bool]] = (),
    ) -> None:
        self.count = count
        self._placed = anchored
        self._grace = grace
        self._clock = clock
        self._unclear = False
        self._left = 0
        self._step = 0
        # Answered before this pass, as far as it knows: at its start (later than they were,
        # which only makes their prices wait longer).
        start = _Moment(0, clock())
        self._open: list[_Unclear] = [_Unclear(price, start, lingers) for price, lingers in unresolved]
        self._state = threading.Lock()
        self._one_at_a_time = threading.Lock()
        self._flying = 0  # adds sent, not answered yet
        self._quiet = threading.Condition(self._state)  # notified when none is in flight
        self._drained = False  # the first of the last adds waited for those in flight

    def avoided(self) -> frozenset[Decimal]:
        """The prices of the unclear adds that no placed add bounds yet."""
        with self._state:
            return frozenset(unclear.price for unclear in self._open)

    @contextmanager
    def turn(self, *, last: bool) -> Iterator[None]:
        """The one-at-a-time lock, held while the next add is chosen and sent, when it goes
        alone; asked again once the lock is had (the adds before may have made it needless).
        The first of the last adds is chosen once every add in flight is answered: an unclear
        answer among them then makes the last ones go alone (else they would all have left
        before it came, and the unclear add would have no order sent after it)."""
        if not self._alone(last) and (self._drained or not last):
            yield
            return
        with self._one_at_a_time:
            if last and not self._drained:
                with self._quiet:
                    self._quiet.wait_for(lambda: self._flying == 0)
                    self._drained = True
            alone = self._alone(last, take=True)
            if alone:
                yield
        if not alone:
            yield

    def _alone(self, last: bool, *, take: bool = False) -> bool:
        """Whether the next add goes alone; `take`: it does go, and counts as one of `count`."""
        with self._state:
            alone = (last and self._unclear) or not self._placed or self._left > 0
            if take:
                self._left = max(0, self._left - 1)
            return alone

    def _now(self) -> _Moment:
        self._step += 1
        return _Moment(self._step, self._clock())

    def place(self, place: Callable[[PlannedOrder], P], order: PlannedOrder) -> P:
        with self._state:
            sent = self._now()  # before it leaves
            self._flying += 1
        try:
            placement = place(order)
        except BaseException:
            with self._state:
                self._landed()
            raise
        with self._state:
            self._landed()  # with what the answer tells, at once: the drained see both
            answered = self._now()  # after its answer
            self._placed = self._placed or placement.placed
            error = placement.error
            if isinstance(error, AmbiguousOrder):
                self._unclear = True
                self._left = self.count
                self._open.append(_Unclear(_price(order), answered, error.lingers))
            elif placement.placed:
                self._open = [unclear for unclear in self._open if not self._bounds(sent, unclear)]
        return placement

    def _landed(self) -> None:
        """An add in flight is answered (called under the state lock)."""
        self._flying -= 1
        self._quiet.notify_all()

    def _bounds(self, sent: _Moment, unclear: _Unclear) -> bool:
        """Whether an order sent at `sent` bounds the window of this unclear add from above
        (as probe.windows has it)."""
        if sent.step <= unclear.answered.step:
            return False
        return not unclear.lingers or sent.clock >= unclear.answered.clock + self._grace
