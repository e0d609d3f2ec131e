"""What a workbook holds that a save through openpyxl would delete.

openpyxl keeps cells, styles, formulas, validations, conditional formats, comments, tables,
charts and (with Pillow) pictures; it drops shapes, text boxes and other drawings it cannot
model, sparklines, slicers, timelines, form and ActiveX controls, and the replies of threaded
comments. A pass saves the workbook: before it does, these are named, and nothing is saved.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
import zipfile
from collections import Counter

from lxml import etree  # type: ignore[import-untyped]  # no stubs in the dependencies

from sheetorders.sheets.xlsx_extensions import mentions

DRAWING = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
CHART = "http://schemas.openxmlformats.org/drawingml/2006/chart"
MAIN_DRAWING = "http://schemas.openxmlformats.org/drawingml/2006/main"
ANCHORS = tuple(f"{{{DRAWING}}}{name}" for name in ("twoCellAnchor", "oneCellAnchor", "absoluteAnchor"))

# openpyxl warns that it removes them on load: a workbook holding them is refused, naming them.
warnings.filterwarnings("ignore", r"Sparkline Group extension is not supported", UserWarning, "openpyxl")

# Parts of the package openpyxl does not write back, and what a person calls them.
DROPPED_PARTS = {
    "xl/slicers/": "slicers",
    "xl/slicerCaches/": "slicers",
    "xl/timelines/": "timelines",
    "xl/ctrlProps/": "form controls",
    "xl/activeX/": "ActiveX controls",
    "xl/threadedComments/": "threaded comments (their replies)",
}


def lost_on_save(data: bytes) -> list[str]:
    """What saving the workbook `data` through openpyxl would delete, in words (empty: nothing;
    a file that is not a readable workbook has nothing to lose here)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            lost = list(
                dict.fromkeys(
                    what for name in names for part, what in DROPPED_PARTS.items() if name.startswith(part)
                )
            )
            drawn: Counter[str] = Counter()
            for name in names:
                if name.startswith("xl/drawings/") and name.endswith(".xml") and "/_rels/" not in name:
                    drawn.update(_dropped_drawings(archive.read(name)))
                elif name.startswith("xl/worksheets/") and name.endswith(".xml"):
                    with archive.open(name) as stream:
                        if mentions(stream, b"sparklineGroup"):
                            drawn["sparklines"] += 1
            lost += [what if what == "sparklines" else f"{count} {what}" for what, count in drawn.items()]
            return lost
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError):
        return []


def has_pictures(data: bytes) -> bool:
    """Whether the workbook `data` holds pictures (media parts)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(name.startswith("xl/media/") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _dropped_drawings(xml: bytes) -> Counter[str]:
    """The drawings of one drawing part that openpyxl drops, counted by kind."""
    found: Counter[str] = Counter()
    pictures_kept = importlib.util.find_spec("PIL") is not None
    for anchor in etree.fromstring(xml):
        if anchor.tag not in ANCHORS:
            continue
        for item in anchor:
            kind = etree.QName(item).localname
            if kind in ("sp", "grpSp", "cxnSp"):
                found["shapes, text boxes or groups"] += 1
            elif kind == "pic" and not pictures_kept:
                found["pictures"] += 1
            elif kind == "graphicFrame" and not _is_chart(item):
                found["diagrams or other drawings"] += 1
    return found


def _is_chart(frame: etree._Element) -> bool:
    data = frame.find(f".//{{{MAIN_DRAWING}}}graphicData")
    return data is not None and data.get("uri") == CHART
