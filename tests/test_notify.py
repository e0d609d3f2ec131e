"""Notifications through apprise to a real local JSON webhook: each event once, low balance again
only after a top-up, state kept across processes, a dead or stuck receiver never holds a pass up,
and no API key in any message."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from sheetorders.config import NOTIFY_EVENTS, NotifyConfig, load_config
from sheetorders.errors import ConfigError, PanelRefused, SheetError
from sheetorders.models import Balance
from sheetorders.notify import Message, Notifier, notifier_for, state_path_for
from sheetorders.report import PassReport, RunReport, Tally
from sheetorders.testing.receiver import WebhookReceiver

KEY = "SeCrEt-panel-KEY-0123456789"  # distinctive: any message containing it leaks the key


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def notifier(
    receiver: WebhookReceiver,
    state: Path | None = None,
    *,
    on: tuple[str, ...] = NOTIFY_EVENTS,
    low_balance: str | None = "20",
    panel_down_after: int = 3,
    timeout: float = 5.0,
) -> Notifier:
    config = NotifyConfig(
        urls=(receiver.apprise_url(),),
        on=frozenset(on),
        low_balance=Decimal(low_balance) if low_balance is not None else None,
        panel_down_after=panel_down_after,
    )
    return Notifier(config, secrets=[KEY], state_path=state, timeout=timeout)


def run(*sheets: PassReport) -> RunReport:
    return RunReport(sheets=list(sheets))


def with_balance(amount: str, panel: str = "main", spent: str | None = None) -> PassReport:
    report = PassReport(sheet="orders.xlsx")
    report.balances[panel] = Balance(Decimal(amount), "USD")
    if spent is not None:
        report.spend_on(panel).actual = Decimal(spent)
    return report


def down(panel: str = "main") -> PassReport:
    report = PassReport(sheet="orders.xlsx")
    report.unreachable[panel] = f"panel {panel!r}: could not connect"
    return report


def titles(receiver: WebhookReceiver) -> list[str]:
    time.sleep(0.05)  # anything still on its way arrives
    return [body["title"] for body in receiver.bodies]


# --- problems ---------------------------------------------------------------------------


def test_new_problems_of_every_sheet_make_one_message_naming_the_first_rows(receiver):
    first = PassReport(sheet="team-a")
    first.add(Tally.INVALID, 2)
    first.add(Tally.NEWLY_HELD)
    first.problems += [f"row {n}, quantity: 5 is under the service's minimum 10" for n in range(2, 6)]
    second = PassReport(sheet="team-b")
    second.add(Tally.REJECTED)
    second.add(Tally.UNCERTAIN)
    second.problems += ["row 7: the panel said: Incorrect link", "row 8: no clear answer", "row 9: x"]

    notifier(receiver).after_pass(run(first, second))

    [body] = receiver.wait_for(1)
    assert body["title"] == "sheetorders: 5 new problems"
    assert body["type"] == "warning"
    assert body["message"] == (
        "team-a: 2 invalid, 1 held\n"
        "- row 2, quantity: 5 is under the service's minimum 10\n"
        "- row 3, quantity: 5 is under the service's minimum 10\n"
        "- row 4, quantity: 5 is under the service's minimum 10\n"
        "- row 5, quantity: 5 is under the service's minimum 10\n"
        "\n"
        "team-b: 1 rejected, 1 uncertain\n"
        "- row 7: the panel said: Incorrect link\n"
        "- … and 2 more"
    )
    assert titles(receiver) == ["sheetorders: 5 new problems"]


def test_a_pass_without_new_problems_sends_nothing(receiver):
    standing = PassReport(sheet="orders.xlsx")  # rows still Invalid from before: no new problem
    standing.problems.append("row 3, link: empty")
    standing.add(Tally.ORDERED, 4)
    standing.add(Tally.REFRESHED, 10)
    notify = notifier(receiver)
    notify.after_pass(run(standing))
    notify.after_pass(run())
    assert titles(receiver) == []


def test_failed_actions_and_stray_statuses_are_problems_too(receiver):
    report = PassReport(sheet="orders.xlsx")
    report.add(Tally.ACTION_ERRORS)
    report.add(Tally.SKIPPED)
    report.problems += ["row 4: refill refused: not allowed", "row 5: status 'done' typed by hand"]
    notifier(receiver).after_pass(run(report))
    [body] = receiver.wait_for(1)
    assert body["title"] == "sheetorders: 2 new problems"
    assert body["message"].startswith("orders.xlsx: 1 failed refills or cancels, 1 not placed (see error)\n")


def test_a_sheet_that_cannot_be_done_is_said_once_until_its_error_changes(receiver):
    notify = notifier(receiver)
    locked = SheetError("orders.xlsx is open in Excel (~$orders.xlsx); close it and run again")
    notify.after_pass(run(PassReport(sheet="orders.xlsx", failure=locked)))
    notify.after_pass(run(PassReport(sheet="orders.xlsx", failure=locked)))
    [body] = receiver.wait_for(1)
    assert body["title"] == "sheetorders: a sheet or panel needs attention"
    assert body["message"] == f"orders.xlsx: could not be done: {locked}"

    notify.after_pass(run(PassReport(sheet="orders.xlsx")))  # done again: forgotten
    notify.after_pass(run(PassReport(sheet="orders.xlsx", failure=locked)))
    assert len(receiver.wait_for(2)) == 2


def test_a_panel_that_refuses_the_key_is_said_once(receiver):
    notify = notifier(receiver)
    for _ in range(3):
        report = PassReport(sheet="orders.xlsx")
        report.panel_failed("main", PanelRefused("Invalid API key", panel="main", action="balance"))
        notify.after_pass(run(report))
    [body] = receiver.wait_for(1)
    assert body["message"] == "panel 'main': balance: Invalid API key"
    assert len(titles(receiver)) == 1


def test_a_dry_run_says_so(receiver):
    report = PassReport(sheet="orders.xlsx", dry_run=True)
    report.add(Tally.INVALID)
    report.problems.append("row 2, service: empty")
    notifier(receiver).after_pass(run(report))
    assert receiver.wait_for(1)[0]["message"].startswith("orders.xlsx (dry run): 1 invalid\n")


# --- low balance ------------------------------------------------------------------------


def test_low_balance_is_said_once_and_again_only_after_a_top_up(receiver):
    notify = notifier(receiver)
    for amount in ("25", "15", "12", "19.99"):  # falls under 20 once, stays under
        notify.after_pass(run(with_balance(amount)))
    [body] = receiver.wait_for(1)
    assert body["title"] == "sheetorders: panel main balance low"
    assert body["message"].startswith("panel main: 15.00 USD left after this pass, under 20.00 USD.")
    assert body["type"] == "warning"

    notify.after_pass(run(PassReport(sheet="orders.xlsx")))  # no balance asked: nothing changes
    notify.after_pass(run(with_balance("18")))
    assert len(titles(receiver)) == 1

    notify.after_pass(run(with_balance("120")))  # topped up
    notify.after_pass(run(with_balance("10")))
    assert titles(receiver) == ["sheetorders: panel main balance low"] * 2
    assert receiver.bodies[1]["message"].startswith("panel main: 10.00 USD left")


def test_low_balance_counts_this_passs_spend(receiver):
    notify = notifier(receiver)
    notify.after_pass(run(with_balance("30", spent="12.50")))
    [body] = receiver.wait_for(1)
    assert body["message"].startswith("panel main: 17.50 USD left after this pass")


def test_each_panel_has_its_own_low_balance(receiver):
    notify = notifier(receiver)
    report = with_balance("5", panel="main")
    report.balances["backup"] = Balance(Decimal("50"), "EUR")
    notify.after_pass(run(report))
    notify.after_pass(run(with_balance("3", panel="backup")))
    assert titles(receiver) == [
        "sheetorders: panel main balance low",
        "sheetorders: panel backup balance low",
    ]


def test_what_was_announced_survives_the_process(receiver, tmp_path):
    state = state_path_for(tmp_path / "journal.sqlite")
    assert state == tmp_path / "journal.sqlite.notify.json"
    notifier(receiver, state).after_pass(run(with_balance("15")))
    notifier(receiver, state).after_pass(run(with_balance("14")))  # a later cron run: already said
    assert len(titles(receiver)) == 1
    assert json.loads(state.read_text())["low_balance"] == ["main"]

    notifier(receiver, state).after_pass(run(with_balance("40")))
    notifier(receiver, state).after_pass(run(with_balance("4")))
    assert len(titles(receiver)) == 2


def test_without_a_threshold_balances_are_not_watched(receiver):
    notifier(receiver, low_balance=None).after_pass(run(with_balance("0.01")))
    assert titles(receiver) == []


# --- panel down -------------------------------------------------------------------------


def test_a_panel_down_is_said_after_n_passes_in_a_row_once_and_its_return_too(receiver):
    notify = notifier(receiver, panel_down_after=3)
    for _ in range(2):
        notify.after_pass(run(down()))
    notify.after_pass(run(PassReport(sheet="orders.xlsx")))  # it answered: the count starts again
    for _ in range(2):
        notify.after_pass(run(down()))
    assert titles(receiver) == []

    for _ in range(3):
        notify.after_pass(run(down()))
    [body] = receiver.wait_for(1)
    assert body["title"] == "sheetorders: panel main unreachable"
    assert body["message"] == (
        "panel main could not be reached in 3 passes in a row (panel 'main': could not connect). "
        "Its rows wait; each pass tries again."
    )

    notify.after_pass(run(PassReport(sheet="orders.xlsx")))
    notify.after_pass(run(PassReport(sheet="orders.xlsx")))
    assert titles(receiver) == ["sheetorders: panel main unreachable", "sheetorders: panel main is back"]
    assert receiver.bodies[1]["message"] == "panel main answered again after 5 passes unreachable."
    assert receiver.bodies[1]["type"] == "success"


def test_a_pass_that_reached_no_sheet_does_not_end_an_outage(receiver, tmp_path):
    state = tmp_path / "journal.sqlite.notify.json"
    notifier(receiver, state, panel_down_after=2).after_pass(run(down()))
    failed = PassReport(sheet="orders.xlsx", failure=SheetError("cannot read orders.xlsx"))
    notifier(receiver, state, panel_down_after=2, on=("panel_down",)).after_pass(run(failed))
    notifier(receiver, state, panel_down_after=2).after_pass(run(down()))  # the second in a row
    assert titles(receiver) == ["sheetorders: panel main unreachable"]


def test_a_panel_down_in_any_sheet_counts_once_a_pass(receiver):
    notify = notifier(receiver, panel_down_after=2)
    notify.after_pass(run(down(), down(), PassReport(sheet="other")))
    assert titles(receiver) == []
    notify.after_pass(run(down()))
    assert titles(receiver) == ["sheetorders: panel main unreachable"]


# --- stopped, and which events ------------------------------------------------------------


def test_stopped_says_why(receiver):
    notifier(receiver).stopped(f"the config changed: panels.main.key {KEY} is wrong")
    [body] = receiver.wait_for(1)
    assert body["title"] == "sheetorders: sync stopped"
    assert body["type"] == "failure"
    assert body["message"].startswith("sheetorders sync stopped on an error and is not running any more: ")
    assert KEY not in json.dumps(body)


def test_only_the_events_asked_for_are_sent(receiver):
    notify = notifier(receiver, on=("stopped",), panel_down_after=1)
    report = with_balance("1")
    report.add(Tally.INVALID)
    report.unreachable["backup"] = "could not connect"
    notify.after_pass(run(report))
    assert titles(receiver) == []
    notify.stopped("boom")
    assert titles(receiver) == ["sheetorders: sync stopped"]


def test_messages_for_gives_the_messages_without_sending(receiver):
    report = with_balance("1")
    messages = notifier(receiver).messages_for(run(report))
    assert [(m.event, m.title) for m in messages] == [("low_balance", "sheetorders: panel main balance low")]
    assert titles(receiver) == []


# --- secrecy ------------------------------------------------------------------------------


def test_no_panel_key_in_any_message(receiver):
    notify = notifier(receiver, panel_down_after=1)
    report = with_balance("1")
    report.add(Tally.REJECTED)
    report.problems.append(f"row 2: the panel said: bad key {KEY}")
    report.unreachable["backup"] = f"could not connect to https://backup.example/api?key={KEY}"
    report.panel_failed("third", PanelRefused(f"key {KEY} is not valid", panel="third"))
    failed = PassReport(sheet="team-b", failure=SheetError(f"cannot write: {KEY}"))
    notify.after_pass(run(report, failed))
    notify.stopped(f"error {KEY}")
    bodies = receiver.wait_for(4)
    assert [body["title"] for body in bodies] == [
        "sheetorders: 1 new problem; a sheet or panel needs attention",
        "sheetorders: panel main balance low",
        "sheetorders: panel backup unreachable",
        "sheetorders: sync stopped",
    ]
    text = json.dumps(bodies)
    assert KEY not in text
    assert text.count("***") == 5


def test_the_state_file_holds_no_message_text(receiver, tmp_path):
    state = tmp_path / "journal.sqlite.notify.json"
    failed = PassReport(sheet="orders.xlsx", failure=SheetError("cannot read orders.xlsx: secret detail"))
    notifier(receiver, state).after_pass(run(failed))
    assert "secret detail" not in state.read_text()


# --- delivery never holds a pass up ---------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_receiver_does_not_fail_or_slow_the_pass(caplog):
    url = f"json://127.0.0.1:{closed_port()}/hook"
    notify = Notifier(NotifyConfig(urls=(url,), panel_down_after=1), secrets=[KEY])
    report = down()
    report.add(Tally.INVALID)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="sheetorders.notify"):
        notify.after_pass(run(report))
        notify.stopped("boom")
    assert time.monotonic() - started < 2
    ours = [r.getMessage() for r in caplog.records if r.name == "sheetorders.notify"]
    assert ours == [
        "notification 'sheetorders: 1 new problem' could not be delivered to notify.urls.0 (json)",
        "notification 'sheetorders: panel main unreachable' could not be delivered to notify.urls.0 (json)",
        "notification 'sheetorders: sync stopped' could not be delivered to notify.urls.0 (json)",
    ]


def test_a_receiver_that_never_answers_holds_the_pass_no_longer_than_the_bound(receiver, caplog):
    receiver.hold()
    notify = notifier(receiver, timeout=0.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="sheetorders.notify"):
        notify.after_pass(run(with_balance("1")))
    assert time.monotonic() - started < 1.5
    assert any("not delivered within 0.5 s" in r.getMessage() for r in caplog.records)
    assert len(receiver.wait_for(1)) == 1  # it was sent; only the answer is missing
    receiver.release()


def test_one_dead_url_does_not_keep_the_message_from_the_others(receiver):
    urls = (f"json://127.0.0.1:{closed_port()}/hook", receiver.apprise_url())
    Notifier(NotifyConfig(urls=urls)).stopped("boom")
    assert titles(receiver) == ["sheetorders: sync stopped"]


def test_a_receiver_that_answers_an_error_is_logged(receiver, caplog):
    receiver.status = 500
    with caplog.at_level(logging.WARNING, logger="sheetorders.notify"):
        notifier(receiver).stopped("boom")
    assert len(receiver.bodies) == 1
    assert "could not be delivered to notify.urls.0 (json)" in caplog.text


def test_a_sender_that_raises_is_logged_and_the_pass_goes_on(caplog):
    def send(message: Message) -> bool:
        raise RuntimeError(f"exploded with {KEY}")

    notify = Notifier(NotifyConfig(urls=("json://unused",)), secrets=[KEY], send=send)
    with caplog.at_level(logging.WARNING, logger="sheetorders.notify"):
        notify.stopped("boom")
    assert "notification 'sheetorders: sync stopped' to notify failed: RuntimeError" in caplog.text
    assert KEY not in caplog.text


def test_an_injected_sender_gets_the_scrubbed_messages():
    sent: list[Message] = []
    notify = Notifier(
        NotifyConfig(urls=("json://unused",)), secrets=[KEY], send=lambda m: sent.append(m) or True
    )
    notify.stopped(f"key {KEY}")
    assert [(m.event, m.level, m.body.endswith("key ***")) for m in sent] == [("stopped", "failure", True)]


# --- the state file -----------------------------------------------------------------------


def test_a_damaged_state_file_is_started_afresh(receiver, tmp_path, caplog):
    state = tmp_path / "journal.sqlite.notify.json"
    state.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="sheetorders.notify"):
        notify = notifier(receiver, state)
    assert "is not a notification state sheetorders wrote; starting afresh" in caplog.text
    notify.after_pass(run(with_balance("15")))
    assert len(receiver.wait_for(1)) == 1
    assert json.loads(state.read_text())["version"] == 1


def test_a_state_file_that_cannot_be_written_is_logged_once_and_kept_in_memory(receiver, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    notify = notifier(receiver, blocker / "journal.sqlite.notify.json")
    with caplog.at_level(logging.WARNING, logger="sheetorders.notify"):
        for amount in ("15", "14", "30", "10"):
            notify.after_pass(run(with_balance(amount)))
    assert len(titles(receiver)) == 2
    assert caplog.text.count("cannot save the notification state") == 1


# --- from the config ------------------------------------------------------------------------


def write_config(folder: Path, notify: str) -> Path:
    path = folder / "sheetorders.yaml"
    path.write_text(
        "panels:\n  main:\n    url: https://panel.example/api/v2\n    key: ${SMM_KEY}\n"
        "journal: state/journal.sqlite\n" + notify,
        encoding="utf-8",
    )
    return path


def test_notifier_for_a_config_sends_to_its_urls_scrubs_its_keys_and_keeps_state_by_the_journal(
    receiver, tmp_path
):
    path = write_config(
        tmp_path,
        'notify:\n  urls: ["${HOOK}"]\n  on: [problems, stopped]\n',
    )
    config = load_config(path, env={"SMM_KEY": KEY, "HOOK": receiver.apprise_url("/team")})
    notify = notifier_for(config)
    assert notify is not None
    report = PassReport(sheet="orders.xlsx")
    report.add(Tally.INVALID)
    report.problems.append(f"row 2, link: {KEY}")
    notify.after_pass(run(report))
    receiver.wait_for(1)
    [request] = receiver.received
    assert request.path == "/team"
    assert KEY not in request.raw.decode()
    assert (tmp_path / "state" / "journal.sqlite.notify.json").exists()


def test_no_notifier_without_a_notify_section(tmp_path):
    config = load_config(write_config(tmp_path, ""), env={"SMM_KEY": KEY})
    assert config.notify is None
    assert notifier_for(config) is None


def test_a_url_apprise_cannot_use_is_a_config_error_that_does_not_show_it():
    with pytest.raises(ConfigError) as caught:
        Notifier(NotifyConfig(urls=("json://127.0.0.1/ok", "nosuch://user:hunter2@host/x")))
    assert str(caught.value) == (
        "notify.urls.1 (nosuch): apprise cannot use this URL as written (the URL is not shown)"
    )
