"""One table: what each panel error means for a request that got it.

Looked up along the error's class hierarchy, so a subclass without an entry of its own
gets its parent's (a new kind of refusal is a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass

from sheetorders.errors import (
    ActiveOrderExists,
    AmbiguousOrder,
    InvalidKey,
    NotEnoughFunds,
    PanelError,
    PanelRefused,
    PanelUnavailable,
)
from sheetorders.report import Tally
from sheetorders.states import EntryState, RowStatus


@dataclass(frozen=True)
class Outcome:
    """What an error answer to an `add` (or a refill/cancel) becomes."""

    add_state: EntryState  # the journal entry of an `add`
    request_state: EntryState  # the journal entry of a refill or cancel
    row_status: RowStatus | None  # the row's status after an `add`; None: the row is left as it was
    row_message: str  # the row's `error`; {message} is the panel's words
    tally: Tally
    stops_panel: bool = False  # send nothing more to this panel in this pass
    panel_failed: bool = False  # the panel itself failed (unreachable, a wrong key): the exit code says so
    problem: str = ""  # a line for the summary; {row} and {message} are filled in


OUTCOMES: dict[type[PanelError], Outcome] = {
    AmbiguousOrder: Outcome(
        EntryState.AMBIGUOUS, EntryState.AMBIGUOUS, RowStatus.UNCERTAIN, "{message}", Tally.UNCERTAIN
    ),
    PanelRefused: Outcome(
        EntryState.REJECTED,
        EntryState.REJECTED,
        RowStatus.REJECTED,
        "{message}",
        Tally.REJECTED,
        problem="row {row}: the panel refused: {message}",
    ),
    NotEnoughFunds: Outcome(
        EntryState.NOT_SENT, EntryState.REJECTED, None, "", Tally.HELD_BACK, stops_panel=True
    ),
    ActiveOrderExists: Outcome(
        EntryState.NOT_SENT,
        EntryState.REJECTED,
        RowStatus.WAITING,
        "the panel has an active order on this link and service ({message})",
        Tally.WAITING,
    ),
    InvalidKey: Outcome(
        EntryState.NOT_SENT,
        EntryState.NOT_SENT,
        None,
        "",
        Tally.HELD_BACK,
        stops_panel=True,
        panel_failed=True,
    ),
    # For a write, raised only when the request surely did not reach the panel.
    PanelUnavailable: Outcome(
        EntryState.NOT_SENT,
        EntryState.NOT_SENT,
        None,
        "",
        Tally.HELD_BACK,
        stops_panel=True,
        panel_failed=True,
    ),
}


def outcome_of(error: PanelError) -> Outcome:
    for cls in type(error).__mro__:
        if cls in OUTCOMES:
            return OUTCOMES[cls]
    raise LookupError(f"no outcome for {type(error).__name__}")  # every PanelError has one
