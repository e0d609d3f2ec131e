"""What an order sheet built from the panels' live catalogs holds, whatever it is written to.

`sheetorders template` writes three tabs (`template_xlsx` to an .xlsx file, `template_google`
to a Google spreadsheet):

- Orders: what people fill (`service`, `link`, `quantity`), the tool's `status`, `order_id`,
  `charge` and `error` next to them, an `estimate` formula, then only the columns the chosen
  services' types take (a group that can be collapsed), `action`, and the tool's other columns
  (a collapsed group). Every header is a name `columns.map_headers` recognises.
- Services: one row per service (panel, id, name, category, type, rate, limits, what it
  allows, the fields its type takes), the text of its dropdown entry, and the key the
  `estimate` formula looks it up by.
- Help: what to fill, in a few lines.

This module decides the layout and the contents: cells, prompts, formulas and rules are plain
data here, so that both writers put the same sheet down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sheetorders.cells import Cell, cell_text
from sheetorders.columns import ACTION_COLUMN, APPROVAL_COLUMN, ORDER_FIELDS, OUTPUT_COLUMNS
from sheetorders.config import Config
from sheetorders.errors import PanelError, SheetError, UsageError
from sheetorders.models import Service
from sheetorders.resources import load_schema
from sheetorders.sheets.base import CellWrite, SheetTable, column_letter, open_backend
from sheetorders.sheets.google import spreadsheet_key
from sheetorders.validate import FLAT_PRICE_TYPES, LINE_COUNTED_TYPES, SERVICE_TYPES, schema_path, type_key
from sheetorders.workbook import TYPE_FIELDS

ORDERS_TAB = "Orders"
SERVICES_TAB = "Services"
HELP_TAB = "Help"
SERVICES_REFRESH_EVERY = timedelta(hours=1)  # how often a pass brings the Services tab up to date
DEFAULT_ROWS = 1000  # rows prepared (estimate formula, validations, colours) below the header

INPUT, OUTPUT, COMPUTED, OWN = "input", "output", "computed", "own"

FIRST_OUTPUTS = ("status", "order_id", "charge", "error")
LATER_OUTPUTS = tuple(name for name in OUTPUT_COLUMNS if name not in FIRST_OUTPUTS)
DRIP_FIELDS = ("runs", "interval")
SUBSCRIPTIONS = "subscriptions"  # the type key
POSTS_UNITS = "max per post × (posts + old_posts)"

SERVICES_HEADERS = (
    "panel",
    "id",
    "name",
    "category",
    "type",
    "rate",
    "min",
    "max",
    "refill",
    "cancel",
    "drip-feed",
    "needs",
    "optional",
    "price",
    "units",
    "entry",
    "key",
)
# The `price` column: how a service's rate makes the cost of an order (validate.estimate_cost,
# validate.subscription_cost).
FLAT = "flat"  # the rate, whatever the quantity (packages)
PER_1000 = "per 1000"  # rate × quantity / 1000 (× runs)
PER_1000_OR_FLAT = "per 1000, flat without quantity"  # a type the reference does not know
PER_POST = "per 1000 per post"  # subscriptions: rate × max × (posts + old_posts) / 1000

# Colours of the status column: (fill, text colour, statuses).
STATUS_COLOURS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("C6EFCE", "006100", ("Completed", "Partial")),
    ("FFEB9C", "9C5700", ("Pending", "In progress", "Processing", "Waiting", "Held", "Cancel requested")),
    ("FFC7CE", "9C0006", ("Invalid", "Rejected", "Uncertain", "Error", "Canceled", "Cancelled")),
    ("E7E6E6", "3A3838", ("Needs approval",)),
)

_WIDTHS = {
    "link": 40,
    "error": 50,
    "status": 14,
    "order_id": 12,
    "charge": 10,
    "estimate": 11,
    "comments": 30,
    "usernames": 22,
    "keywords": 24,
    "hashtags": 20,
    "groups": 28,
    "media": 32,
    "referring_url": 30,
    "updated_at": 20,
    "refill_status": 14,
    "note": 28,
}


@dataclass(frozen=True)
class Listed:
    """A service of a panel's catalog, as the template lists it."""

    panel: str
    service: Service


@dataclass(frozen=True)
class TemplateColumn:
    name: str
    role: str  # INPUT, OUTPUT (the tool writes it), COMPUTED (a formula), OWN (the team's own)
    level: int = 0  # outline level: 1 in a group that can be collapsed
    hidden: bool = False  # in a group shown collapsed
    width: float = 12


@dataclass(frozen=True)
class Layout:
    """The Orders tab's columns and the services listed, for one template."""

    columns: tuple[TemplateColumn, ...]
    services: tuple[Listed, ...]
    default_panel: str
    rows: int = DEFAULT_ROWS

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def panels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(listed.panel for listed in self.services))

    @property
    def by_panel(self) -> bool:
        """Services are looked up by panel and ID (more than one panel, or not the default one)."""
        return self.panels != (self.default_panel,)

    @property
    def last_row(self) -> int:
        return self.rows + 1

    def has(self, name: str) -> bool:
        return name in self.names

    def number(self, name: str) -> int:
        """1-based column number of `name` on the Orders tab."""
        return self.names.index(name) + 1

    def letter(self, name: str) -> str:
        return column_letter(self.number(name))


# --- which services, which columns --------------------------------------------------------


def listed_services(catalogs: Mapping[str, Sequence[Service]]) -> list[Listed]:
    """Every service of every panel, in the panels' and the catalogs' order."""
    return [Listed(panel, service) for panel, services in catalogs.items() for service in services]


def narrowed(services: Iterable[Listed], category: str | None, service_type: str | None) -> list[Listed]:
    """The services whose category contains `category` and whose type is `service_type`
    (case, spaces and hyphens aside: `custom-comments` is `Custom Comments`)."""
    needle = (category or "").casefold()
    wanted = type_key(service_type) if service_type else None
    return [
        listed
        for listed in services
        if needle in listed.service.category.casefold()
        and (wanted is None or type_key(listed.service.type) == wanted)
    ]


def type_fields(service: Service) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) fields of the service's type, in column order. Drip-feed fields
    are optional unless the panel says the service has no drip-feed. A type the reference
    does not know takes a link and a quantity as far as the tool can tell."""
    path = schema_path(service.type)
    if path is None:
        return ("link", "quantity"), ()
    schema = load_schema(path)
    required = set(schema.get("required", ()))
    allowed = set(schema.get("properties", {}))
    if service.dripfeed is False:
        allowed -= set(DRIP_FIELDS)
    return (
        tuple(name for name in ORDER_FIELDS if name in required),
        tuple(name for name in ORDER_FIELDS if name in allowed - required),
    )


def _needed_fields(services: Iterable[Listed]) -> set[str]:
    """The order fields the services take; drip-feed only where the panel says it has it."""
    needed: set[str] = set()
    for listed in services:
        required, optional = type_fields(listed.service)
        needed.update(required)
        needed.update(name for name in optional if name not in DRIP_FIELDS or listed.service.dripfeed)
    return needed


def plan_layout(
    services: Sequence[Listed],
    default_panel: str,
    *,
    all_columns: bool = False,
    own_columns: Sequence[str] = (),
    rows: int = DEFAULT_ROWS,
    approval: bool = False,
) -> Layout:
    """The Orders tab for these services: narrow unless `all_columns`; `own_columns` are the
    team's own (kept after the type's columns); `approval`: with an `approved` column."""
    if not services:
        raise UsageError("no service to put in the template: the catalog is empty or nothing matched")
    if rows < 1:
        raise UsageError(f"rows must be 1 or more, not {rows}")
    by_panel = tuple(dict.fromkeys(listed.panel for listed in services)) != (default_panel,)
    needed = set(ORDER_FIELDS) if all_columns else _needed_fields(services)
    columns: list[TemplateColumn] = []
    if by_panel or all_columns:
        columns.append(TemplateColumn("panel", INPUT, width=12))
    columns.append(TemplateColumn("service", INPUT, width=_service_width(services)))
    columns += [TemplateColumn(name, INPUT, width=_width(name)) for name in ("link", "quantity")]
    columns += [TemplateColumn(name, OUTPUT, width=_width(name)) for name in FIRST_OUTPUTS]
    columns.append(TemplateColumn("estimate", COMPUTED, width=_width("estimate")))
    columns += [
        TemplateColumn(name, INPUT, level=1, width=_width(name))
        for name in ORDER_FIELDS
        if name in needed and name not in ("link", "quantity")
    ]
    columns += [TemplateColumn(name, OWN, width=_width(name)) for name in own_columns]
    if all_columns or any(listed.service.refill or listed.service.cancel for listed in services):
        columns.append(TemplateColumn(ACTION_COLUMN, INPUT, width=10))
    if all_columns or approval:
        columns.append(TemplateColumn(APPROVAL_COLUMN, INPUT, width=10))
    columns += [
        TemplateColumn(name, OUTPUT, level=1, hidden=True, width=_width(name)) for name in LATER_OUTPUTS
    ]
    return Layout(tuple(columns), tuple(services), default_panel, rows)


def _width(name: str) -> float:
    return _WIDTHS.get(name, max(10, len(name) + 3))


def _service_width(services: Iterable[Listed]) -> float:
    longest = max((len(service_entry(listed.service)) for listed in services), default=20)
    return min(60, max(24, longest + 2))


def layout_from_config(
    config: Config,
    *,
    panel: str | None = None,
    category: str | None = None,
    service_type: str | None = None,
    all_columns: bool = False,
    own_columns: Sequence[str] = (),
    rows: int = DEFAULT_ROWS,
    source: str | None = None,
) -> Layout:
    """The layout for the live catalogs of the configured panels (or `panel`), narrowed to a
    category and a type. Rows with no panel use the panel of the sheet `source` names in the
    config (else the first sheet's, else the first panel). A panel that fails raises its error."""
    from sheetorders.app import list_services  # here: app imports the pass, which imports this module

    results = list_services(config, panel)
    catalogs: dict[str, list[Service]] = {}
    for name, result in results.items():
        if isinstance(result, PanelError):
            raise result
        catalogs[name] = result
    services = narrowed(listed_services(catalogs), category, service_type)
    if not services:
        asked = " and ".join(
            text
            for text in (
                f"category {category!r}" if category else "",
                f"type {service_type!r}" if service_type else "",
            )
            if text
        )
        which = "panel " + ", ".join(catalogs) if len(catalogs) == 1 else "panels " + ", ".join(catalogs)
        raise UsageError(
            f"no service of {which} matches {asked or 'the template'}: `sheetorders services` lists them"
        )
    sheets = config.with_sheet_source(source).sheets if source and config.sheets else config.sheets
    default = next((sheet.panel for sheet in sheets[:1] if sheet.panel), None) or config.default_panel
    return plan_layout(services, default, all_columns=all_columns, own_columns=own_columns, rows=rows)


# --- the Services tab -------------------------------------------------------------------


def _rate_text(rate: Decimal) -> str:
    text = format(rate, "f")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def is_flat(service: Service) -> bool:
    return type_key(service.type) in FLAT_PRICE_TYPES


def price_of(service: Service) -> str:
    """How the service's rate makes an order's cost, as the pass estimates it."""
    key = type_key(service.type)
    if key in FLAT_PRICE_TYPES:
        return FLAT
    if key == SUBSCRIPTIONS:
        return PER_POST
    return PER_1000 if schema_path(service.type) is not None else PER_1000_OR_FLAT


def service_entry(service: Service) -> str:
    """The service's dropdown entry: `1 — Instagram Likes — 0.90 / 1000` (`… — 5.00 flat` for a
    package). The pass reads the ID before the first ` — ` (validate.parse_service_cell)."""
    name = " ".join(service.name.split())
    price = f"{_rate_text(service.rate)} flat" if is_flat(service) else f"{_rate_text(service.rate)} / 1000"
    return f"{service.id} — {name} — {price}"


def service_key(layout: Layout, listed: Listed) -> str:
    """What the estimate formula looks a service up by: its ID, or `panel|ID` by panel."""
    return f"{listed.panel}|{listed.service.id}" if layout.by_panel else listed.service.id


def units_of(service: Service) -> str:
    """What the quantity of an order is: the quantity column, the lines of a list, or nothing."""
    if is_flat(service):
        return ""
    if type_key(service.type) == SUBSCRIPTIONS:
        return POSTS_UNITS
    counted = LINE_COUNTED_TYPES.get(type_key(service.type))
    return f"lines of {counted}" if counted else "quantity"


def _yes(flag: bool | None) -> str:
    return "" if flag is None else "yes" if flag else "no"


def _id_cell(service_id: str) -> Cell:
    return int(service_id) if service_id.isdigit() else service_id


def services_table(layout: Layout) -> list[list[Cell]]:
    """The Services tab: the header row, then one row per service."""
    table: list[list[Cell]] = [list(SERVICES_HEADERS)]
    for listed in layout.services:
        service = listed.service
        required, optional = type_fields(service)
        row: list[Cell] = [
            listed.panel,
            _id_cell(service.id),
            service.name,
            service.category,
            service.type,
            service.rate,
            service.min,
            service.max,
            _yes(service.refill),
            _yes(service.cancel),
            _yes(service.dripfeed),
            ", ".join(required),
            ", ".join(optional),
            price_of(service),
            units_of(service),
            service_entry(service),
            service_key(layout, listed),
        ]
        table.append([None if value == "" else value for value in row])  # empty: no cell at all
    return table


def services_column(name: str) -> str:
    """The letter of a Services tab column."""
    return column_letter(SERVICES_HEADERS.index(name) + 1)


def quoted(tab: str) -> str:
    return "'" + tab.replace("'", "''") + "'"


def dropdown_source(layout: Layout) -> str:
    """The range the service dropdown lists (without a leading "=")."""
    column = services_column("entry")
    return f"{quoted(SERVICES_TAB)}!${column}$2:${column}${len(layout.services) + 1}"


# --- the estimate formula --------------------------------------------------------------


def _text(value: str) -> str:
    """A string literal in a formula."""
    return '"' + value.replace('"', '""') + '"'


def _lines(cell: str) -> str:
    """The number of lines of a cell, as a formula (0 when it is empty)."""
    return f'IF(LEN(TRIM({cell}))=0,0,LEN({cell})-LEN(SUBSTITUTE({cell},CHAR(10),""))+1)'


def estimate_formula(layout: Layout, row: int) -> str:
    """The `estimate` cell of a row, as the pass estimates the order (validate.estimate_cost and
    subscription_cost), by the service's `price` on the Services tab: the rate for a package;
    rate × max × (posts + old_posts) / 1000 for a subscription (without posts, one post's, or
    old_posts'); else rate × quantity / 1000 (× runs), the lines of comments or usernames being
    the quantity where they are counted, and a type the reference does not know priced at its
    rate without a quantity. Empty while the service is empty or not found, or nothing is
    counted yet. Only functions that Excel, LibreOffice and Google Sheets all compute (IF,
    IFERROR, INDEX, MATCH, LEFT, FIND, TRIM, LEN, SUBSTITUTE, CHAR), over whole columns of the
    Services tab, so a longer Services tab needs no new formula.
    """
    service = f"{layout.letter('service')}{row}"
    looked_up = _lookup(layout, row)
    rate, price = looked_up("rate"), looked_up("price")
    units = f"{layout.letter('quantity')}{row}"
    for counted in ("usernames", "comments"):
        if layout.has(counted):
            lines = _lines(f"{layout.letter(counted)}{row}")
            units = f"IF({looked_up('units')}={_text('lines of ' + counted)},{lines},{units})"
    runs = f"{layout.letter('runs')}{row}" if layout.has("runs") else None
    times = f'*IF({runs}="",1,{runs})' if runs else ""
    counted_cost = (
        f'IF({units}="",IF({price}={_text(PER_1000_OR_FLAT)},{rate},""),'
        f'IF({units}=0,"",{rate}*{units}{times}/1000))'
    )
    per_post = _per_post_cost(layout, row, rate, looked_up("max"))
    if per_post is not None:
        counted_cost = f"IF({price}={_text(PER_POST)},{per_post},{counted_cost})"
    cost = f"IF({price}={_text(FLAT)},{rate},{counted_cost})"
    return f'=IF(TRIM({service})="","",IFERROR({cost},""))'


def _lookup(layout: Layout, row: int) -> Callable[[str], str]:
    """A formula for a Services tab column of the row's service (by its ID, or panel and ID)."""
    service = f"{layout.letter('service')}{row}"
    key = f'LEFT(TRIM({service}),FIND(" ",TRIM({service})&" ")-1)'
    if layout.by_panel:
        panel = f"{layout.letter('panel')}{row}"
        key = f'IF(TRIM({panel})="",{_text(layout.default_panel)},TRIM({panel}))&"|"&{key}'
    tab = quoted(SERVICES_TAB)
    match = f"MATCH({key},{tab}!${services_column('key')}:${services_column('key')},0)"

    def looked_up(name: str) -> str:
        column = services_column(name)
        return f"INDEX({tab}!${column}:${column},{match})"

    return looked_up


def _per_post_cost(layout: Layout, row: int, rate: str, service_max: str) -> str | None:
    """A subscription's cost, as validate.subscription_cost: up to `max` (else the service's)
    per post, for posts + old_posts, or max(1, old_posts) without posts. None without the
    subscription columns."""
    if not all(layout.has(name) for name in ("max", "posts", "old_posts")):
        return None
    most, posts, old = (f"{layout.letter(name)}{row}" for name in ("max", "posts", "old_posts"))
    per_post = f'{rate}*IF({most}="",{service_max},{most})/1000'
    old_count = f'IF({old}="",0,{old})'
    count = f'IF({posts}="",IF({old_count}<1,1,{old_count}),{posts}+{old_count})'
    return f"{per_post}*{count}"


def status_formula(layout: Layout, statuses: Sequence[str]) -> str:
    """A conditional-format formula for the status column's first data row (no leading "=")."""
    cell = f"${layout.letter('status')}2"
    return "OR(" + ",".join(f"{cell}={_text(status)}" for status in statuses) + ")"


# --- limits, choices, prompts --------------------------------------------------------------

ACTION_CHOICES = ("refill", "cancel")
PROMPT_TITLE_MAX = 32  # Excel's limits
PROMPT_MAX = 255


def quantity_limits(layout: Layout) -> tuple[int, int] | None:
    """The lowest min and the highest max of the services whose quantity is typed."""
    typed = [listed.service for listed in layout.services if units_of(listed.service) == "quantity"]
    if not typed:
        return None
    return min(s.min for s in typed), max(s.max for s in typed)


def quantity_message(layout: Layout) -> str:
    typed = [listed.service for listed in layout.services if units_of(listed.service) == "quantity"]
    limits = quantity_limits(layout)
    if limits is None:
        return "No listed service takes a typed quantity."
    if len(typed) <= 3:
        each = "; ".join(f"service {s.id}: {s.min} to {s.max}" for s in typed)
        return _clip(f"A whole number. {each}.")
    return _clip(
        f"A whole number from {limits[0]} to {limits[1]}; each service's own min and max are on the "
        "Services tab."
    )


def _clip(text: str, limit: int = PROMPT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_OWN_PROMPTS = {
    "panel": "Which panel to order from: {panels}. Empty: {default}.",
    "service": (
        "Pick a service from the list (all of them are on the Services tab), or type its ID. "
        "The number before the first dash is what is ordered."
    ),
    "link": "The full address of the post, profile or page, starting with https://",
    "quantity": (
        "How many, as a whole number (per run with drip-feed). Empty for packages and where "
        "the lines of comments or usernames are counted. {limits}"
    ),
    "status": (
        "Written by sheetorders. Invalid or Rejected: fix the row, then clear status and error. "
        "Uncertain: check the panel, then type retry here or the order's ID in order_id."
    ),
    "order_id": "Written by sheetorders once the order is placed. Leave it: it keeps the row from "
    "being ordered twice.",
    "charge": "Written by sheetorders: what the panel charged for the order.",
    "error": "Written by sheetorders: why the row was not placed, and what to do about it.",
    "estimate": (
        "Computed as you type, as sheetorders prices it: rate × quantity / 1000 (× runs); a "
        "package's flat price; a subscription's rate × max × (posts + old_posts) / 1000. "
        "Nothing reads it; charge has what the panel took."
    ),
    "action": "Pick refill or cancel in a row that has an order_id: the next run or sync sends it once.",
    "approved": (
        "With approval: true in the config, type yes (or x, or tick) to have the row placed; "
        "editing the row afterwards voids the approval."
    ),
    "ref": "Written by sheetorders: ties the row to its journal. Leave it.",
    "currency": "Written by sheetorders: the currency of charge.",
    "start_count": "Written by sheetorders: the count when the order started.",
    "remains": "Written by sheetorders: what is left to deliver.",
    "updated_at": "Written by sheetorders: when it last wrote this row.",
    "refill_id": "Written by sheetorders: the refill's ID, after a refill action.",
    "refill_status": "Written by sheetorders: the refill's status.",
}


def _field_description(name: str) -> str:
    """What the reference's schemas say about an order field, in a person's words."""
    for service_type in SERVICE_TYPES:
        path = schema_path(service_type)
        properties = load_schema(path)["properties"] if path else {}
        if name in properties and properties[name].get("description"):
            text = str(properties[name]["description"])
            return text.replace("of the cell; sent joined with \\n.", "(Alt+Enter starts a new line).")
    return "Passed to the panel as typed."


def header_prompt(layout: Layout, column: TemplateColumn) -> tuple[str, str]:
    """(title, message) of the input message on a header cell, within Excel's limits."""
    name = column.name
    if name in _OWN_PROMPTS:
        text = _OWN_PROMPTS[name].format(
            panels=", ".join(layout.panels),
            default=layout.default_panel,
            limits=quantity_message(layout) if name == "quantity" else "",
        )
    elif column.role == OWN:
        text = "Your own column: sheetorders leaves it alone."
    else:
        types = sorted(
            {listed.service.type for listed in layout.services if name in _all_fields(listed.service)}
        )
        used = f" For: {', '.join(types)}." if types else ""
        text = _field_description(name) + used
    role = {OUTPUT: " (sheetorders)", COMPUTED: " (formula)"}.get(column.role, "")
    return _clip(name + role, PROMPT_TITLE_MAX), _clip(text.strip())


def _all_fields(service: Service) -> tuple[str, ...]:
    required, optional = type_fields(service)
    return required + optional


# --- the Help tab --------------------------------------------------------------------------


def help_rows(layout: Layout) -> list[list[Cell]]:
    rows: list[list[Cell]] = [
        ["What to fill", "One order per row: pick a service, then link and quantity, and what its type "
         "needs (the blue columns; select a header to see what it takes)."],
        ["Grey columns", "Written by sheetorders. Leave ref and order_id alone: they keep an order "
         "from being placed twice."],
        ["estimate", "The cost of the row as you type it, from the Services tab's rates and prices "
         "(a subscription: up to max per post, for posts + old_posts; without posts it has no bound). "
         f"Prepared for rows 2 to {layout.last_row}: copy it down for more rows."],
        ["Lists", "comments, usernames, hashtags, keywords and groups: one item per line inside the "
         "cell (Alt+Enter)."],
        ["Drip-feed", "runs and interval (minutes) on a service that has drip-feed; quantity is per run."],
        ["Services tab", "The catalog this sheet was made from. Run sheetorders template again for a "
         "current one; a service whose name changed is still ordered by its ID, with a warning."],
        ["Then", "sheetorders run --dry-run checks and prices every row; sheetorders run places them."],
        [],
        ["service type", "required", "optional / notes"],
    ]  # fmt: skip
    rows += [list(fields) for fields in TYPE_FIELDS]
    return rows


# --- what the command says -------------------------------------------------------------------


def is_configured_sheet(config: Config, source: str) -> bool:
    """Whether `source` is one of the config's sheets (by name, source, file or spreadsheet key)."""
    key = spreadsheet_key(source)
    for sheet in config.sheets:
        if source in (sheet.source, sheet.name):
            return True
        if key is not None:
            if key == spreadsheet_key(sheet.source):
                return True
        elif spreadsheet_key(sheet.source) is None and Path(source).resolve() == Path(sheet.source).resolve():
            return True
    return False


def summary(layout: Layout, where: str, run_hint: str) -> list[str]:
    """A few lines on what was written and what to do next."""
    panels = ", ".join(layout.panels)
    grouped = [column.name for column in layout.columns if column.level and not column.hidden]
    shown = [column.name for column in layout.columns if not column.level]
    lines = [
        f"Wrote {where}: {len(layout.services)} services of panel {panels} on the {SERVICES_TAB} tab.",
        f"{ORDERS_TAB} columns: {', '.join(shown)}"
        + (f"; for some types (a group): {', '.join(grouped)}" if grouped else "")
        + f"; sheetorders' other columns are in a collapsed group. Rows 2 to {layout.last_row} "
        "are ready: pick a service, fill link and quantity, and watch estimate.",
        f"Next: {run_hint}    (checks and prices every row; places nothing)",
    ]
    return lines


# --- keeping the Services tab current ----------------------------------------------------


def _same(old: Cell, new: Cell) -> bool:
    """Whether a cell as read already shows `new` (0.9 read back is the rate 0.90)."""
    numbers = (int, float, Decimal)
    if isinstance(old, numbers) and isinstance(new, numbers) and bool not in (type(old), type(new)):
        return Decimal(str(old)) == Decimal(str(new))
    return cell_text(old) == cell_text(new)


def refreshed_services(table: SheetTable, catalogs: Mapping[str, Mapping[str, Service]]) -> list[CellWrite]:
    """The cells that bring a template's Services tab, as read, up to date with the catalogs
    (panel -> service ID -> Service): the current name, rate, limits, flags and dropdown entry
    of each service it lists; a service gone from its catalog loses its row (the rows below
    move up, the last ones are cleared). The rows of a panel whose catalog is not given stay as
    they are. Services new to a catalog are not added: the service dropdown lists the rows the
    template was made with (`sheetorders template` again for those). Nothing for a tab that is
    current, or that is not a template's Services tab."""
    headers = [cell_text(h) for h in table.headers]
    if tuple(headers[: len(SERVICES_HEADERS)]) != SERVICES_HEADERS:
        return []
    width = len(SERVICES_HEADERS)
    panel_at, id_at, key_at = (SERVICES_HEADERS.index(name) for name in ("panel", "id", "key"))
    by_panel = any("|" in cell_text(row[key_at]) for row in table.rows if len(row) > key_at)
    wanted: list[list[Cell]] = []
    for row in table.rows:
        cells = [*row, *[None] * width][:width]
        panel = cell_text(cells[panel_at])
        if panel not in catalogs:
            if any(cell is not None for cell in cells):
                wanted.append(cells)  # nothing to compare it with in this pass
            continue
        service = catalogs[panel].get(cell_text(cells[id_at]))
        if service is not None:
            listed = Listed(panel, service)
            wanted += services_table(Layout((), (listed,), "" if by_panel else panel))[1:]
    writes: list[CellWrite] = []
    for index in range(max(len(wanted), len(table.rows))):
        new = wanted[index] if index < len(wanted) else [None] * width
        old = table.rows[index] if index < len(table.rows) else []
        for column, value in enumerate(new):
            current = old[column] if column < len(old) else None
            if not _same(current, value):
                writes.append(CellWrite(index + 2, column + 1, value))
    return writes


def refresh_services_tab(
    source: str, options: Mapping[str, Any], catalogs: Mapping[str, Mapping[str, Service]]
) -> int:
    """Bring the Services tab of the sheet `source` up to date (`refreshed_services`), in one
    write; the number of cells written (0: current, or no Services tab). It opens the sheet
    on its own: call it outside a pass's read and write of the Orders tab (an Excel file
    changed in between would make that write refuse)."""
    backend = open_backend(source, SERVICES_TAB, options)
    try:
        try:
            table = backend.read()
        except SheetError:
            return 0  # not a template's sheet
        writes = refreshed_services(table, catalogs)
        if writes:
            backend.write(writes)
        return len(writes)
    finally:
        backend.close()
