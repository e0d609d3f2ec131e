"""The order-ID search's rules, on journal records and `status` answers made by hand."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from sheetorders import probe
from sheetorders.journal import ProbeRecord
from sheetorders.models import ItemError, OrderStatus
from sheetorders.states import EntryState


def record(
    ref: str, state: EntryState, order_id: str | None, sent: int, answered: int, clock: float, lingers: bool
):
    return ProbeRecord(ref, "s", state, order_id, "0.24", 100, 2, sent, answered, clock, clock, lingers)


def placed(order_id: int, sent: int, answered: int, clock: float = 0.0) -> ProbeRecord:
    return record(f"so-{order_id}", EntryState.ACCEPTED, str(order_id), sent, answered, clock, False)


def unclear(ref: str, sent: int, answered: int, *, lingers: bool = False, clock: float = 0.0) -> ProbeRecord:
    return record(ref, EntryState.AMBIGUOUS, None, sent, answered, clock, lingers)


def test_the_window_lies_between_the_last_answer_before_and_the_first_send_after():
    records = [
        placed(100, sent=1, answered=2),
        placed(104, sent=3, answered=6),  # in flight while the unclear one left: no bound
        unclear("x", sent=4, answered=5),
        placed(109, sent=7, answered=8),
        placed(120, sent=9, answered=10),
    ]
    (window,) = probe.windows(records, [records[2]], grace=60)
    assert (window.low, window.high) == (100, 109)
    assert list(window.ids()) == list(range(100, 110))


def test_a_timed_out_add_is_bounded_only_by_an_order_sent_after_the_grace():
    records = [
        placed(100, sent=1, answered=2, clock=0),
        unclear("x", sent=3, answered=4, lingers=True, clock=10),
        placed(105, sent=5, answered=6, clock=30),  # 20 s after: the panel may still be at it
        placed(110, sent=7, answered=8, clock=75),
    ]
    (window,) = probe.windows(records, [records[1]], grace=60)
    assert (window.low, window.high) == (100, 110)
    (not_lingering,) = probe.windows(records, [records[1]], grace=0)
    assert not_lingering.high == 105


def ours(charge: str, status: str = "Pending") -> probe.Seen:
    return probe.Seen(Decimal(charge), status)


def test_one_candidate_that_fits_is_found_and_foreign_ids_are_not_candidates():
    window = probe.Window("x", 100, 106)
    answers = {
        100: ours("0.24"),
        101: probe.NotOurs(),
        102: probe.NotOurs(),
        103: ours("0.24"),
        104: probe.NotOurs(),
        105: ours("0.24"),  # known to the journal: another row's
        106: ours("0.24"),
    }
    verdict = probe.judge([window], answers, known={"100", "105", "106"}, estimates={"x": Decimal("0.24")})
    assert [(f.ref, f.order_id) for f in verdict.found] == [("x", "103")]
    assert not verdict.absent and verdict.misbehaves is None


def test_a_complete_window_without_candidates_proves_absence_but_a_gap_does_not():
    window = probe.Window("x", 100, 103)
    answers: dict[int, probe.Answer] = {
        100: ours("1"),
        101: probe.NotOurs(),
        102: probe.NotOurs(),
        103: ours("1"),
    }
    verdict = probe.judge([window], answers, known={"100", "103"}, estimates={"x": Decimal("0.24")})
    assert [a.ref for a in verdict.absent] == ["x"]

    del answers[102]  # no clear answer for one ID
    verdict = probe.judge([window], answers, known={"100", "103"}, estimates={"x": Decimal("0.24")})
    assert not verdict.absent and verdict.open


def test_bounds_that_do_not_answer_as_ours_prove_nothing():
    window = probe.Window("x", 100, 103)
    answers: dict[int, probe.Answer] = {
        100: probe.NotOurs(),
        101: probe.NotOurs(),
        102: probe.NotOurs(),
        103: ours("1"),
    }
    verdict = probe.judge([window], answers, known={"100", "103"}, estimates={"x": Decimal("0.24")})
    assert not verdict.absent and not verdict.found
    # A high bound that is not ours leaves the window open: no absence can be proven.
    answers = {100: ours("1"), 101: probe.NotOurs(), 102: probe.NotOurs(), 103: probe.NotOurs()}
    verdict = probe.judge([window], answers, known={"100", "103"}, estimates={"x": Decimal("0.24")})
    assert not verdict.absent


def test_a_candidate_that_fits_nothing_or_ids_out_of_order_mean_the_panel_misbehaves():
    window = probe.Window("x", 100, 104)
    answers = {100: ours("1"), 101: ours("7.5"), 102: probe.NotOurs(), 103: probe.NotOurs(), 104: ours("1")}
    verdict = probe.judge([window], answers, known={"100", "104"}, estimates={"x": Decimal("0.24")})
    assert verdict.misbehaves and "fits none" in verdict.misbehaves
    assert not verdict.found and not verdict.absent

    backwards = probe.Window("x", 110, 104)
    verdict = probe.judge([backwards], {110: ours("1"), 104: ours("1")}, known=set(), estimates={"x": None})
    assert verdict.misbehaves and "out of sequence" in verdict.misbehaves


def test_a_request_without_a_window_is_a_rival_for_every_candidate_that_fits_it():
    window = probe.Window("x", 100, 103)
    answers = {100: ours("1"), 101: ours("0.24"), 102: probe.NotOurs(), 103: ours("1")}
    estimates = {"x": Decimal("0.24"), "in-flight": Decimal("0.24")}
    verdict = probe.judge([window], answers, known={"100", "103"}, estimates=estimates)
    assert not verdict.found and verdict.open[0].candidates == ("101",)


def test_refunded_orders_fit_below_their_estimate_and_charges_within_rounding():
    assert probe.fits(ours("0.12", "Partial"), Decimal("0.24"))
    assert not probe.fits(ours("0.12", "In progress"), Decimal("0.24"))
    assert probe.fits(ours("0.24"), Decimal("0.2412"))
    assert not probe.fits(ours("0.30"), Decimal("0.24"))


def test_status_items_read_as_ours_or_not_ours():
    assert isinstance(
        probe.answer_of(OrderStatus("1", "Pending", Decimal("0.24"), 0, 100, "USD")), probe.Seen
    )
    assert isinstance(probe.answer_of(ItemError("1", "Incorrect order ID")), probe.NotOurs)
    assert probe.answer_of(ItemError("1", "no answer for this order")) is None


def test_the_ids_asked_stay_within_the_limit_narrowest_windows_first():
    wide, narrow = probe.Window("a", 100, 900), probe.Window("b", 1000, 1010)
    ask, covered = probe.ids_to_ask([wide, narrow], limit=500)
    assert [w.ref for w in covered] == ["b"] and len(ask) == 11


def test_an_order_found_for_a_timed_out_add_bounds_nothing_from_below_within_the_grace():
    """E, A and B time out in that order; the panel drops E, makes B's order (101), then A's
    (102). A is found; A's order is no lower bound for B (A may have been made after B left)."""

    def record(ref: str, state: EntryState, cost: str, sent: int, clock: float, order: str | None = None):
        lingers = state == EntryState.AMBIGUOUS
        return ProbeRecord(ref, "s", state, order, cost, 100, 2, sent, sent + 1, clock, clock, lingers)

    records = [
        record("P", EntryState.ACCEPTED, "0.24", 1, 0, "100"),
        record("E", EntryState.AMBIGUOUS, "0.24", 3, 10),
        record("A", EntryState.AMBIGUOUS, "0.72", 5, 11),
        record("B", EntryState.AMBIGUOUS, "0.24", 7, 12),
        record("C", EntryState.ACCEPTED, "0.24", 9, 100, "103"),
    ]
    answers = {100: ours("0.24"), 101: ours("0.24"), 102: ours("0.72"), 103: ours("0.24")}
    verdict = probe.judge_all(records, answers, set(range(100, 104)), grace=60)
    assert [(f.ref, f.order_id) for f in verdict.found] == [("A", "102")]
    assert not verdict.absent
    assert {o.ref: o.candidates for o in verdict.open} == {"E": ("101",), "B": ("101",)}


def test_an_order_id_a_person_typed_bounds_no_window():
    typed = dataclasses.replace(placed(105, sent=3, answered=9), settled_by="person")
    records = [placed(100, sent=1, answered=2), unclear("x", sent=4, answered=5), typed]
    (window,) = probe.windows(records, [records[1]], grace=0)
    assert (window.low, window.high) == (100, None)
