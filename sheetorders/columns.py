"""The sheet's column names: what the user fills in, what the tool writes back."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Fields of `add` by service type; see schemas/orders/ for which type needs which.
ORDER_FIELDS = (
    "link",
    "quantity",
    "runs",
    "interval",
    "comments",
    "usernames",
    "hashtags",
    "hashtag",
    "username",
    "media",
    "keywords",
    "answer_number",
    "groups",
    "min",
    "max",
    "posts",
    "old_posts",
    "delay",
    "expiry",
    "country",
    "device",
    "type_of_traffic",
    "google_keyword",
    "referring_url",
)
# Fields that hold one item per line inside the cell.
LIST_FIELDS = frozenset({"comments", "usernames", "hashtags", "keywords", "groups"})

INPUT_COLUMNS = ("panel", "service", *ORDER_FIELDS)
ACTION_COLUMN = "action"
# Where a person approves a row (`approval: true`); not part of what the row orders.
APPROVAL_COLUMN = "approved"

# Written by the tool. `ref` ties a row to its journal entry, whatever the user does to the order
# of rows; it is appended first so it sits next to the user's columns.
OUTPUT_COLUMNS = (
    "ref",
    "order_id",
    "status",
    "charge",
    "currency",
    "start_count",
    "remains",
    "error",
    "updated_at",
    "refill_id",
    "refill_status",
)

# Computed by the sheet itself: `sheetorders template` fills them with formulas (the estimate
# of a row's cost as it is typed). The pass recognises them and never reads or writes them.
COMPUTED_COLUMNS = ("estimate",)

KNOWN_COLUMNS = frozenset(
    (*INPUT_COLUMNS, ACTION_COLUMN, APPROVAL_COLUMN, *OUTPUT_COLUMNS, *COMPUTED_COLUMNS)
)

_SEPARATORS = re.compile(r"[\s\-_]+")


def normalize_header(text: object) -> str:
    """`Order ID`, `order-id` and ` ORDER_ID ` all become `order_id`."""
    if text is None:
        return ""
    return _SEPARATORS.sub("_", str(text).strip().lower()).strip("_")


def map_headers(headers: Sequence[object], aliases: Mapping[str, str] | None = None) -> dict[str, int]:
    """Canonical column name -> 0-based index of the header row.

    `aliases` maps a team's own header text (any spelling) to a canonical name.
    Unknown headers are the user's own columns and are left out; the first of two
    headers with the same meaning wins.
    """
    normalized_aliases = {normalize_header(k): normalize_header(v) for k, v in (aliases or {}).items()}
    mapping: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = normalize_header(header)
        name = normalized_aliases.get(name, name)
        if name in KNOWN_COLUMNS and name not in mapping:
            mapping[name] = index
    return mapping
