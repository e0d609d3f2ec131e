"""In which order, and how many at once, one panel's adds leave when the order-ID search
settles its unclear answers (probe.py): so that each unclear add has orders of ours answered
before it left and sent after it failed, and the fewest other requests of its price between.

- On a panel the journal has no order of yet, the first adds go one at a time until one is
  placed: the others then have a lower bound.
- After an unclear answer the next adds go one at a time for a while, and those of the same
  price as the unclear ones wait their turn: two unclear adds of one price in one window
  cannot be told apart.
- Once an answer was unclear, the last adds go one at a time, each once the one before it is
  answered (adds already in flight at the same time are not waited for).

A pass whose answers are all clear costs nothing more (one round trip on a new panel); one
with unclear answers, a few round trips each.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from typing import Protocol, TypeVar

from sheetorders.errors import AmbiguousOrder
from sheetorders.plan import PlannedOrder

LOOK_AHEAD = 50  # orders looked at for one of another price


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
) -> list[P]:
    """`place` each order, `workers` at most at once, in the order described above; the
    results in the order of `orders`. `anchored`: the journal has an order of the panel."""
    results: list[P | None] = [None] * len(orders)
    queue = _Queue(orders)
    gate = _Gate(2 * workers, anchored)

    def work() -> None:
        while True:
            # An add that goes alone is chosen once the one before it is answered.
            with gate.turn(last=queue.left() <= workers):
                index = queue.take(gate.avoided())
                if index is None:
                    return
                results[index] = gate.place(place, orders[index])

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
    return [result for result in results if result is not None]


class _Queue:
    """The orders still to send, by index: the first one not of an avoided price, if one comes
    soon; with how many are left after it."""

    def __init__(self, orders: Sequence[PlannedOrder]) -> None:
        self._left = deque(range(len(orders)))
        self._orders = orders
        self._lock = threading.Lock()

    def left(self) -> int:
        with self._lock:
            return len(self._left)

    def take(self, avoided: frozenset[Decimal]) -> int | None:
        with self._lock:
            if not self._left:
                return None
            index = self._left[0]
            for position in range(min(LOOK_AHEAD, len(self._left)) if avoided else 0):
                if self._orders[self._left[position]].request.estimated_cost not in avoided:
                    index = self._left[position]
                    break
            self._left.remove(index)
            return index


class _Gate:
    """Whether an add goes alone (after the answers before it): while none is placed yet, for
    `count` adds after an unclear answer, and for the last ones once one was unclear; and which
    prices to avoid."""

    def __init__(self, count: int, anchored: bool) -> None:
        self.count = count
        self._placed = anchored
        self._unclear = False
        self._left = 0
        self._prices: set[Decimal] = set()
        self._state = threading.Lock()
        self._one_at_a_time = threading.Lock()

    def avoided(self) -> frozenset[Decimal]:
        """The prices of the unclear adds that no placed add has followed yet."""
        with self._state:
            return frozenset(self._prices)

    @contextmanager
    def turn(self, *, last: bool) -> Iterator[None]:
        """The one-at-a-time lock, held while the next add is chosen and sent, when it goes
        alone; asked again once the lock is had (the adds before may have made it needless)."""
        if not self._alone(last):
            yield
            return
        with self._one_at_a_time:
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

    def place(self, place: Callable[[PlannedOrder], P], order: PlannedOrder) -> P:
        placement = place(order)
        with self._state:
            self._placed = self._placed or placement.placed
            if isinstance(placement.error, AmbiguousOrder):
                self._unclear = True
                self._left = self.count
                self._prices.add(order.request.estimated_cost)
            elif placement.placed:  # sent after them: the unclear adds before have their upper bound
                self._prices.clear()
        return placement
