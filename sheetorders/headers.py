"""Headers that look like sheetorders' columns but are not: a `Run` header meant as `runs` would
turn a drip-feed into a single order without a word, so such a header stops the pass."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sheetorders.cells import cell_text
from sheetorders.columns import KNOWN_COLUMNS, normalize_header
from sheetorders.sheets.base import column_letter


@dataclass(frozen=True)
class NearMiss:
    header: str
    column: int  # 1-based
    resembles: str  # the sheetorders column it looks like

    def __str__(self) -> str:
        return f"{self.header!r} (column {column_letter(self.column)}) looks like {self.resembles!r}"


def _squeezed(text: str) -> str:
    return normalize_header(text).replace("_", "")


def _singular(text: str) -> str:
    return text[:-1] if text.endswith("s") and len(text) > 3 else text


def _distance(a: str, b: str) -> int:
    """Edits (insert, delete, change, swap two neighbours) from a to b."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def resembles(header: str, name: str) -> bool:
    """Whether `header` (not a column of ours) is close enough to our column `name` to be a typo,
    a plural or a decorated form of it: `Run`/`runs`, `quantitty`/`quantity`, `Link URL`/`link`."""
    a, b = _squeezed(header), _squeezed(name)
    if not a or a == b:
        return False
    if _singular(a) == _singular(b):
        return True
    if len(b) >= 4 and min(len(a), len(b)) >= 4 and a[0] == b[0]:  # a typo keeps the first letter
        allowed = 1 if len(b) < 7 else 2
        if _distance(_singular(a), _singular(b)) <= allowed:
            return True
    if len(b) >= 4 and (a.startswith(b) or a.endswith(b)) and len(a) - len(b) <= 4:
        return True
    return len(a) >= 4 and (b.startswith(a) or b.endswith(a)) and len(b) - len(a) <= 3


def near_misses(
    headers: Sequence[object], aliases: Mapping[str, str], ignored: Collection[str]
) -> list[NearMiss]:
    """Headers that are neither our columns, nor mapped (`columns:`), nor declared the user's own
    (`ignore_columns:`), and that look like one of ours."""
    mapped = {normalize_header(alias) for alias in aliases}
    own = {normalize_header(name) for name in ignored}
    found = []
    for index, header in enumerate(headers):
        text = cell_text(header)
        name = normalize_header(text)
        if not name or name in KNOWN_COLUMNS or name in mapped or name in own:
            continue
        match = next((known for known in sorted(KNOWN_COLUMNS) if resembles(text, known)), None)
        if match is not None:
            found.append(NearMiss(text, index + 1, match))
    return found


def near_miss_message(where: str, misses: Sequence[NearMiss]) -> str:
    listed = "; ".join(str(miss) for miss in misses)
    first = misses[0]
    return (
        f"{where}: row 1 has headers that look like sheetorders' columns but are not: {listed}. "
        f"Nothing was placed. Rename each to the column it means (e.g. {first.header!r} -> "
        f"{first.resembles!r}), or say what it is in the config: columns: {{{first.header!r}: "
        f"{first.resembles}}} maps it, ignore_columns: [{first.header!r}] keeps it as your own"
    )
