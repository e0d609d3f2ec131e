"""Turn one sheet row into an order request, or into the list of what is wrong with it.

Pure rules: the only I/O is loading the per-type JSON Schemas (`schemas/orders/`).

A row goes through three steps:

1. normalisation: every cell is stripped (empty = missing); formulas are refused; whole-number
   columns become ints, one-per-line columns become lists of non-empty lines, link columns must
   be http(s) URLs, `expiry` becomes d/m/Y;
2. the JSON Schema of the service's type: which fields are required, which are allowed;
3. the catalog rules, in plain code: quantity within the service's min..max, drip-feed allowed.

Every problem of the row is collected, each naming the value and what is allowed.

Service types that are not in the reference (a panel may sell more): only `link` and `quantity`
are checked (when filled); every other filled field is passed through as typed in the sheet
(stripped; whole numbers as int; one-per-line columns as their non-empty lines) for the panel
to judge. Their cost is rate × quantity / 1000, or the flat rate when there is no quantity.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from sheetorders.cells import cell_text
from sheetorders.columns import INPUT_COLUMNS, LIST_FIELDS, ORDER_FIELDS
from sheetorders.models import Service
from sheetorders.resources import load_schema

# The service types of the panel API v2 reference, each with schemas/orders/<key>.schema.json.
SERVICE_TYPES = (
    "Default",
    "Package",
    "SEO",
    "Custom Comments",
    "Custom Comments Package",
    "Mentions",
    "Mentions with Hashtags",
    "Mentions Custom List",
    "Mentions Hashtag",
    "Mentions User Followers",
    "Mentions Media Likers",
    "Comment Likes",
    "Comment Replies",
    "Poll",
    "Invites from Groups",
    "Subscriptions",
    "Web Traffic",
)

# Priced at the flat `rate`, whatever the quantity. Subscriptions are in this group by choice:
# their real charge accrues per served post and cannot be known when the order is placed, so
# the estimate is the listed rate, like a package.
FLAT_PRICE_TYPES = frozenset({"package", "custom_comments_package"})

# Types whose quantity is the number of non-empty lines of a list column; `add` does not send
# a quantity for them. Comment Replies has no quantity field either, so the panel counts its
# comments the same way.
LINE_COUNTED_TYPES: Mapping[str, str] = {
    "custom_comments": "comments",
    "mentions_custom_list": "usernames",
    "comment_replies": "comments",
}

INTEGER_FIELDS = frozenset(
    {"quantity", "runs", "interval", "answer_number", "min", "max", "posts", "old_posts", "delay"}
)
LINK_FIELDS = frozenset({"link", "media", "referring_url"})
DATE_FIELDS = frozenset({"expiry"})
DRIP_FIELDS = ("runs", "interval")

_SHORTEN_AT = 40
_WHOLE = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_DMY = re.compile(r"(0?[1-9]|[12][0-9]|3[01])/(0?[1-9]|1[0-2])/([0-9]{4})")
_SPACE = re.compile(r"\s")
_TYPE_SEPARATORS = re.compile(r"[^a-z0-9]+")
_ORDER_FIELD_SET = frozenset(ORDER_FIELDS)
_COLUMN_ORDER = {name: index for index, name in enumerate(INPUT_COLUMNS)}
# A template's dropdown entry: `1 — Instagram Followers — 0.90 / 1000` (an ID, a dash, the name).
_SERVICE_ENTRY = re.compile(r"\s*([0-9]+)\s+[—–-]\s+(.*)", re.DOTALL)
_NAME_SPACE = re.compile(r"\s+")

log = logging.getLogger("sheetorders.validate")


@dataclass(frozen=True)
class RowProblem:
    row: int  # the sheet row number
    column: str  # canonical column name
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}"


@dataclass(frozen=True)
class OrderRequest:
    row: int
    panel: str
    service: Service
    fields: dict[str, str | int]  # what `add` sends besides `service`
    quantity: int | None  # counted lines for line-counted types; None for flat-price types
    estimated_cost: Decimal
    unbounded: bool = False  # the cost has no upper bound (a subscription without posts)

    @property
    def dedupe_key(self) -> tuple[str, str, str]:
        """Rows sharing this key go one at a time: a panel runs one order per link and service.

        `same_target_key` of the link (or username) that is sent, so it matches the key of an
        order read back from the sheet.
        """
        return same_target_key(
            self.panel, self.service.id, self.fields.get("link"), self.fields.get("username")
        )


def same_target_key(
    panel: str, service: object, link: object, username: object = None
) -> tuple[str, str, str]:
    """(panel, service, target): two orders with the same key must not run at the same time.

    `service` is a service cell: a whole number or a dropdown entry gives the ID's int string
    (`1.0`, `" 1 "`, `"1 — Instagram Likes — 0.90 / 1000"` -> `"1"`), anything else its
    `cell_text`. The target is the link's `cell_text`, or, when the link is empty
    (Subscriptions have none), the username's.
    """
    try:
        service_text = str(parse_service_cell(service)[0])
    except ValueError:
        service_text = cell_text(service)
    return (panel, service_text, cell_text(link) or cell_text(username))


# --- small helpers ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def type_key(service_type: str) -> str:
    """`Mentions with Hashtags` -> `mentions_with_hashtags`, the stem of its schema file."""
    return _TYPE_SEPARATORS.sub("_", service_type.strip().lower()).strip("_")


def schema_path(service_type: str) -> str | None:
    """`load_schema` path of the type's schema, or None for a type not in the reference."""
    key = type_key(service_type)
    return f"orders/{key}.schema.json" if key in _KNOWN_TYPE_KEYS else None


_KNOWN_TYPE_KEYS = frozenset(type_key(name) for name in SERVICE_TYPES)


def show(value: object) -> str:
    """A cell value as a message shows it: text quoted, numbers bare, long values shortened."""
    if isinstance(value, str):
        text = '"' + value.replace("\r\n", "\n").replace("\n", "\\n") + '"'
    elif isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, datetime):
        text = value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(" ")
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return text if len(text) <= _SHORTEN_AT else text[: _SHORTEN_AT - 1] + "…"


def _describe(service: Service) -> str:
    return f"service {service.id} {show(service.name)}"


def is_http_url(value: object) -> bool:
    """An absolute http(s) URL with a host and no whitespace."""
    if not isinstance(value, str) or _SPACE.search(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def parse_whole_number(value: object) -> int:
    """1, 1.0, Decimal("1"), "1", " 1 " and "1.0" all give 1. Negative numbers parse too (range
    checks are the caller's). Raises ValueError for anything else, saying what is allowed."""
    if isinstance(value, bool):
        pass  # a checkbox, not a number (bool is an int subclass)
    elif isinstance(value, int):
        return value
    elif isinstance(value, float):
        if value.is_integer():
            return int(value)
    elif isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _WHOLE.fullmatch(text):
            return int(text.split(".", 1)[0])
    raise ValueError(
        f"{show(value.strip() if isinstance(value, str) else value)} is not a whole number; "
        "use digits only, like 100"
    )


def _clean(value: object) -> object:
    """Strip text; empty text (and None) becomes None. Other values keep their type (a number is
    parsed or read with `cell_text` by the column's own rule)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def is_blank_row(cells: Mapping[str, object]) -> bool:
    """True when no order input (panel, service, order fields) is filled.

    The tool's own output columns, `action` and the user's other columns do not count.
    """
    return all(_clean(cells.get(column)) is None for column in INPUT_COLUMNS)


def estimate_cost(service: Service, quantity: int | None, runs: int | None) -> Decimal:
    """rate × quantity / 1000 (× runs for drip-feed), or the flat rate for package types.

    A type with no quantity that is not a known package type (one the reference does not know)
    is priced at the flat rate too. Exact Decimal, not rounded.
    """
    if type_key(service.type) in FLAT_PRICE_TYPES or quantity is None:
        return service.rate
    units = quantity * (runs if runs is not None else 1)
    return (service.rate * units).scaleb(-3)


# --- schemas --------------------------------------------------------------------------------

_FORMAT_CHECKER = FormatChecker()
# jsonschema's own "uri" check needs an optional package; this one is the rule the tool applies.
_FORMAT_CHECKER.checks("uri")(is_http_url)

# For types the reference does not know: check link and quantity, let everything else through.
_UNKNOWN_TYPE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Order of a type the reference does not know",
    "type": "object",
    "properties": {
        "link": {"type": "string", "format": "uri", "pattern": "^https?://"},
        "quantity": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": True,
}


# Object-level keywords whose verdict depends only on which properties are present.
_SHAPE_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "required",
        "properties",
        "additionalProperties",
        "dependentRequired",
    }
)


@dataclass(frozen=True)
class _TypeSchema:
    """One type's schema, compiled in two parts that give the same verdict as the whole.

    `shape` holds the object keywords (required, additionalProperties, dependentRequired) with
    every property schema replaced by `true`: its result depends only on which columns are
    filled, so it is cached per set of columns. `values` holds one validator per property.
    Validating whole rows with jsonschema took most of the time of a row; this split does not.
    A schema using other object keywords (if/then, allOf...) is validated whole (`split` False).
    """

    schema: Mapping[str, Any]
    whole: Draft202012Validator
    shape: Draft202012Validator
    values: Mapping[str, Draft202012Validator]

    @property
    def split(self) -> bool:
        return self.schema.keys() <= _SHAPE_KEYWORDS

    @property
    def allowed(self) -> frozenset[str] | None:
        """The fields the type takes; None when it lets any field through."""
        if self.schema.get("additionalProperties", True) is not False:
            return None
        return frozenset(self.schema["properties"])


@cache
def type_schema(key: str | None) -> _TypeSchema:
    """The compiled schema of a type key (`type_key`); None: a type the reference does not know."""
    schema = _UNKNOWN_TYPE_SCHEMA if key is None else load_schema(f"orders/{key}.schema.json")
    properties = schema.get("properties", {})
    shape = {**schema, "properties": dict.fromkeys(properties, True)}
    return _TypeSchema(
        schema=schema,
        whole=Draft202012Validator(schema, format_checker=_FORMAT_CHECKER),
        shape=Draft202012Validator(shape, format_checker=_FORMAT_CHECKER),
        values={
            name: Draft202012Validator({"$schema": schema["$schema"], **sub}, format_checker=_FORMAT_CHECKER)
            for name, sub in properties.items()
        },
    )


@lru_cache(maxsize=1024)
def _shape_errors(key: str | None, columns: frozenset[str]) -> tuple[ValidationError, ...]:
    return tuple(type_schema(key).shape.iter_errors(dict.fromkeys(columns)))


# Quantities, usernames, lists of lines repeat from row to row, so their verdicts are cached;
# links mostly do not repeat and are checked each time.
@lru_cache(maxsize=8192)
def _value_errors(
    key: str | None, column: str, value: str | int | tuple[str, ...]
) -> tuple[ValidationError, ...]:
    validator = type_schema(key).values[column]
    return tuple(validator.iter_errors(list(value) if isinstance(value, tuple) else value))


def _schema_errors(key: str | None, instance: Mapping[str, Any]) -> list[tuple[str, ValidationError]]:
    """(column, error) for every way the instance breaks the type's schema.

    The values of the type's own fields are what `_normalize` made (never bool, so 1 and True
    cannot share a cache entry); fields the type does not take are only looked at by `shape`.
    """
    compiled = type_schema(key)
    if not compiled.split:
        return [
            (str(error.path[0]) if error.path else "", error)
            for error in compiled.whole.iter_errors(instance)
        ]
    found = [("", error) for error in _shape_errors(key, frozenset(instance))]
    for column, value in instance.items():
        validator = compiled.values.get(column)
        if validator is None:
            continue
        if column in LINK_FIELDS:
            errors: Iterable[ValidationError] = validator.iter_errors(value)
        else:
            errors = _value_errors(key, column, tuple(value) if isinstance(value, list) else value)
        found.extend((column, error) for error in errors)
    return found


# --- the row --------------------------------------------------------------------------------


class _Problems:
    def __init__(self, row: int) -> None:
        self.row = row
        self.items: dict[tuple[str, str], RowProblem] = {}
        self.columns: set[str] = set()

    def add(self, column: str, message: str) -> None:
        self.columns.add(column)
        self.items.setdefault((column, message), RowProblem(self.row, column, message))

    def sorted(self) -> list[RowProblem]:
        return sorted(self.items.values(), key=lambda p: _COLUMN_ORDER.get(p.column, len(_COLUMN_ORDER)))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _normalize(column: str, value: object) -> tuple[Any, str | None]:
    """The value as the schema sees it, or (None, message) when it cannot be one."""
    if isinstance(value, str) and value.startswith("="):
        return None, f"{show(value)} is a formula; type the value itself"
    if column in INTEGER_FIELDS:
        try:
            return parse_whole_number(value), None
        except ValueError as exc:
            return None, str(exc)
    if column in DATE_FIELDS:
        return _normalize_date(value)
    if isinstance(value, bool):
        return None, f"{show(value)} is a checkbox value, not text"
    if isinstance(value, (datetime, date)):
        return None, f"{show(value)} is a date, not text"
    if column in LIST_FIELDS:
        # A number in a one-per-line column is a single line (e.g. one numeric username).
        return _lines(cell_text(value)), None
    text = cell_text(value)
    if column in LINK_FIELDS and not is_http_url(text):
        if _SPACE.search(text):
            return None, f"{show(text)} is not a valid URL: it contains spaces"
        return None, f"{show(text)} is not an http(s) URL; write the full address, starting with https://"
    return text, None


def _normalize_date(value: object) -> tuple[str | None, str | None]:
    if isinstance(value, (datetime, date)):
        return value.strftime("%d/%m/%Y"), None
    text = value.strip() if isinstance(value, str) else None
    match = _DMY.fullmatch(text) if text else None
    if not match:
        return None, f"{show(value)} is not a date written d/m/Y, like 31/12/2025"
    day, month, year = (int(part) for part in match.groups())
    try:
        return date(year, month, day).strftime("%d/%m/%Y"), None
    except ValueError:
        return None, f"{show(value)} is not a real date"


def _passthrough(column: str, value: object) -> str | int:
    """A field of an unknown type, as typed: whole numbers as int, lists as their lines."""
    if column in LIST_FIELDS and not isinstance(value, bool):
        return "\n".join(_lines(cell_text(value)))
    if isinstance(value, (datetime, date)):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, bool):
        return cell_text(value)
    try:
        return parse_whole_number(value)
    except ValueError:
        return cell_text(value)


def _resolve_panel(
    cells: Mapping[str, object],
    catalogs: Mapping[str, Mapping[str, Service]],
    default_panel: str,
    problems: _Problems,
) -> str | None:
    configured = ", ".join(show(name) for name in sorted(catalogs)) or "(no panel is configured)"
    value = _clean(cells.get("panel"))
    if value is None:
        if default_panel in catalogs:
            return default_panel
        problems.add(
            "panel",
            f"empty, and the default panel {show(default_panel)} is not configured; use one of {configured}",
        )
        return None
    if isinstance(value, str) and value.startswith("="):
        problems.add("panel", f"{show(value)} is a formula; type the value itself")
        return None
    name = cell_text(value)
    if name in catalogs:
        return name
    folded = [known for known in catalogs if known.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    problems.add(
        "panel",
        f"{show(name)} is not a configured panel; use one of {configured}, "
        f"or leave it empty for {show(default_panel)}",
    )
    return None


def _resolve_service(
    cells: Mapping[str, object],
    panel: str | None,
    catalogs: Mapping[str, Mapping[str, Service]],
    problems: _Problems,
) -> Service | None:
    value = _clean(cells.get("service"))
    if value is None:
        problems.add("service", "empty; every order needs the ID of a service from the panel's catalog")
        return None
    if isinstance(value, str) and value.startswith("="):
        problems.add("service", f"{show(value)} is a formula; type the value itself")
        return None
    try:
        service_id, typed_name = parse_service_cell(value)
    except ValueError as exc:
        problems.add("service", str(exc))
        return None
    if panel is None:
        return None
    service = catalogs[panel].get(str(service_id))
    if service is None:
        problems.add("service", f"{service_id} is not in the catalog of panel {show(panel)}")
    elif typed_name is not None:
        warning = service_name_warning(typed_name, service, panel)
        if warning:
            # Not a problem of the row (the ID decides what is ordered): said on the log.
            log.warning("row %d, service: %s", problems.row, warning)
    return service


def parse_service_cell(value: object) -> tuple[int, str | None]:
    """The service ID a `service` cell names, and the text typed after it, if any.

    `1`, `1.0`, `" 1 "` -> (1, None). A template's dropdown entry, a whole number then ` — `
    (or ` - `) then the name, gives its number: `"1 — Instagram Likes — 0.90 / 1000"` ->
    (1, "Instagram Likes — 0.90 / 1000"). Raises ValueError for anything else, saying what
    is allowed.
    """
    if isinstance(value, str):
        match = _SERVICE_ENTRY.fullmatch(value)
        if match:
            return int(match.group(1)), match.group(2).strip()
    return parse_whole_number(value), None


def service_name_warning(typed_name: str, service: Service, panel: str) -> str | None:
    """What to say when the name after a dropdown entry's ID is no longer the catalog's name
    for that ID (the panel renamed it, or the ID now sells something else); None when it is.
    The name may be followed by ` — ` and more (the entry's price)."""
    typed = _NAME_SPACE.sub(" ", typed_name).strip().casefold()
    name = _NAME_SPACE.sub(" ", service.name).strip().casefold()
    if typed == name or any(typed.startswith(name + dash) for dash in (" — ", " – ", " - ")):
        return None
    return (
        f"{service.id} is now {show(service.name)} in the catalog of panel {show(panel)}, not "
        f"{show(typed_name)}; service {service.id} is what is ordered: check the row, and run "
        "`sheetorders template` again for a current list"
    )


def validate_row(
    row: int,
    cells: Mapping[str, object],
    catalogs: Mapping[str, Mapping[str, Service]],
    default_panel: str,
) -> OrderRequest | list[RowProblem]:
    """The order this row asks for, or every problem found in it (never an empty list)."""
    problems = _Problems(row)
    panel = _resolve_panel(cells, catalogs, default_panel, problems)
    service = _resolve_service(cells, panel, catalogs, problems)
    filled = _filled_fields(cells)
    if service is None:
        # No type to check against: report what is wrong with the values themselves.
        for column, value in filled.items():
            _, message = _normalize(column, value)
            if message:
                problems.add(column, message)
        return problems.sorted()

    parsed = _parse_fields(service, filled, problems)
    _schema_problems(_schema_errors(parsed.known_key, parsed.instance), service, problems)
    quantity = _catalog_rules(service, parsed, problems)
    if problems.items:
        return problems.sorted()

    fields = parsed.fields()
    runs = fields.get("runs")
    if type_key(service.type) == "subscriptions":
        cost, unbounded = subscription_cost(service, fields)
        return OrderRequest(row, panel or default_panel, service, fields, quantity, cost, unbounded=unbounded)
    return OrderRequest(
        row=row,
        panel=panel or default_panel,
        service=service,
        fields=fields,
        quantity=quantity,
        estimated_cost=estimate_cost(service, quantity, runs if isinstance(runs, int) else None),
    )


def subscription_cost(service: Service, fields: Mapping[str, object]) -> tuple[Decimal, bool]:
    """What a subscription may cost at most: up to `max` per post, for `posts` new posts and
    `old_posts` existing ones; without `posts` it has no bound (the cost of one post is given)."""
    most = fields.get("max")
    per_post = service.rate * (most if isinstance(most, int) else service.max) / 1000
    posts, old = fields.get("posts"), fields.get("old_posts")
    count = (posts if isinstance(posts, int) else 0) + (old if isinstance(old, int) else 0)
    if not isinstance(posts, int):
        return per_post * max(1, count), True
    return per_post * count, False


def _filled_fields(cells: Mapping[str, object]) -> dict[str, object]:
    """The row's filled order fields (panel and service aside), text stripped."""
    return {
        column: value
        for column, raw in cells.items()
        if raw is not None and column in _ORDER_FIELD_SET and (value := _clean(raw)) is not None
    }


@dataclass
class _ParsedFields:
    """A row's order fields, sorted out for the service's type."""

    key: str  # type_key of the service's type
    known_key: str | None  # `key`, or None for a type the reference does not know
    counted_column: str | None  # the list column whose lines are the quantity, if any
    instance: dict[str, Any] = field(default_factory=dict)  # what the type's schema checks
    extra: dict[str, str | int] = field(default_factory=dict)  # unknown type: passed through unchecked
    typed_quantity: int | None = None  # a quantity typed for a line-counted type

    def fields(self) -> dict[str, str | int]:
        """What `add` sends besides `service`, in column order; lists as one line per item."""
        fields: dict[str, str | int] = {}
        for column in ORDER_FIELDS:
            if column in self.instance:
                value = self.instance[column]
                fields[column] = "\n".join(value) if isinstance(value, list) else value
            elif column in self.extra:
                fields[column] = self.extra[column]
        return fields


def _parse_fields(service: Service, filled: Mapping[str, object], problems: _Problems) -> _ParsedFields:
    """Normalise the filled fields for the service's type; what cannot be normalised is a problem."""
    key = type_key(service.type)
    known_key = key if key in _KNOWN_TYPE_KEYS else None
    parsed = _ParsedFields(key=key, known_key=known_key, counted_column=LINE_COUNTED_TYPES.get(key))
    allowed = type_schema(known_key).allowed
    for column, value in filled.items():
        if allowed is None and column not in ("link", "quantity"):
            if isinstance(value, str) and value.startswith("="):
                problems.add(column, f"{show(value)} is a formula; type the value itself")
            else:
                parsed.extra[column] = _passthrough(column, value)
            continue
        if parsed.counted_column and column == "quantity":
            parsed.typed_quantity, message = _normalize(column, value)
            if message:
                problems.add(column, message)
            continue
        if allowed is not None and column not in allowed:
            parsed.instance[column] = value  # only its presence matters: additionalProperties reports it
            continue
        normalized, message = _normalize(column, value)
        if message:
            problems.add(column, message)
        else:
            parsed.instance[column] = normalized
    return parsed


def _schema_problems(
    errors: list[tuple[str, ValidationError]], service: Service, problems: _Problems
) -> None:
    """jsonschema's findings as one-line messages for people. Columns that already have a
    problem from normalisation are left out, so one mistake gives one message."""
    if not errors:
        return
    already = set(problems.columns)
    where = f"{_describe(service)} (type {service.type})"
    for column, error in errors:
        # jsonschema fills these on every error it yields; the type stubs also allow its
        # internal "unset" marker, which never reaches here.
        instance: Any = error.instance
        expected: Any = error.validator_value
        schema: Any = error.schema
        if error.validator == "required":
            for name in expected:
                if name not in instance and name not in already:
                    problems.add(name, f"empty, but {where} needs it")
        elif error.validator == "additionalProperties":
            known = schema.get("properties", {})
            for name in instance:
                if name not in known:
                    problems.add(name, f"not used by {where}; leave it empty")
        elif error.validator == "dependentRequired":
            for present, needed in expected.items():
                for name in needed:
                    if present in instance and name not in instance and name not in already:
                        problems.add(
                            name, f"empty, but {present} is filled; drip-feed needs both runs and interval"
                        )
        elif column not in already:
            value = instance
            if error.validator == "minimum":
                problems.add(
                    column,
                    f"{show(value)} is not allowed; use a whole number of at least {expected}",
                )
            elif column in LINK_FIELDS:
                problems.add(
                    column,
                    f"{show(value)} is not an http(s) URL; write the full address, starting with https://",
                )
            elif column in DATE_FIELDS:
                problems.add(column, f"{show(value)} is not a date written d/m/Y, like 31/12/2025")
            else:
                problems.add(column or "service", f"{show(value)} is not what {where} accepts here")


def _catalog_rules(service: Service, parsed: _ParsedFields, problems: _Problems) -> int | None:
    """Check the service's limits; return the counted quantity of the order."""
    # Drip-feed columns that passed the other checks (unknown types pass them through unchecked).
    drip = [
        column
        for column in DRIP_FIELDS
        if (column in parsed.instance or column in parsed.extra) and column not in problems.columns
    ]
    if parsed.counted_column:
        quantity = _counted_quantity(service, parsed, parsed.counted_column, problems)
    else:
        quantity = _typed_quantity(service, parsed, problems)
    if drip and service.dripfeed is False:
        problems.add(
            drip[0],
            f"{_describe(service)} does not support drip-feed (runs/interval); leave runs and interval empty",
        )
    if parsed.key == "subscriptions":
        _subscription_limits(service, parsed.instance, problems)
    return quantity


def _counted_quantity(
    service: Service, parsed: _ParsedFields, counted_column: str, problems: _Problems
) -> int | None:
    """The number of lines of a line-counted type, within the service's limits and matching any
    quantity typed as well."""
    lines = parsed.instance.get(counted_column)
    bad = problems.columns
    if not isinstance(lines, list) or counted_column in bad:
        return None
    quantity = len(lines)
    noun = "line" if quantity == 1 else "lines"
    verb = "is" if quantity == 1 else "are"
    limit = _outside_limits(quantity, service)
    if limit:
        problems.add(
            counted_column,
            f"{quantity} non-empty {noun} {verb} {limit}; the quantity is the number of lines",
        )
    typed = parsed.typed_quantity
    if typed is not None and typed != quantity and "quantity" not in bad:
        problems.add(
            "quantity",
            f"{typed} does not match the {quantity} non-empty {noun} of "
            f"{counted_column}; leave quantity empty (the lines are counted)",
        )
    return quantity


def _typed_quantity(service: Service, parsed: _ParsedFields, problems: _Problems) -> int | None:
    """The quantity column, within the service's limits; None for flat-price types."""
    quantity = parsed.instance.get("quantity")
    if parsed.key in FLAT_PRICE_TYPES or not isinstance(quantity, int) or "quantity" in problems.columns:
        return None
    limit = _outside_limits(quantity, service)
    if limit:
        problems.add("quantity", f"{quantity} is {limit}")
    return quantity


def _subscription_limits(service: Service, instance: Mapping[str, Any], problems: _Problems) -> None:
    """A subscription's min and max quantity per post: within the service's limits, min <= max."""
    bad = problems.columns
    low, high = instance.get("min"), instance.get("max")
    if isinstance(low, int) and "min" not in bad and low < service.min:
        problems.add("min", f"{low} is below the minimum {service.min} for {_describe(service)}")
    if isinstance(high, int) and "max" not in bad:
        if high > service.max:
            problems.add("max", f"{high} is above the maximum {service.max} for {_describe(service)}")
        if isinstance(low, int) and "min" not in bad and high < low:
            problems.add("max", f"{high} is below min {low}; max must be at least min")


def _outside_limits(quantity: int, service: Service) -> str | None:
    if quantity < service.min:
        return f"below the minimum {service.min} for {_describe(service)}"
    if quantity > service.max:
        return f"above the maximum {service.max} for {_describe(service)}"
    return None
