"""The config file: YAML, `${ENV_VAR}` substitution, validated against schemas/config.schema.json."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from sheetorders.errors import ConfigError
from sheetorders.resources import load_schema

CONFIG_FILENAME = "sheetorders.yaml"
CONFIG_ENV = "SHEETORDERS_CONFIG"
DEFAULT_JOURNAL = ".sheetorders/journal.sqlite"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
NOTIFY_EVENTS = ("problems", "low_balance", "panel_down", "stopped")
DEFAULT_PANEL_DOWN_AFTER = 3
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Budget:
    """Limits on spend over time; days and months start at midnight in `timezone`."""

    daily: Decimal | None = None
    monthly: Decimal | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class NotifyConfig:
    """Where notifications go (apprise URLs, which may hold tokens: kept out of repr) and when."""

    urls: tuple[str, ...] = field(repr=False)
    on: frozenset[str] = frozenset(NOTIFY_EVENTS)
    low_balance: Decimal | None = None
    panel_down_after: int = DEFAULT_PANEL_DOWN_AFTER


@dataclass(frozen=True)
class PanelConfig:
    name: str
    url: str
    key: str = field(repr=False)
    concurrency: int = 4
    rate_limit: float | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    attempts: int = 5
    budget: Budget | None = None
    probe: bool = True  # settle ambiguous orders by the order IDs around them (probe.py)
    probe_grace: float = 60.0  # seconds a timed-out request may still be worked on by the panel
    idempotency_field: str | None = None  # the `add` field that carries a client key


@dataclass(frozen=True)
class SheetConfig:
    source: str
    worksheet: str | None = None
    panel: str | None = None
    name: str | None = None
    budget: Budget | None = None
    approval: bool | None = None  # None: as the config's `approval`
    summary_tab: str | None = None  # a tab sheetorders keeps with this sheet's spend per day and status

    @property
    def journal_key(self) -> str:
        """What the journal files this sheet's rows under: its name when it has one (so a moved
        file keeps its history), else its source and tab."""
        return f"sheet:{self.name}" if self.name else f"{self.source}#{self.worksheet or ''}"

    @property
    def label(self) -> str:
        return self.name or (f"{self.source} [{self.worksheet}]" if self.worksheet else self.source)


@dataclass(frozen=True)
class Config:
    panels: dict[str, PanelConfig]
    sheets: list[SheetConfig]
    journal: Path
    columns: dict[str, str] = field(default_factory=dict)
    ignore_columns: tuple[str, ...] = ()
    budget: Budget | None = None
    confirm: bool = True
    approval: bool = False
    max_spend: Decimal | None = None
    google: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    notify: NotifyConfig | None = None

    @property
    def default_panel(self) -> str:
        return next(iter(self.panels))

    def panel(self, name: str | None) -> PanelConfig:
        if name is None:
            return self.panels[self.default_panel]
        try:
            return self.panels[name]
        except KeyError:
            known = ", ".join(self.panels)
            raise ConfigError(f"no panel named {name!r} in the config (configured: {known})") from None

    def with_sheet_source(self, source: str) -> Config:
        """The config with its sheets narrowed to one given by name or source, or replaced by a path."""
        for sheet in self.sheets:
            if source in (sheet.name, sheet.source) or _same_file(source, sheet.source):
                return replace(self, sheets=[sheet])
        first = self.sheets[0] if self.sheets else SheetConfig(source=source)
        return replace(self, sheets=[replace(first, source=source, name=None)])


def _same_file(a: str, b: str) -> bool:
    """Whether two sheet sources are paths of the same file (a path given relative to the
    current folder names the sheet the config gives relative to its own)."""
    if not (_looks_like_path(a) and _looks_like_path(b)):
        return False
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def find_config(explicit: str | os.PathLike[str] | None, cwd: Path | None = None) -> Path:
    """`-c FILE`, else `sheetorders.yaml` in the current folder, else `$SHEETORDERS_CONFIG`."""
    if explicit:
        return Path(explicit)
    local = (cwd or Path.cwd()) / CONFIG_FILENAME
    if local.exists():
        return local
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    raise ConfigError(
        f"no config file: pass -c FILE, create {CONFIG_FILENAME} here "
        f"(see config.example.yaml), or set {CONFIG_ENV}"
    )


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start}); save the config file as UTF-8"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    raw = _yaml_on_key(raw)
    templates: dict[tuple[str, ...], str] = {}
    data = _substitute_env(raw, os.environ if env is None else env, path, (), templates)
    try:
        _check_schema(data, path, templates)
        return _build(data, path)
    except ConfigError as error:
        # Belt and braces: whatever a message quotes, never an API key or a notification URL.
        raise ConfigError(_scrub(str(error), _panel_keys(data) | _notify_urls(data))) from None


def _yaml_on_key(raw: Any) -> Any:
    """YAML 1.1 reads an unquoted `on:` key as the boolean true: `notify.on` is meant."""
    notify = raw.get("notify") if isinstance(raw, dict) else None
    if isinstance(notify, dict) and True in notify and "on" not in notify:
        raw = {**raw, "notify": {("on" if key is True else key): value for key, value in notify.items()}}
    return raw


def _notify_urls(data: Any) -> set[str]:
    notify = data.get("notify") if isinstance(data, dict) else None
    if isinstance(notify, str):
        return {notify}
    urls = notify.get("urls") if isinstance(notify, dict) else None
    if isinstance(urls, str):
        return {urls}
    return {url for url in urls if isinstance(url, str)} if isinstance(urls, list) else set()


def _panel_keys(data: Any) -> set[str]:
    panels = data.get("panels") if isinstance(data, dict) else None
    if not isinstance(panels, dict):
        return set()
    return {
        str(panel["key"])
        for panel in panels.values()
        if isinstance(panel, dict) and panel.get("key") not in (None, "")
    }


def _scrub(message: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:  # a shorter "key" would mangle the message and hide nothing
            message = message.replace(secret, "***")
    return message


def _substitute_env(
    value: Any,
    env: Mapping[str, str],
    path: Path,
    where: tuple[str, ...],
    templates: dict[tuple[str, ...], str],
) -> Any:
    """`${NAME}` replaced by the environment's NAME. Each string that had a reference is recorded
    in `templates` by key path, so that messages quote `${NAME}`, never the value."""
    if isinstance(value, dict):
        return {
            key: _substitute_env(item, env, path, (*where, str(key)), templates)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_substitute_env(item, env, path, (*where, str(i)), templates) for i, item in enumerate(value)]
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"{path}: {'.'.join(where)}: environment variable {name} is not set "
                    f"(export {name}=... or write the value in the file)"
                )
            return env[name]

        if _ENV_REFERENCE.search(value):
            templates[where] = value
        return _ENV_REFERENCE.sub(lookup, value)
    return value


def _check_schema(data: Any, path: Path, templates: Mapping[tuple[str, ...], str] | None = None) -> None:
    validator = jsonschema.Draft202012Validator(load_schema("config.schema.json"))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    raise ConfigError(f"{path}: {where}: {_describe(error, templates or {})}")


# What a `pattern` accepts, said for people.
_PATTERN_HINTS = {
    "^https?://": "expected a URL starting with http:// or https://",
    "^[0-9]+": "expected an amount like 50 or 12.50",
    "^[A-Za-z][A-Za-z0-9+.-]*://": "expected an apprise URL like tgram://…, slack://…, mailto://… or json://host/path",
}
_NAME_HINT = "use letters, digits, '_', '-' and '.'"


def _describe(error: jsonschema.ValidationError, templates: Mapping[tuple[str, ...], str]) -> str:
    """A jsonschema error said the way a person fixing the file needs to read it.

    A value that came from `${NAME}` is quoted as `${NAME}`, and an API key is never quoted.
    """
    schema = error.schema if isinstance(error.schema, dict) else {}
    # jsonschema fills `instance` and `validator_value` on every error it yields; the type stubs
    # also allow its internal "unset" marker, which never reaches here.
    value: Any = error.instance
    validator_value: Any = error.validator_value
    location = tuple(str(part) for part in error.absolute_path)
    if location in templates:
        shown = repr(templates[location])
    elif isinstance(value, (dict, list)):
        shown = type(value).__name__
    elif len(location) == 3 and location[0] == "panels" and location[2] == "key":
        shown = "(hidden)"
    elif location[:2] == ("notify", "urls") or (location == ("notify",) and isinstance(value, str)):
        shown = "(hidden)"  # an apprise URL holds its service's token or password
    else:
        shown = repr(value)
    kind = error.validator
    if "propertyNames" in error.schema_path:
        return f"{shown} is not a valid name: {_NAME_HINT}"
    if kind == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {}))) or "none"
        extra = sorted((key for key in value if key not in schema.get("properties", {})), key=str)
        return f"unknown key {', '.join(repr(str(key)) for key in extra)} (allowed: {allowed})"
    if kind == "required":
        return error.message.replace("is a required property", "is required")
    if kind == "type":
        return f"{shown} is not allowed here: expected {_kinds(schema.get('type'))}"
    if kind in ("minimum", "maximum", "exclusiveMinimum"):
        limits = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than"}
        return f"{shown} is out of range: must be {limits[kind]} {validator_value}"
    if kind == "pattern":
        pattern = str(validator_value)
        hint = next((text for prefix, text in _PATTERN_HINTS.items() if pattern.startswith(prefix)), None)
        return f"{shown} is not allowed: {hint or 'expected text matching ' + pattern}"
    if kind == "not":
        return "use either `sheet` or `sheets`, not both"
    if kind == "enum":
        return f"{shown} is not allowed: use one of {', '.join(str(option) for option in validator_value)}"
    if kind in ("minProperties", "minItems", "minLength"):
        return "must not be empty"
    if kind == "oneOf":
        options = [option.get("type") for option in validator_value if isinstance(option, dict)]
        return f"{shown} is not allowed here: expected {_kinds([k for k in options if k])}"
    return error.message if location not in templates else f"{shown} is not allowed here"


def _kinds(kind: Any) -> str:
    names = {
        "integer": "a whole number",
        "number": "a number",
        "string": "text",
        "object": "a mapping",
        "array": "a list",
        "boolean": "true or false",
    }
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(names.get(k, str(k)) for k in kinds)


def _build(data: dict[str, Any], path: Path) -> Config:
    base = path.resolve().parent
    panels = _build_panels(data["panels"])
    sheets = _build_sheets(data, panels, path)
    google = dict(data.get("google", {}))
    if "credentials" in google:
        google["credentials"] = _local_path(base, google["credentials"])
    if isinstance(google.get("oauth"), dict):
        google["oauth"] = {key: _local_path(base, value) for key, value in google["oauth"].items()}
    max_spend = data.get("max_spend")
    return Config(
        panels=panels,
        sheets=sheets,
        journal=Path(_local_path(base, data.get("journal", DEFAULT_JOURNAL))),
        columns=dict(data.get("columns", {})),
        ignore_columns=tuple(data.get("ignore_columns", ())),
        max_spend=Decimal(str(max_spend)) if max_spend is not None else None,
        budget=_budget(data.get("budget"), path, "budget"),
        confirm=bool(data.get("confirm", True)),
        approval=bool(data.get("approval", False)),
        google=google,
        path=path,
        notify=_notify(data.get("notify"), path),
    )


def _notify(raw: Mapping[str, Any] | None, path: Path) -> NotifyConfig | None:
    if raw is None:
        return None
    on = frozenset(raw.get("on", NOTIFY_EVENTS))
    threshold = raw.get("low_balance")
    if "low_balance" in raw.get("on", ()) and threshold is None:
        raise ConfigError(
            f"{path}: notify.low_balance: required when notify.on lists low_balance "
            "(a sum in the panel's currency, e.g. 20)"
        )
    urls = tuple(raw["urls"])
    for index, url in enumerate(urls):
        if not _apprise_accepts(url):
            match = _URL_SCHEME.match(url)
            scheme = f"{match.group(1)}://…" if match else "this URL"
            raise ConfigError(
                f"{path}: notify.urls.{index}: apprise cannot use {scheme} as written (the URL is not "
                "shown: it may hold a token); see https://github.com/caronc/apprise/wiki for each "
                "service's form, e.g. tgram://BOT_TOKEN/CHAT_ID or json://host/path"
            )
    return NotifyConfig(
        urls=urls,
        on=on,
        low_balance=Decimal(str(threshold)) if threshold is not None else None,
        panel_down_after=int(raw.get("panel_down_after", DEFAULT_PANEL_DOWN_AFTER)),
    )


def _apprise_accepts(url: str) -> bool:
    """Whether apprise makes a notification service of the URL (its own log, which quotes the URL
    half masked, kept quiet)."""
    import apprise

    with quiet_logger("apprise"):
        return apprise.Apprise.instantiate(url) is not None


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """The named logger silenced for the block."""
    logger = logging.getLogger(name)
    was_disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = was_disabled


def _budget(raw: Mapping[str, Any] | None, path: Path | None, where: str) -> Budget | None:
    if raw is None:
        return None
    zone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{path or 'the config'}: {where}.timezone: {zone!r} is not a time zone; use a name like "
            "Europe/Berlin or America/New_York"
        ) from None

    def amount(key: str) -> Decimal | None:
        return Decimal(str(raw[key])) if raw.get(key) is not None else None

    return Budget(daily=amount("daily"), monthly=amount("monthly"), timezone=zone)


def _local_path(base: Path, value: str) -> str:
    """A path from the config file: `~` expanded, relative to the config file's folder."""
    candidate = Path(value).expanduser()
    return str(candidate if candidate.is_absolute() else base / candidate)


def _build_panels(raw_panels: Mapping[Any, Any]) -> dict[str, PanelConfig]:
    panels: dict[str, PanelConfig] = {}
    for raw_name, raw in raw_panels.items():
        name = str(raw_name)
        timeout = raw.get("timeout", {})
        rate_limit = raw.get("rate_limit")
        panels[name] = PanelConfig(
            name=name,
            url=raw["url"],
            key=raw["key"],
            concurrency=int(raw.get("concurrency", 4)),  # YAML's 4.0 is a valid integer to the schema
            rate_limit=float(rate_limit) if rate_limit is not None else None,
            connect_timeout=float(timeout.get("connect", 10.0)),
            read_timeout=float(timeout.get("read", 30.0)),
            attempts=int(raw.get("attempts", 5)),
            budget=_budget(raw.get("budget"), None, f"panels.{name}.budget"),
            probe=bool(raw.get("probe", True)),
            probe_grace=float(raw.get("probe_grace", 60.0)),
            idempotency_field=raw.get("idempotency_field") or None,
        )
    return panels


def _build_sheets(
    data: Mapping[str, Any], panels: Mapping[str, PanelConfig], path: Path
) -> list[SheetConfig]:
    """`sheet:` or `sheets:`; each sheet's panel must be configured and its name unique."""
    base = path.resolve().parent
    raw_sheets = data.get("sheets") or ([data["sheet"]] if "sheet" in data else [])
    sheets = []
    names: set[str] = set()
    for index, raw in enumerate(raw_sheets):
        prefix = "sheet" if "sheet" in data else f"sheets.{index}"
        if raw.get("panel") and raw["panel"] not in panels:
            raise ConfigError(
                f"{path}: {prefix}.panel: no panel named {raw['panel']!r} (configured: {', '.join(panels)})"
            )
        if raw.get("name") in names:
            raise ConfigError(f"{path}: {prefix}.name: {raw['name']!r} names two sheets; give each its own")
        if raw.get("name"):
            names.add(raw["name"])
        source = raw["source"]
        if _looks_like_path(source):
            source = _local_path(base, source)
        sheets.append(
            SheetConfig(
                source=source,
                worksheet=raw.get("worksheet"),
                panel=raw.get("panel"),
                name=raw.get("name"),
                budget=_budget(raw.get("budget"), path, f"{prefix}.budget"),
                approval=raw.get("approval"),
                summary_tab=raw.get("summary_tab"),
            )
        )
    return sheets


def _looks_like_path(source: str) -> bool:
    if re.match(r"^[a-z][a-z0-9+.-]*://", source, re.IGNORECASE):
        return False
    return Path(source).suffix.lower() in (".xlsx", ".xlsm", ".csv")
