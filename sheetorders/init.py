"""`sheetorders init`: a commented sheetorders.yaml for one panel, from config.example.yaml.

The file is the documented example itself, with the panel's URL, the name of the environment
variable that holds its key, and the order sheet filled in: every other key keeps its comment.
The key itself is never asked for and never written.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sheetorders.errors import UsageError
from sheetorders.resources import config_example
from sheetorders.sheets.google import spreadsheet_key

DEFAULT_SHEET = "orders.xlsx"
WRITTEN_BY = "# sheetorders config, written by `sheetorders init` (another: -c FILE, or SHEETORDERS_CONFIG)."
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[A-Za-z0-9$/.][A-Za-z0-9._~:/?&=%+@,;{}$-]*")
_HEADER = re.compile(r"^# sheetorders config\. Copy to sheetorders\.yaml[^\n]*$", re.MULTILINE)


@dataclass(frozen=True)
class InitAnswers:
    url: str
    key_env: str
    sheet: str = DEFAULT_SHEET


def check_url(text: str) -> str:
    """The panel's API URL, or UsageError saying what is expected."""
    url = text.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in url:
        raise UsageError(f"{url!r} is not a panel API URL: give one like https://panel.example/api/v2")
    return url


def check_key_env(text: str) -> str:
    """The NAME of an environment variable (not the key), or UsageError."""
    name = text.strip().removeprefix("$").strip("{}")
    if not _ENV_NAME.fullmatch(name):
        raise UsageError(
            f"{text.strip()!r} is not an environment variable name: use letters, digits and _, "
            "like SMMKINGS_API_KEY (the name of the variable, not the key)"
        )
    if len(name) >= 24 and any(c.isdigit() for c in name) and "_" not in name:
        raise UsageError(
            "that looks like the API key itself: give the NAME of the environment variable that "
            "holds it (like SMMKINGS_API_KEY), and keep the key in the environment"
        )
    return name


def check_sheet(text: str) -> str:
    """An .xlsx or .csv path, or a Google Sheets URL or key."""
    sheet = text.strip()
    if spreadsheet_key(sheet) is None and not sheet.lower().endswith((".xlsx", ".xlsm", ".csv")):
        raise UsageError(f"{sheet!r} is not an .xlsx or .csv path, nor a Google Sheets URL")
    return sheet


def suggested_key_env(url: str) -> str:
    """`https://smmkings.com/api/v2` -> `SMMKINGS_API_KEY`."""
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    labels = host.split(".")
    name = labels[-2] if len(labels) >= 2 else labels[0]
    stem = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper() or "PANEL"
    if stem[0].isdigit():
        stem = "PANEL_" + stem
    return f"{stem}_API_KEY"


def _scalar(value: str) -> str:
    """A YAML scalar for the value: plain when that reads back the same, else double-quoted."""
    if _PLAIN.fullmatch(value) and ": " not in value and "#" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _set(text: str, prefix: str, value: str) -> str:
    """Set the value of the first line starting with `prefix`, keeping its comment in place."""
    pattern = re.compile(rf"^({re.escape(prefix)})(\S+)( *)(#.*)?$", re.MULTILINE)
    match = pattern.search(text)
    if match is None:
        raise UsageError(f"config.example.yaml has no line {prefix.strip()!r}: the package is damaged")
    new = _scalar(value)
    line = match.group(1) + new
    if match.group(4):
        width = len(match.group(1)) + len(match.group(2)) + len(match.group(3))
        line = (
            line.ljust(width - 1) + " " + match.group(4)
            if len(line) < width
            else line + "  " + match.group(4)
        )
    return text[: match.start()] + line + text[match.end() :]


def render_config(answers: InitAnswers) -> str:
    """config.example.yaml with the answers filled in."""
    text = config_example()
    text = _HEADER.sub(WRITTEN_BY, text, count=1)
    text = _set(text, "    url: ", answers.url)
    text = _set(text, "    key: ", "${" + answers.key_env + "}")
    text = _set(text, "  source: ", answers.sheet)
    return text


def write_new(path: Path, text: str) -> Path:
    """Write `path`, which must not exist (UsageError, exit 2, when it does)."""
    refuse_existing(path)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        refuse_existing(path)
    return path


def refuse_existing(path: Path) -> None:
    if path.exists() or path.is_symlink():
        raise UsageError(
            f"{path} already exists: it was left as it is. Edit it, or give another file with -c FILE"
        )


def next_steps(path: Path, answers: InitAnswers, environ: Mapping[str, str]) -> list[str]:
    """What `sheetorders init` says once the file is written: the key, then two commands."""
    default = Path("sheetorders.yaml")
    config = "" if path == default else f" -c {shlex.quote(str(path))}"
    google = spreadsheet_key(answers.sheet) is not None
    if google:
        build = f"sheetorders{config} template --google {shlex.quote(answers.sheet)}"
    else:
        sheet = Path(answers.sheet)
        if not sheet.is_absolute() and path.parent != Path("."):
            sheet = path.parent / sheet  # the config reads it relative to its own folder
        build = f"sheetorders{config} template {shlex.quote(str(sheet))}"
    lines = [
        f"Wrote {path}: panel main at {answers.url}, key read from ${answers.key_env}, sheet {answers.sheet}."
    ]
    if not environ.get(answers.key_env):
        lines.append(f"Set the key first (keep it out of the file): export {answers.key_env}=…")
    if google:
        lines.append("Share the spreadsheet with your Google service account and set google.credentials.")
    lines += [
        "Next:",
        f"  {build}    (the order sheet, from your panel's catalog)",
        f"  sheetorders{config} run --dry-run    (checks and prices the rows you fill; places nothing)",
    ]
    return lines
