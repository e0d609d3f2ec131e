"""Builds order workbooks: the blank template users start from, and the demo's example sheet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sheetorders.columns import ACTION_COLUMN, ORDER_FIELDS, OUTPUT_COLUMNS

# The columns a new sheet starts with: what users fill, an example of their own column, what the tool writes.
TEMPLATE_COLUMNS = ("panel", "service", *ORDER_FIELDS, "note", ACTION_COLUMN, *OUTPUT_COLUMNS)
OUTPUT_FROM = TEMPLATE_COLUMNS.index("ref")
WIDE = {"link": 42, "comments": 30, "usernames": 22, "error": 60, "note": 24, "updated_at": 21}

HELP = [
    (
        "What to fill",
        "One order per row: service (the panel's service ID), link, quantity, and the fields "
        "its type needs (see the Help sheet's table).",
    ),
    (
        "Lists",
        "comments, usernames, hashtags, keywords and groups: one item per line inside the cell (Alt+Enter).",
    ),
    ("Drip-feed", "runs and interval (minutes) on a Default service; quantity is then per run."),
    ("panel", "Optional: the name of a panel from sheetorders.yaml; empty = the first panel."),
    (
        "Grey columns",
        "Written by sheetorders. Leave ref and order_id alone: they keep an order from being placed twice.",
    ),
    (
        "status",
        "The panel's status once ordered. Invalid / Rejected: fix the row, clear status and error to "
        "try again. Uncertain: check the panel, then type retry in status or the order's ID in order_id.",
    ),
    ("action", "Type refill or cancel in a row with an order_id; the next run or sync sends it once."),
]

TYPE_FIELDS = [
    ("Default", "link, quantity", "runs + interval for drip-feed"),
    ("Package", "link", "no quantity; flat price"),
    ("SEO", "link, quantity, keywords", "one keyword per line"),
    ("Custom Comments", "link, comments", "quantity = number of lines"),
    ("Custom Comments Package", "link, comments", "flat price"),
    ("Mentions", "link, quantity, usernames", ""),
    ("Mentions with Hashtags", "link, quantity, usernames, hashtags", ""),
    ("Mentions Custom List", "link, usernames", "quantity = number of lines"),
    ("Mentions Hashtag", "link, quantity, hashtag", ""),
    ("Mentions User Followers", "link, quantity, username", ""),
    ("Mentions Media Likers", "link, quantity, media", "media is a URL"),
    ("Comment Likes", "link, quantity, username", "username of the comment's author"),
    ("Comment Replies", "link, username, comments", ""),
    ("Poll", "link, quantity, answer_number", ""),
    ("Invites from Groups", "link, quantity, groups", ""),
    ("Subscriptions", "username, min, max, delay", "posts, old_posts, expiry (d/m/Y); no link, no quantity"),
    ("Web Traffic", "link, quantity, country, device, type_of_traffic", "google_keyword, referring_url"),
]


def build_order_workbook(path: Path, rows: Iterable[Mapping[str, Any]] = (), title: str = "Orders") -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert isinstance(sheet, Worksheet)  # a new workbook has one worksheet
    sheet.title = title
    sheet.append(list(TEMPLATE_COLUMNS))
    header_font = Font(bold=True, color="FFFFFF")
    input_fill = PatternFill("solid", fgColor="305496")
    output_fill = PatternFill("solid", fgColor="808080")
    for index, name in enumerate(TEMPLATE_COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index)
        cell.font = header_font
        cell.fill = output_fill if index > OUTPUT_FROM else input_fill
        sheet.column_dimensions[get_column_letter(index)].width = WIDE.get(name, max(10, len(name) + 2))
    sheet.freeze_panes = "C2"
    wrap = Alignment(wrap_text=True, vertical="top")
    for index in range(1, len(TEMPLATE_COLUMNS) + 1):
        # A column style, not a style on every cell: what people type later wraps too, and empty
        # cells are not stored (a 10,000-row sheet stays small and quick to open and save).
        sheet.column_dimensions[get_column_letter(index)].alignment = wrap
    for number, row in enumerate(rows, start=2):
        for index, name in enumerate(TEMPLATE_COLUMNS, start=1):
            value = row.get(name)
            if value is not None:
                sheet.cell(row=number, column=index, value=value).alignment = wrap
    action = get_column_letter(TEMPLATE_COLUMNS.index("action") + 1)
    choices = DataValidation(type="list", formula1='"refill,cancel"', allow_blank=True)
    choices.add(f"{action}2:{action}5000")
    sheet.add_data_validation(choices)

    help_sheet = workbook.create_sheet("Help")
    help_sheet.column_dimensions["A"].width = 26
    help_sheet.column_dimensions["B"].width = 48
    help_sheet.column_dimensions["C"].width = 50
    for topic, text in HELP:
        help_sheet.append([topic, text])
    help_sheet.append([])
    help_sheet.append(["service type", "required", "optional / notes"])
    for fields in TYPE_FIELDS:
        help_sheet.append(list(fields))
    for cell in help_sheet["A"]:
        cell.font = Font(bold=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path
