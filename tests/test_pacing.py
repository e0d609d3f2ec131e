"""Pacing (pacing.py): the order in which one panel's adds leave, on a fake `place` whose
answers the test chooses, and whose calls wait for each other where the test needs two adds in
flight together (events, never sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sheetorders.errors import AmbiguousOrder
from sheetorders.pacing import _Queue, paced

WAIT = 10  # seconds before a test that would hang fails instead (never reached when it passes)


@dataclass
class Done:
    placed: bool
    error: object = None


PLACED = Done(True)


def unclear(*, lingers: bool = False) -> Done:
    return Done(False, AmbiguousOrder("no reply", lingers=lingers))


def orders(*prices: str) -> list[Any]:
    return [
        SimpleNamespace(name=f"{i}@{price}", request=SimpleNamespace(estimated_cost=Decimal(price)))
        for i, price in enumerate(prices)
    ]


class Script:
    """A fake `place`: each order's answer, after the events it waits for; the names in the
    order they left."""

    def __init__(self, answers: dict[str, Callable[[], Done]]) -> None:
        self.answers = answers
        self.sent: list[str] = []
        self.started: dict[str, threading.Event] = {}
        self.returned: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def event(self, kind: str, name: str) -> threading.Event:
        with self._lock:
            events = self.started if kind == "started" else self.returned
            return events.setdefault(name, threading.Event())

    def wait(self, kind: str, name: str) -> None:
        assert self.event(kind, name).wait(WAIT), f"{name} never {kind}"

    def __call__(self, order: Any) -> Done:
        with self._lock:
            self.sent.append(order.name)
        self.event("started", order.name).set()
        try:
            return self.answers.get(order.name, lambda: PLACED)()
        finally:
            self.event("returned", order.name).set()


def test_an_add_leaves_of_another_price_than_the_adds_in_flight():
    script = Script({})

    def first() -> Done:
        script.wait("started", "2@2")  # the next add leaves while this one is in flight
        return PLACED

    script.answers["0@1"] = first
    paced(orders("1", "1", "2", "9"), script, 2, "t", anchored=True)

    assert script.sent[:2] == ["0@1", "2@2"] and sorted(script.sent[2:]) == ["1@1", "3@9"]


def test_an_order_in_flight_when_an_answer_was_unclear_does_not_end_the_wait_of_its_price():
    script = Script({})

    def a() -> Done:
        script.wait("started", "1@2")
        return unclear()

    def b() -> Done:  # sent before a's answer, placed after it: it does not bound a's window
        script.wait("started", "3@3")
        return PLACED

    def c() -> Done:
        script.wait("returned", "1@2")
        return unclear()

    script.answers.update({"0@1": a, "1@2": b, "3@3": c})
    paced(orders("1", "2", "1", "3", "4"), script, 2, "t", anchored=True)

    # Neither unclear add has an order sent after its answer and placed yet: another price goes.
    assert script.sent == ["0@1", "1@2", "3@3", "4@4", "2@1"]


def test_an_unclear_add_that_lingers_keeps_its_price_waiting_until_the_grace_is_over():
    now = [0.0]
    script = Script({"0@1": lambda: unclear(lingers=True)})

    def b() -> Done:
        now[0] = 30.0  # sent 30 s after the unclear answer: the panel may still be at it
        return PLACED

    def c() -> Done:
        now[0] = 61.0
        return PLACED

    script.answers.update({"1@2": b, "3@3": c})
    paced(orders("1", "2", "1", "3", "4", "5"), script, 1, "t", anchored=True, grace=60, clock=lambda: now[0])

    # "1@2" and "3@3" leave before the grace is over; "4@4" leaves 61 s after the answer: it bounds.
    assert script.sent == ["0@1", "1@2", "3@3", "4@4", "2@1", "5@5"]


def test_when_every_price_soon_is_avoided_one_not_in_flight_goes_first():
    queue = _Queue(orders("2", "2", "1"))
    assert queue.take(frozenset) == 0  # in flight
    both = frozenset({Decimal("1"), Decimal("2")})  # unclear adds of both prices, not yet bounded

    assert queue.take(lambda: both) == 2
    assert queue.take(lambda: both) == 1


def test_the_first_of_the_last_adds_waits_for_the_adds_in_flight_so_an_unclear_one_is_bounded():
    """Two in flight, two left: the unclear answer of the second comes after the first was
    placed. The last adds leave only after it, so they bound the unclear one from above."""
    script = Script({})
    seen: dict[str, bool] = {}

    def first() -> Done:
        script.wait("started", "1@2")
        return PLACED

    def second() -> Done:
        script.wait("returned", "0@1")
        # Were the last add free to leave now, it would: give it the time to (it may not).
        script.event("started", "2@3").wait(0.2)
        return unclear()

    def third() -> Done:
        seen["after the unclear answer"] = script.event("returned", "1@2").is_set()
        return PLACED

    script.answers.update({"0@1": first, "1@2": second, "2@3": third})
    paced(orders("1", "2", "3", "4"), script, 2, "t", anchored=True)

    assert script.sent == ["0@1", "1@2", "2@3", "3@4"]
    assert seen == {"after the unclear answer": True}


def test_the_prices_of_adds_earlier_passes_left_unclear_wait_until_one_of_this_pass_is_placed():
    """A killed pass's add of price 1 is unresolved: this pass's first add is of another price,
    and price 1 goes once that one is placed (it bounds the old add from above)."""
    script = Script({})
    paced(orders("1", "1", "2"), script, 1, "t", anchored=True, unresolved=[(Decimal("1"), False)])

    assert script.sent == ["2@2", "0@1", "1@1"]


def test_an_earlier_unclear_add_that_lingers_keeps_its_price_waiting_the_grace():
    now = [100.0]
    script = Script({})

    def later() -> Done:
        now[0] += 5  # answered five seconds on
        return PLACED

    script.answers["1@2"] = later
    paced(
        orders("1", "2", "3"),
        script,
        1,
        "t",
        anchored=True,
        grace=4,
        clock=lambda: now[0],
        unresolved=[(Decimal("1"), True)],
    )

    # 1@2 was sent at once: it does not bound the old add, which may still have been worked on;
    # 2@3 was sent after the grace, and bounds it once placed; then price 1 goes.
    assert script.sent == ["1@2", "2@3", "0@1"]
