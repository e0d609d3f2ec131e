"""Notifications to where the team already is (Slack, Discord, Telegram, e-mail, a JSON webhook…),
sent through apprise after each pass and when a `sync --every` loop ends on an error.

The events (`notify.on`, all four by default):

- `problems`: one message per pass with new problems: rows that became Invalid, Rejected,
  Uncertain or Held, refills and cancels that failed, rows newly told why they are not placed
  (the first rows named, the rest counted); and, once until it changes, a sheet that could not
  be done or a panel that refuses the key.
- `low_balance`: once when a panel's balance after a pass's spend falls under
  `notify.low_balance`; again only after it was topped up to at least that and fell again.
- `panel_down`: once a panel was unreachable `notify.panel_down_after` passes in a row (once per
  outage), and a message when it answers again.
- `stopped`: the loop ended on an error.

What has been announced is kept in a small JSON file beside the journal
(`<journal>.notify.json`), so a cron run every ten minutes announces a low balance or an outage
once, as a long-running `sync --every` does.

Delivery never stops a pass: each URL is sent to from its own thread, and the pass waits for all
of them at most `timeout` seconds in all (apprise's own connect and read timeouts end a stuck
request later). A message that could not be delivered is logged on "sheetorders.notify", naming
the URL by its place in the config and its scheme, never its value. Every message is scrubbed of
the panels' API keys before it leaves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from sheetorders.config import Config, NotifyConfig, quiet_logger
from sheetorders.errors import ConfigError
from sheetorders.models import money
from sheetorders.report import PassReport, RunReport

__all__ = ["DELIVERY_TIMEOUT", "Message", "Notifier", "notifier_for", "state_path_for"]

log = logging.getLogger("sheetorders.notify")

DELIVERY_TIMEOUT = 5.0  # seconds a pass waits for its notifications, in all
SHOWN_PROBLEMS = 5  # problem rows named in a message; the rest are counted
STATE_SUFFIX = ".notify.json"
_STATE_VERSION = 1
_LEVELS = ("info", "success", "warning", "failure")  # apprise's notification types
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_MAX_LINE = 300  # a problem line longer than this is cut


@dataclass(frozen=True)
class Message:
    event: str  # problems, low_balance, panel_down or stopped
    title: str
    body: str
    level: str = "warning"  # info, success, warning or failure


Send = Callable[[Message], bool]  # delivers one message; True when it was delivered


def state_path_for(journal: Path) -> Path:
    """Where the notification state of a journal is kept: beside it."""
    return journal.with_name(journal.name + STATE_SUFFIX)


def notifier_for(config: Config, *, timeout: float = DELIVERY_TIMEOUT) -> Notifier | None:
    """The config's notifier (None without `notify:`), its state kept beside the journal."""
    if config.notify is None:
        return None
    return Notifier(
        config.notify,
        secrets=[panel.key for panel in config.panels.values()],
        state_path=state_path_for(config.journal),
        timeout=timeout,
    )


class Notifier:
    """Turns each pass's report into the messages `config.on` asks for, and sends them.

    `secrets` (the panels' API keys) are scrubbed from every message. `state_path`: where what
    was announced survives the process (None: in memory only). `send` replaces delivery through
    apprise to `config.urls` (for tests).
    """

    def __init__(
        self,
        config: NotifyConfig,
        *,
        secrets: Iterable[str] = (),
        state_path: Path | None = None,
        timeout: float = DELIVERY_TIMEOUT,
        send: Send | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._channels = [("notify", send)] if send is not None else _apprise_channels(config.urls)
        self._state_path = state_path
        self._state, self._saved = _load_state(state_path)
        self._save_failed = False

    def after_pass(self, report: RunReport) -> None:
        """Notify what this pass (over every sheet) brought. Never raises."""
        try:
            messages = self.messages_for(report)
            self._save_state()
        except Exception:  # a notification must never stop the pass it reports on
            log.exception("could not prepare this pass's notifications")
            return
        self._deliver(messages)

    def stopped(self, reason: str) -> None:
        """Notify that the loop ended on an error (`reason`: the error's message). Never raises."""
        if "stopped" not in self.config.on:
            return
        body = f"sheetorders sync stopped on an error and is not running any more: {reason}"
        self._deliver([Message("stopped", "sheetorders: sync stopped", body, "failure")])

    def messages_for(self, report: RunReport) -> list[Message]:
        """The messages this pass brings, as `config.on` asks; updates what was announced."""
        on = self.config.on
        messages: list[Message] = []
        problems = self._problems(report)
        if problems is not None and "problems" in on:
            messages.append(problems)
        if "low_balance" in on:
            messages.extend(self._low_balances(report))
        panels = self._panels_down(report)
        if "panel_down" in on:
            messages.extend(panels)
        return [self._scrubbed(message) for message in messages]

    # --- events ---

    def _problems(self, report: RunReport) -> Message | None:
        sections: list[str] = []
        new = 0
        left = SHOWN_PROBLEMS
        for sheet in report.sheets:
            counts = _new_problems(sheet)
            if not counts:
                continue
            new += sum(counts.values())
            tag = " (dry run)" if sheet.dry_run else ""
            lines = [f"{sheet.sheet}{tag}: " + ", ".join(f"{n} {what}" for what, n in counts.items())]
            lines += [f"- {_cut(problem)}" for problem in sheet.problems[:left]]
            if len(sheet.problems) > left:
                lines.append(f"- … and {len(sheet.problems) - left} more")
            left = max(0, left - len(sheet.problems))
            sections.append("\n".join(lines))
        standing = self._new_standing(report)
        sections += standing
        if not sections:
            return None
        heads = [f"{new} new problem{'s' if new != 1 else ''}"] if new else []
        heads += ["a sheet or panel needs attention"] if standing else []
        return Message("problems", "sheetorders: " + "; ".join(heads), "\n\n".join(sections), "warning")

    def _new_standing(self, report: RunReport) -> list[str]:
        """Sheets that could not be done and panels that refuse us, each said once until its
        message changes or it is gone."""
        current: dict[str, str] = {}
        ran = False
        for sheet in report.sheets:
            if sheet.error:
                current[f"sheet:{sheet.sheet}"] = f"{sheet.sheet}: could not be done: {sheet.error}"
            else:
                ran = True
            for panel, message in sheet.panel_errors.items():
                current.setdefault(f"panel:{panel}", message)
        digests = {key: _digest(text) for key, text in current.items()}
        before = self._state.standing
        if not ran:  # no sheet reached its panels: what they said before still stands
            digests |= {key: value for key, value in before.items() if key.startswith("panel:")}
        self._state.standing = digests
        return [text for key, text in current.items() if before.get(key) != digests[key]]

    def _low_balances(self, report: RunReport) -> list[Message]:
        threshold = self.config.low_balance
        if threshold is None:
            return []
        messages = []
        for panel, (left, currency) in _balances_left(report).items():
            if left >= threshold:
                self._state.low.discard(panel)
                continue
            if panel in self._state.low:
                continue
            self._state.low.add(panel)
            unit = f" {currency}" if currency else ""
            body = (
                f"panel {panel}: {money(left)}{unit} left after this pass, under {money(threshold)}{unit}. "
                "Top it up: rows the balance cannot pay for are Held until then."
            )
            messages.append(Message("low_balance", f"sheetorders: panel {panel} balance low", body))
        return messages

    def _panels_down(self, report: RunReport) -> list[Message]:
        unreachable: dict[str, str] = {}
        for sheet in report.sheets:
            for panel, message in sheet.unreachable.items():
                unreachable.setdefault(panel, message)
        state = self._state
        messages = []
        for panel, message in unreachable.items():
            passes = state.down[panel] = state.down.get(panel, 0) + 1
            if passes >= self.config.panel_down_after and panel not in state.announced:
                state.announced.add(panel)
                body = (
                    f"panel {panel} could not be reached in {_passes(passes)} in a row ({message}). "
                    "Its rows wait; each pass tries again."
                )
                messages.append(Message("panel_down", f"sheetorders: panel {panel} unreachable", body))
        if any(sheet.failure is None for sheet in report.sheets):
            for panel in [name for name in state.down if name not in unreachable]:
                passes = state.down.pop(panel)
                if panel in state.announced:
                    state.announced.discard(panel)
                    body = f"panel {panel} answered again after {_passes(passes)} unreachable."
                    messages.append(
                        Message("panel_down", f"sheetorders: panel {panel} is back", body, "success")
                    )
        return messages

    # --- delivery ---

    def _scrubbed(self, message: Message) -> Message:
        title, body = message.title, message.body
        for secret in self._secrets:
            title, body = title.replace(secret, "***"), body.replace(secret, "***")
        return replace(message, title=title, body=body)

    def _deliver(self, messages: Sequence[Message]) -> None:
        """Send to every channel at once; wait `timeout` seconds at most in all."""
        messages = [self._scrubbed(message) for message in messages]
        if not messages or not self._channels:
            return
        workers = [
            (label, threading.Thread(target=_send_all, args=(label, send, messages), name=label, daemon=True))
            for label, send in self._channels
        ]
        for _, worker in workers:
            worker.start()
        deadline = time.monotonic() + self.timeout
        for _, worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        late = [label for label, worker in workers if worker.is_alive()]
        if late:
            log.warning(
                "notifications to %s not delivered within %g s; left to finish in the background",
                ", ".join(late),
                self.timeout,
            )

    def _save_state(self) -> None:
        if self._state_path is None:
            return
        text = self._state.as_json()
        if text == self._saved:
            return
        try:
            _write_atomically(self._state_path, text)
        except OSError as error:
            if not self._save_failed:
                log.warning(
                    "cannot save the notification state in %s (%s); it is kept in memory",
                    self._state_path,
                    error.strerror or error,
                )
            self._save_failed = True
            return
        self._saved = text
        self._save_failed = False


def _send_all(label: str, send: Send, messages: Sequence[Message]) -> None:
    for message in messages:
        try:
            delivered = send(message)
        except Exception as error:  # whatever a service does, the pass goes on
            log.warning("notification %r to %s failed: %s", message.title, label, type(error).__name__)
            continue
        if not delivered:
            log.warning("notification %r could not be delivered to %s", message.title, label)


def _apprise_channels(urls: Sequence[str]) -> list[tuple[str, Send]]:
    """One apprise instance per URL, so a failure names which URL (by index and scheme) failed."""
    import apprise

    channels: list[tuple[str, Send]] = []
    for index, url in enumerate(urls):
        match = _SCHEME.match(url)
        label = f"notify.urls.{index} ({match.group(1) if match else '?'})"
        service = apprise.Apprise(asset=apprise.AppriseAsset(app_id="sheetorders", app_desc="sheetorders"))
        with quiet_logger("apprise"):  # its message quotes the URL half masked
            accepted = service.add(url)
        if not accepted:
            raise ConfigError(f"{label}: apprise cannot use this URL as written (the URL is not shown)")
        channels.append((label, _apprise_send(service)))
    return channels


def _apprise_send(service: Any) -> Send:
    def send(message: Message) -> bool:
        level = message.level if message.level in _LEVELS else "info"
        return bool(service.notify(body=message.body, title=message.title, notify_type=level))

    return send


# --- what the messages are made of ---


def _new_problems(report: PassReport) -> dict[str, int]:
    """This pass's new problems on one sheet, by kind (the counters that make exit code 1)."""
    counts = {
        "invalid": report.invalid,
        "rejected": report.rejected,
        "uncertain": report.uncertain,
        "held": report.newly_held,
        "failed refills or cancels": report.action_errors,
        "not placed (see error)": report.skipped,
    }
    return {what: int(count) for what, count in counts.items() if count}


def _balances_left(report: RunReport) -> dict[str, tuple[Decimal, str]]:
    """Each panel's balance after this pass's spend, from the last sheet that asked for it."""
    left: dict[str, tuple[Decimal, str]] = {}
    for sheet in report.sheets:
        for panel, balance in sheet.balances.items():
            after = sheet.balance_left(panel)
            left[panel] = (balance.balance if after is None else after, balance.currency)
    return left


def _passes(count: int) -> str:
    return f"{count} pass" if count == 1 else f"{count} passes"


def _cut(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def _digest(text: str) -> str:
    """What the state file keeps of a message: enough to see it changed, none of its text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- what was announced, across passes and processes ---


@dataclass
class _State:
    low: set[str] = field(default_factory=set)  # panels whose low balance was announced
    down: dict[str, int] = field(default_factory=dict)  # panel -> unreachable passes in a row
    announced: set[str] = field(default_factory=set)  # panels whose outage was announced
    standing: dict[str, str] = field(default_factory=dict)  # sheet or panel failure -> digest

    def as_json(self) -> str:
        data = {
            "version": _STATE_VERSION,
            "low_balance": sorted(self.low),
            "unreachable_passes": dict(sorted(self.down.items())),
            "down_announced": sorted(self.announced),
            "standing": dict(sorted(self.standing.items())),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def parse(cls, text: str) -> _State:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
            raise ValueError("not a notification state")
        down = data.get("unreachable_passes", {})
        standing = data.get("standing", {})
        if not (isinstance(down, dict) and all(isinstance(v, int) for v in down.values())):
            raise ValueError("unreachable_passes")
        if not (isinstance(standing, dict) and all(isinstance(v, str) for v in standing.values())):
            raise ValueError("standing")
        return cls(
            low=_strings(data.get("low_balance", [])),
            down={str(k): int(v) for k, v in down.items()},
            announced=_strings(data.get("down_announced", [])),
            standing={str(k): v for k, v in standing.items()},
        )


def _strings(value: Any) -> set[str]:
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise ValueError("expected a list of names")
    return set(value)


def _load_state(path: Path | None) -> tuple[_State, str | None]:
    """The state saved at `path` and its text as saved (a fresh state when there is none)."""
    if path is None:
        return _State(), None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _State(), None
    except (OSError, UnicodeDecodeError) as error:
        log.warning("cannot read the notification state in %s (%s); starting afresh", path, error)
        return _State(), None
    try:
        state = _State.parse(text)
    except ValueError:
        log.warning("%s is not a notification state sheetorders wrote; starting afresh", path)
        return _State(), None
    return state, state.as_json()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
