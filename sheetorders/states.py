"""The words sheetorders itself uses for rows and journal entries, as enums.

Each member is a `str`, so it compares equal to, formats as, and is stored as its text.
"""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RowStatus(TextEnum):
    """What the `status` cell says before (or instead of) the panel's own status."""

    INVALID = "Invalid"
    REJECTED = "Rejected"
    UNCERTAIN = "Uncertain"
    WAITING = "Waiting"
    HELD = "Held"  # valid, left for a later pass; `error` says why
    NEEDS_APPROVAL = "Needs approval"  # valid, waits for a yes in `approved`
    PENDING = "Pending"  # the panel's first status, shown as soon as an order is placed
    CANCEL_REQUESTED = "Cancel requested"


RETRY = "retry"  # typed by a person in `status`: send this Uncertain row again


class EntryState(TextEnum):
    """Where a journal entry (an `add`, a refill or a cancel) stands.

    `sending` only survives a process that died while waiting for the panel.
    """

    SENDING = "sending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"
    NOT_SENT = "not_sent"
    RELEASED = "released"

    @property
    def unresolved(self) -> bool:
        """The request may or may not have reached the panel."""
        return self in (EntryState.SENDING, EntryState.AMBIGUOUS)
