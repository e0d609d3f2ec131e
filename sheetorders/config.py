"""The config file: YAML, `${ENV_VAR}` substitution, validated against schemas/config.schema.json."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sheetorders.errors import ConfigError
from sheetorders.resources import load_schema

CONFIG_FILENAME = "sheetorders.yaml"
CONFIG_ENV = "SHEETORDERS_CONFIG"
DEFAULT_JOURNAL = ".sheetorders/journal.sqlite"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class PanelConfig:
    name: str
    url: str
    key: str = field(repr=False)
    concurrency: int = 4
    rate_limit: float | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0


@dataclass(frozen=True)
class SheetConfig:
    source: str
    worksheet: str | None = None
    panel: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or (f"{self.source} [{self.worksheet}]" if self.worksheet else self.source)


@dataclass(frozen=True)
class Config:
    panels: dict[str, PanelConfig]
    sheets: list[SheetConfig]
    journal: Path
    columns: dict[str, str] = field(default_factory=dict)
    max_spend: Decimal | None = None
    google: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

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
            if source in (sheet.name, sheet.source):
                return replace(self, sheets=[sheet])
        first = self.sheets[0] if self.sheets else SheetConfig(source=source)
        return replace(self, sheets=[replace(first, source=source, name=None)])


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
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    data = _substitute_env(raw, os.environ if env is None else env, path, ())
    _check_schema(data, path)
    return _build(data, path)


def _substitute_env(value: Any, env: Mapping[str, str], path: Path, where: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {key: _substitute_env(item, env, path, (*where, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute_env(item, env, path, (*where, str(i))) for i, item in enumerate(value)]
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"{path}: {'.'.join(where)}: environment variable {name} is not set "
                    f"(export {name}=... or write the value in the file)"
                )
            return env[name]

        return _ENV_REFERENCE.sub(lookup, value)
    return value


def _check_schema(data: Any, path: Path) -> None:
    validator = jsonschema.Draft202012Validator(load_schema("config.schema.json"))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    raise ConfigError(f"{path}: {where}: {_describe(error)}")


def _describe(error: jsonschema.ValidationError) -> str:
    """A jsonschema error said the way a person fixing the file needs to read it."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    if "description" in schema and "key" in error.absolute_path:
        shown = "(hidden)"
    kind = error.validator
    if kind == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {}))) or "none"
        extra = sorted(set(value) - set(schema.get("properties", {})))
        return f"unknown key {', '.join(map(repr, extra))} (allowed: {allowed})"
    if kind == "required":
        return error.message.replace("is a required property", "is required")
    if kind == "type":
        return f"{shown} is not allowed here: expected {_kinds(schema.get('type'))}"
    if kind in ("minimum", "maximum", "exclusiveMinimum"):
        limits = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than"}
        return f"{shown} is out of range: must be {limits[kind]} {error.validator_value}"
    if kind == "pattern":
        hint = schema.get("description", "")
        return f"{shown} is not allowed{': ' + hint if hint else ''}"
    if kind == "not":
        return "use either `sheet` or `sheets`, not both"
    if kind in ("minProperties", "minItems", "minLength"):
        return "must not be empty"
    if kind == "propertyNames":
        return f"{shown} is not a valid name: use letters, digits, '_', '-' and '.'"
    return error.message


def _kinds(kind: Any) -> str:
    names = {"integer": "a whole number", "number": "a number", "string": "text", "object": "a mapping"}
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(names.get(k, str(k)) for k in kinds)


def _build(data: dict[str, Any], path: Path) -> Config:
    base = path.resolve().parent

    def local_path(value: str) -> str:
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else base / candidate)

    panels: dict[str, PanelConfig] = {}
    for name, raw in data["panels"].items():
        timeout = raw.get("timeout", {})
        panels[name] = PanelConfig(
            name=name,
            url=raw["url"],
            key=raw["key"],
            concurrency=raw.get("concurrency", 4),
            rate_limit=raw.get("rate_limit"),
            connect_timeout=float(timeout.get("connect", 10.0)),
            read_timeout=float(timeout.get("read", 30.0)),
        )

    raw_sheets = data.get("sheets") or ([data["sheet"]] if "sheet" in data else [])
    sheets = []
    for index, raw in enumerate(raw_sheets):
        if raw.get("panel") and raw["panel"] not in panels:
            where = "sheet.panel" if "sheet" in data else f"sheets.{index}.panel"
            raise ConfigError(
                f"{path}: {where}: no panel named {raw['panel']!r} (configured: {', '.join(panels)})"
            )
        source = raw["source"]
        if _looks_like_path(source):
            source = local_path(source)
        sheets.append(
            SheetConfig(
                source=source, worksheet=raw.get("worksheet"), panel=raw.get("panel"), name=raw.get("name")
            )
        )

    google = dict(data.get("google", {}))
    if "credentials" in google:
        google["credentials"] = local_path(google["credentials"])
    if isinstance(google.get("oauth"), dict):
        google["oauth"] = {key: local_path(value) for key, value in google["oauth"].items()}

    max_spend = data.get("max_spend")
    return Config(
        panels=panels,
        sheets=sheets,
        journal=Path(local_path(data.get("journal", DEFAULT_JOURNAL))),
        columns=dict(data.get("columns", {})),
        max_spend=Decimal(str(max_spend)) if max_spend is not None else None,
        google=google,
        path=path,
    )


def _looks_like_path(source: str) -> bool:
    return not re.match(r"^[a-z]+://", source) and Path(source).suffix.lower() in (".xlsx", ".xlsm", ".csv")
