"""`sheetorders demo`: the whole job on an example sheet, against a local panel, no account needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sheetorders.app import run_sheets
from sheetorders.config import Config, PanelConfig, SheetConfig
from sheetorders.pipeline import PassOptions
from sheetorders.report import RunReport
from sheetorders.template import layout_from_config, service_entry
from sheetorders.template_xlsx import write_template
from sheetorders.testing.panel_server import PanelServer, default_catalog

DEMO_SHEET = "demo-orders.xlsx"
DEMO_KEY = "demo-key"
DEMO_CONFIG = "sheetorders-demo.yaml"

# Example values for each service type's fields; the service IDs come from the demo catalog.
EXAMPLES: dict[str, dict[str, Any]] = {
    "Default": {"link": "https://instagram.com/p/demo-post-1", "quantity": 500},
    "Package": {"link": "https://instagram.com/demo.account"},
    "SEO": {"link": "https://example.com/landing", "quantity": 1000, "keywords": "smm panel\nbulk orders"},
    "Custom Comments": {
        "link": "https://instagram.com/p/demo-post-2",
        "comments": "Love it!\nSo good\nWow\nWhere is this?\nGreat colours",
    },
    "Custom Comments Package": {
        "link": "https://instagram.com/p/demo-post-3",
        "comments": "Great\nNice shot",
    },
    "Mentions": {"link": "https://instagram.com/p/demo-post-4", "quantity": 100, "usernames": "alice\nbob"},
    "Mentions with Hashtags": {
        "link": "https://instagram.com/p/demo-post-5",
        "quantity": 100,
        "usernames": "alice\nbob",
        "hashtags": "#summer\n#sale",
    },
    "Mentions Custom List": {
        "link": "https://instagram.com/p/demo-post-6",
        "usernames": "\n".join(f"fan_{n}" for n in range(1, 13)),
    },
    "Mentions Hashtag": {"link": "https://instagram.com/p/demo-post-7", "quantity": 100, "hashtag": "#sale"},
    "Mentions User Followers": {
        "link": "https://instagram.com/p/demo-post-8",
        "quantity": 100,
        "username": "nasa",
    },
    "Mentions Media Likers": {
        "link": "https://instagram.com/p/demo-post-9",
        "quantity": 100,
        "media": "https://instagram.com/p/other-post",
    },
    "Comment Likes": {
        "link": "https://instagram.com/p/demo-post-10",
        "quantity": 100,
        "username": "commenter",
    },
    "Comment Replies": {
        "link": "https://instagram.com/p/demo-post-11",
        "username": "commenter",
        "comments": "Thanks!\nAgreed",
    },
    "Poll": {"link": "https://t.me/demo_channel/12", "quantity": 100, "answer_number": 2},
    "Invites from Groups": {
        "link": "https://t.me/demo_group",
        "quantity": 100,
        "groups": "https://t.me/group_a",
    },
    "Subscriptions": {"username": "demo.account", "min": 100, "max": 200, "delay": 30, "posts": 5},
    "Web Traffic": {
        "link": "https://example.com",
        "quantity": 1000,
        "country": "US",
        "device": "Desktop",
        "type_of_traffic": "Google Keyword",
        "google_keyword": "bulk smm",
    },
}


@dataclass
class DemoReport:
    run: RunReport
    sheet: Path
    closing: str
    config: Path | None = None  # with --serve: a config for the running demo panel


def example_rows(catalog: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A valid row per service type of the catalog, a drip-feed row, a queued row, a few invalid ones."""
    first_of_type: dict[str, dict[str, Any]] = {}
    for service in catalog:
        first_of_type.setdefault(service["type"], service)
    rows = []
    for type_name, service in first_of_type.items():
        fields = EXAMPLES.get(type_name)
        if fields is not None:
            rows.append({"service": service["service"], **fields, "note": type_name})
    default = first_of_type["Default"]
    dripfeed = next(
        (
            s
            for s in catalog
            if s["type"] == "Default" and str(s.get("dripfeed", "")).lower() in ("true", "1")
        ),
        default,
    )
    rows += [
        {
            "service": dripfeed["service"],
            "link": "https://instagram.com/p/demo-drip",
            "quantity": 100,
            "runs": 5,
            "interval": 30,
            "note": "drip-feed: 5 runs of 100",
        },
        {
            "service": default["service"],
            "link": EXAMPLES["Default"]["link"],
            "quantity": 300,
            "note": "same link and service as row 2: waits for it",
        },
        {
            "service": default["service"],
            "link": "https://instagram.com/p/x",
            "quantity": 1,
            "note": "invalid: too few",
        },
        {"service": default["service"], "link": "instagram.com/p/x", "quantity": "lots", "note": "invalid"},
        {
            "service": 99999,
            "link": "https://instagram.com/p/y",
            "quantity": 100,
            "note": "invalid: no such service",
        },
    ]
    return rows


@contextmanager
def demo_session(
    folder: Path, on_step: Callable[[str], None] = print, serve: bool = False
) -> Iterator[DemoReport]:
    """Run the demo; the local panel keeps answering until the `with` block ends.

    With `serve`, a config for that panel is written too (`sheetorders-demo.yaml`), so the
    other commands can be tried against it while the block lasts.
    """
    folder = folder.resolve()
    sheet_path = folder / DEMO_SHEET
    with PanelServer(key=DEMO_KEY, speed=60.0) as server:
        on_step(f"Local demo panel running at {server.url} (API v2, test money only).")
        # The demo panel forgets its orders when it stops, so every demo starts from a fresh sheet.
        journal = folder / ".sheetorders" / "demo-journal.sqlite"
        for stale in (journal, Path(f"{journal}-wal"), Path(f"{journal}-shm")):
            stale.unlink(missing_ok=True)
        config = Config(
            panels={"demo": PanelConfig(name="demo", url=server.url, key=DEMO_KEY)},
            sheets=[SheetConfig(source=str(sheet_path), worksheet="Orders", name=sheet_path.name)],
            journal=journal,
        )
        write_example_sheet(config, sheet_path)
        on_step(
            f"Wrote {sheet_path.name} from the panel's catalog: one row per service type, a drip-feed "
            "row, and a few mistakes (pick a service from the list, the estimate follows)."
        )
        on_step("Running: validate every row, place the valid ones, write the results back…")
        report = run_sheets(config, PassOptions())
        config_path = (
            write_demo_config(folder / DEMO_CONFIG, server.url, sheet_path, journal) if serve else None
        )
        closing = (
            f"\nOpen {sheet_path} to see order IDs, statuses, charges, and why invalid rows were refused.\n"
            "Try `sheetorders run` on a copy of your own next; `sheetorders demo` starts afresh.\n"
            "Next, with your own panel: `sheetorders init` writes a sheetorders.yaml for it, "
            "`sheetorders template orders.xlsx` builds the sheet from its catalog, then "
            "`sheetorders run --dry-run`."
        )
        try:
            yield DemoReport(run=report, sheet=sheet_path, closing=closing, config=config_path)
        finally:
            if config_path is not None:
                config_path.unlink(missing_ok=True)


def write_example_sheet(config: Config, path: Path) -> Path:
    """The demo's sheet, written by `sheetorders template` from the demo panel's live catalog,
    with the example rows filled in; a service the catalog has is named by its dropdown entry."""
    layout = layout_from_config(config, own_columns=("note",), rows=len(example_rows(default_catalog())))
    entries = {listed.service.id: service_entry(listed.service) for listed in layout.services}
    rows = [
        {**row, "service": entries.get(str(row["service"]), row["service"])}
        for row in example_rows(default_catalog())
    ]
    return write_template(path, layout, rows)


def run_demo(folder: Path, on_step: Callable[[str], None] = print) -> DemoReport:
    with demo_session(folder, on_step) as report:
        return report


def write_demo_config(path: Path, url: str, sheet: Path, journal: Path) -> Path:
    data = {
        "panels": {"demo": {"url": url, "key": DEMO_KEY}},  # the demo panel's key is no secret
        "sheet": {"source": str(sheet), "worksheet": "Orders"},
        "journal": str(journal),
    }
    path.write_text(
        "# The demo panel's config; it works while `sheetorders demo --serve` runs.\n" + yaml.safe_dump(data)
    )
    return path
