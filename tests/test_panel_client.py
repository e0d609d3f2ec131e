"""PanelClient against the local panel server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest

from sheetorders import __version__, transport
from sheetorders.errors import (
    ActiveOrderExists,
    AmbiguousOrder,
    NotEnoughFunds,
    PanelError,
    PanelRefused,
    PanelUnavailable,
    RateLimited,
)
from sheetorders.models import Balance, ItemError, OrderStatus, RefillStatus
from sheetorders.panel import DEFAULT_TIMEOUT, PanelClient, RetryPolicy, Timeouts
from sheetorders.testing import panel_server
from sheetorders.testing.clients import SECRET_KEY as KEY
from sheetorders.testing.clients import Sleeps, add_order
from sheetorders.testing.panel_server import PanelServer


def new_client(server: PanelServer, sleeps: Sleeps | None = None, **kwargs: Any) -> PanelClient:
    return PanelClient(server.url, KEY, name="test", sleep=sleeps or Sleeps(), **kwargs)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- reads and parsing ------------------------------------------------------------------


def test_services_are_parsed_with_decimal_rates_and_string_ids(client: PanelClient) -> None:
    services = {s.id: s for s in client.services()}
    assert len(services) == 20
    assert all(isinstance(sid, str) for sid in services)
    assert services["1"].dripfeed is True and services["1"].type == "Default"
    assert services["2"].dripfeed is False and services["2"].refill and services["2"].cancel
    assert services["3"].dripfeed is None  # the panel does not say
    assert services["20"].rate == Decimal("0.0123456") and isinstance(services["20"].rate, Decimal)
    assert (services["2"].min, services["2"].max) == (50, 100000)
    assert services["6"].type == "Custom Comments" and services["6"].category == "Instagram Comments"


def test_services_alt_dialect_numbers_as_numbers() -> None:
    with PanelServer(key=KEY, profile="alt") as panel, new_client(panel) as client:
        services = {s.id: s for s in client.services()}
    assert services["20"].rate == Decimal("0.0123456")  # a JSON number, parsed without float
    assert str(services["1"].rate) == "0.9"
    assert all(s.dripfeed is None for s in services.values())
    assert services["2"].refill is True and services["2"].cancel is True
    assert services["1"].refill is False and services["1"].cancel is False


def test_tolerant_parsing_of_services(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply(
        [
            {"service": "77", "name": "A", "type": "Default", "category": "C", "rate": 0.1, "min": 10,
             "max": "1,000", "refill": "true", "cancel": "0", "dripfeed": "1"},
            {"service": 78, "name": "B", "category": "C", "rate": "2", "min": "1", "max": 5,
             "refill": 1, "cancel": True},
        ]
    )  # fmt: skip
    first, second = client.services()
    assert first.id == "77" and first.rate == Decimal("0.1") and first.max == 1000
    assert (first.refill, first.cancel, first.dripfeed) == (True, False, True)
    assert second.id == "78" and second.type == "Default" and second.rate == Decimal(2)
    assert (second.refill, second.cancel, second.dripfeed) == (True, True, None)


def test_balance(server: PanelServer, client: PanelClient) -> None:
    assert client.balance() == Balance(Decimal("1000.00"), "USD")
    server.faults.queue_reply({"balance": 12.3456789, "currency": "EUR"})
    balance = client.balance()
    assert balance.balance == Decimal("12.3456789") and balance.currency == "EUR"


def test_status_single(server: PanelServer, client: PanelClient) -> None:
    oid = add_order(client)
    pending = client.status(oid)
    assert pending == OrderStatus(oid, "Pending", Decimal("0.24"), 0, 100, "USD")
    assert not pending.is_final
    server.advance(3600)
    done = client.status(int(oid))
    assert done.status == "Completed" and done.remains == 0 and done.is_final
    assert isinstance(done.start_count, int) and done.start_count > 0
    with pytest.raises(PanelRefused, match="Incorrect order ID"):
        client.status("99")


def test_status_error_as_a_status_is_not_a_refusal(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply(
        {"charge": "0", "start_count": "", "status": "Error", "remains": 5, "currency": None}
    )
    status = client.status("1")
    assert (status.status, status.start_count, status.remains, status.currency) == ("Error", None, 5, None)
    assert status.is_final


@pytest.mark.parametrize("profile", ["standard", "alt"])
def test_statuses_250_ids_take_three_calls_and_keep_item_errors(profile: str) -> None:
    with PanelServer(key=KEY, speed=0, profile=profile) as panel, new_client(panel) as client:
        real = [add_order(client, f"https://x.com/{i}") for i in range(3)]
        ids = real + [str(900000 + i) for i in range(247)]
        panel.reset_calls()
        result = client.statuses(ids + real)  # duplicates are asked once
        assert panel.ledger.calls["status"] == 3
    assert list(result) == ids
    assert all(isinstance(result[oid], OrderStatus) for oid in real)
    assert result[real[0]].charge == Decimal("0.24")
    errors = [result[oid] for oid in ids[3:]]
    assert all(e == ItemError(e.id, "Incorrect order ID") for e in errors)  # type: ignore[union-attr]
    assert errors[0].id == "900000"  # type: ignore[union-attr]


def test_statuses_of_nothing_makes_no_call(server: PanelServer, client: PanelClient) -> None:
    assert client.statuses([]) == {}
    assert server.ledger.calls["status"] == 0


def test_statuses_missing_and_odd_items(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply({"1": {"status": "Partial", "charge": "1.5", "remains": "3"}, "2": 42})
    result = client.statuses(["1", "2", "3"])
    assert result["1"] == OrderStatus("1", "Partial", Decimal("1.5"), None, 3, None)
    assert isinstance(result["2"], ItemError) and "unexpected" in result["2"].message
    assert result["3"] == ItemError("3", "missing from the panel's reply")


# --- refills and cancels ---------------------------------------------------------------


@pytest.mark.parametrize("profile", ["standard", "alt"])
def test_refill_flow(profile: str) -> None:
    with PanelServer(key=KEY, speed=0, profile=profile) as panel, new_client(panel) as client:
        oid = add_order(client)
        other = add_order(client, "https://x.com/b")
        with pytest.raises(PanelRefused, match=r"^panel 'test': refill: Order is not completed$"):
            client.refill(oid)
        panel.advance(3600)
        rid = client.refill(oid)
        assert rid == "501"
        assert client.refill_status(rid) == RefillStatus("501", "Pending")
        result = client.refills([other, "123"])
        assert result == {other: "502", "123": ItemError("123", "Incorrect order ID")}
        panel.advance(3600)
        statuses = client.refill_statuses([rid, "502", "999"])
        assert statuses == {
            "501": RefillStatus("501", "Completed"),
            "502": RefillStatus("502", "Completed"),
            "999": ItemError("999", "Refill not found"),
        }
        assert statuses["501"].is_final  # type: ignore[union-attr]
        with pytest.raises(PanelRefused, match="Refill not found"):
            client.refill_status("999")


@pytest.mark.parametrize("profile", ["standard", "alt"])
def test_cancel(profile: str) -> None:
    with PanelServer(key=KEY, speed=0, profile=profile) as panel, new_client(panel) as client:
        oid = add_order(client)
        no_cancel = client.add(1, {"link": "https://x.com/a", "quantity": 100})
        result = client.cancel([oid, no_cancel, "5"])
        assert result == {
            oid: True,
            no_cancel: ItemError(no_cancel, "Cancel not available for this service"),
            "5": ItemError("5", "Incorrect order ID"),
        }
        assert panel.order(oid).status == "Canceled"
        assert client.balance().balance == Decimal(1000) - Decimal("0.09")


def test_odd_batch_items(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply(
        [{"order": "1", "cancel": "1"}, {"order": 2, "cancel": 0}, {"order": 3, "error": "x"}]
    )
    assert client.cancel(["1", "2", "3", "4"]) == {
        "1": True,
        "2": False,
        "3": ItemError("3", "x"),
        "4": ItemError("4", "missing from the panel's reply"),
    }
    server.faults.queue_reply(
        [{"refill": 7, "status": "In progress"}, {"refill": "8", "status": "Order not found"}]
    )
    assert client.refill_statuses([7, 8]) == {
        "7": RefillStatus("7", "In progress"),
        "8": ItemError("8", "Order not found"),
    }


# --- add --------------------------------------------------------------------------------


def test_add_returns_string_id_and_joins_lists(server: PanelServer, client: PanelClient) -> None:
    usernames = [f"user{i}" for i in range(12)]
    oid = client.add(10, {"link": "https://x.com/p", "usernames": usernames, "runs": None})
    assert oid == "10001"
    order = server.order(oid)
    assert order.fields["usernames"] == "\n".join(usernames)
    assert "runs" not in order.fields
    assert order.quantity == 12 and order.charge == Decimal("6.00") * 12 / 1000


def test_add_dripfeed_and_spreadsheet_numbers(server: PanelServer, client: PanelClient) -> None:
    oid = client.add("1", {"link": "https://x.com/p", "quantity": 100.0, "runs": 3, "interval": Decimal(15)})
    order = server.order(oid)
    assert order.fields["quantity"] == "100" and order.fields["interval"] == "15"
    assert order.charge == Decimal("0.27")


def test_add_fields_cannot_override_key_or_action(server: PanelServer, client: PanelClient) -> None:
    oid = client.add("2", {"key": "other", "action": "balance", "link": "https://x.com/a", "quantity": 50})
    assert server.order(oid).fields["service"] == "2"


def test_add_alt_dialect_string_ids() -> None:
    with PanelServer(key=KEY, profile="alt") as panel, new_client(panel) as client:
        assert add_order(client) == "10001"


@pytest.mark.parametrize("profile", ["standard", "alt"])
def test_add_refusals_are_typed_verbatim_and_not_retried(profile: str) -> None:
    sleeps = Sleeps()
    with PanelServer(key=KEY, balance="1", profile=profile) as panel, new_client(panel, sleeps) as client:
        with pytest.raises(PanelRefused) as low:
            add_order(client, quantity=10)
        assert type(low.value) is PanelRefused
        assert low.value.message == "Quantity less than minimal 50"
        assert str(low.value) == "panel 'test': add: Quantity less than minimal 50"
        with pytest.raises(NotEnoughFunds, match="Not enough funds on balance"):
            add_order(client, quantity=1000)
        add_order(client)
        with pytest.raises(ActiveOrderExists, match="You have active order with this link"):
            add_order(client)
        assert panel.ledger.calls["add"] == 4
    assert sleeps.waits == []


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("neworder.error.not_enough_funds", NotEnoughFunds),
        ("Your balance is too low", NotEnoughFunds),
        ("neworder.error.link_duplicate", ActiveOrderExists),
        ("Incorrect link", PanelRefused),
    ],
)
def test_untranslated_refusals(server: PanelServer, client: PanelClient, message: str, error: type) -> None:
    server.faults.queue_reply({"error": message})
    with pytest.raises(error) as refused:
        add_order(client)
    assert type(refused.value) is error and refused.value.message == message


def test_4xx_json_is_a_refusal() -> None:
    with PanelServer(key=KEY, error_http_status=400) as panel, new_client(panel) as client:
        with pytest.raises(PanelRefused, match="Incorrect service ID"):
            client.add("999", {"link": "https://x.com", "quantity": 1})
        with (
            PanelClient(panel.url, "wrong", sleep=Sleeps()) as wrong,
            pytest.raises(PanelRefused, match="API key"),
        ):
            wrong.balance()
        assert panel.ledger.calls["balance"] == 1  # a refusal is never retried


def test_4xx_html_to_a_write_is_ambiguous_and_not_retried(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    server.faults.queue_reply("<html>Forbidden</html>", status=403)
    with pytest.raises(AmbiguousOrder, match="HTTP 403"):  # it came after the panel had the request
        add_order(client)
    assert server.ledger.calls["add"] == 1 and sleeps.waits == []


# --- faults on reads ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["5xx", "html", "empty", "429"])
def test_reads_are_retried_through_faults(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, kind: str
) -> None:
    server.faults.retry_after = None
    server.faults.queue(kind, count=2)
    assert client.balance().balance == Decimal(1000)
    assert server.ledger.calls["balance"] == 3
    assert len(sleeps.waits) == 2


def test_read_backoff_grows_and_attempts_are_bounded(server: PanelServer, sleeps: Sleeps) -> None:
    server.faults.queue("5xx", count=10)
    policy = RetryPolicy(attempts=4, initial=0.5, maximum=8.0, total=60.0, jitter=0.25)
    with new_client(server, sleeps, retry=policy) as client, pytest.raises(PanelUnavailable) as failed:
        client.status("1")
    assert server.ledger.calls["status"] == 4
    assert len(sleeps.waits) == 3
    for wait, base in zip(sleeps.waits, (0.5, 1.0, 2.0), strict=True):
        assert base <= wait <= base * 1.25
    assert "HTTP 502" in str(failed.value) and "502 Bad Gateway" in failed.value.snippet


def test_read_retries_bounded_by_total_time(server: PanelServer, sleeps: Sleeps) -> None:
    server.faults.queue("5xx", count=20)
    policy = RetryPolicy(attempts=20, initial=1.0, maximum=8.0, total=10.0)
    with new_client(server, sleeps, retry=policy) as client, pytest.raises(PanelUnavailable):
        client.services()
    assert len(sleeps.waits) == 3  # 1 + 2 + 4 (+ jitter); the next ~8 s would pass 10 s
    assert sum(sleeps.waits) <= 10.0
    assert server.ledger.calls["services"] == 4


def test_429_retry_after_seconds_is_honoured(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    server.faults.retry_after = 5
    server.faults.queue("429")
    assert client.balance().currency == "USD"
    assert len(sleeps.waits) == 1 and 5.0 <= sleeps.waits[0] <= 5.5


def test_429_retry_after_http_date_is_honoured(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    server.faults.queue_reply(
        {"error": "slow down"}, status=429, headers={"Retry-After": format_datetime(when, True)}
    )
    client.balance()
    assert len(sleeps.waits) == 1 and 27.0 <= sleeps.waits[0] <= 31.0


def test_429_retry_after_longer_than_the_budget_gives_up(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    server.faults.retry_after = 120
    server.faults.queue("429")
    with pytest.raises(RateLimited) as limited:
        client.balance()
    assert limited.value.retry_after == 120.0
    assert sleeps.waits == [] and server.ledger.calls["balance"] == 1


def test_read_timeout_on_a_read_is_retried(server: PanelServer, sleeps: Sleeps) -> None:
    server.faults.latency = 2.5  # the read timeout counts whole seconds of silence
    timeout = Timeouts(connect=5.0, read=1.0)
    with (
        new_client(server, sleeps, timeout=timeout, retry=RetryPolicy(attempts=2)) as client,
        pytest.raises(PanelUnavailable, match="ReadTimeout"),
    ):
        client.balance()
    assert len(sleeps.waits) == 1 and server.ledger.calls["balance"] == 2


def test_wrong_shape_is_unexpected_and_not_retried(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    server.faults.queue_reply([1, 2, 3])
    with pytest.raises(PanelUnavailable, match="unexpected reply") as odd:
        client.balance()
    assert odd.value.snippet == "[1, 2, 3]"
    server.faults.queue_reply(["not", "a", "dict"])
    with pytest.raises(PanelUnavailable, match="unexpected reply"):
        client.statuses(["1"])
    assert sleeps.waits == [] and server.ledger.calls["balance"] == 1


def test_snippet_is_short_and_collapsed(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply("<html>\n\n   <body>" + "x  \n " * 200 + "</body></html>", count=5)
    with pytest.raises(PanelUnavailable) as down:
        client.balance()
    snippet = down.value.snippet
    assert 0 < len(snippet) <= 120 and "\n" not in snippet and "  " not in snippet
    assert snippet.startswith("<html> <body>x x")


# --- faults on writes ----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "created"), [("5xx", 0), ("html", 0), ("empty", 0), ("drop", 1)])
def test_ambiguous_add_is_never_retried(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, kind: str, created: int
) -> None:
    server.faults.queue(kind, actions={"add"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert "may have reached the panel" in str(ambiguous.value)
    assert server.ledger.calls["add"] == 1
    assert len(server.ledger.orders) == created
    assert sleeps.waits == []


def test_dropped_add_left_exactly_one_order(server: PanelServer, client: PanelClient) -> None:
    server.faults.drop_after_create = 1.0
    with pytest.raises(AmbiguousOrder):
        add_order(client)
    assert server.ledger.calls["add"] == 1
    assert list(server.ledger.orders) == ["10001"]
    assert client.balance().balance == Decimal(1000) - Decimal("0.24")  # reads still work


def test_add_read_timeout_is_ambiguous(server: PanelServer, sleeps: Sleeps) -> None:
    server.faults.latency = 2.5  # the read timeout counts whole seconds of silence
    with (
        new_client(server, sleeps, timeout=Timeouts(connect=5.0, read=1.0)) as client,
        pytest.raises(AmbiguousOrder, match="ReadTimeout"),
    ):
        add_order(client)
    deadline = time.monotonic() + 5
    while not server.ledger.orders and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.ledger.orders) == 1  # the panel did place it
    assert server.ledger.calls["add"] == 1 and sleeps.waits == []


def test_add_is_retried_on_429(server: PanelServer, client: PanelClient, sleeps: Sleeps) -> None:
    server.faults.retry_after = 2
    server.faults.queue("429", count=2, actions={"add"})
    assert add_order(client) == "10001"
    assert server.ledger.calls["add"] == 3 and len(server.ledger.orders) == 1
    assert len(sleeps.waits) == 2 and all(w >= 2 for w in sleeps.waits)


def test_add_429_until_attempts_run_out_is_unavailable_not_ambiguous(
    server: PanelServer, sleeps: Sleeps
) -> None:
    server.faults.retry_after = 1
    server.faults.queue("429", count=5)
    with (
        new_client(server, sleeps, retry=RetryPolicy(attempts=3)) as client,
        pytest.raises(RateLimited) as limited,
    ):
        add_order(client)
    assert isinstance(limited.value, PanelUnavailable) and not isinstance(limited.value, AmbiguousOrder)
    assert server.ledger.calls["add"] == 3 and server.ledger.orders == {}


def test_add_to_a_closed_port_is_retried_then_unavailable() -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{closed_port()}/api/v2"
    with (
        PanelClient(url, KEY, sleep=sleeps, retry=RetryPolicy(attempts=3)) as client,
        pytest.raises(PanelUnavailable, match="nothing was sent") as refused,
    ):
        client.add("2", {"link": "https://x.com/a", "quantity": 100})
    assert not isinstance(refused.value, AmbiguousOrder)
    assert "ConnectError" in str(refused.value)
    assert len(sleeps.waits) == 2


def test_add_succeeds_once_the_panel_comes_up() -> None:
    port = closed_port()
    started: list[PanelServer] = []

    def sleep_then_start(seconds: float) -> None:
        if not started:
            started.append(PanelServer(key=KEY, port=port).start())

    try:
        with PanelClient(f"http://127.0.0.1:{port}/api/v2", KEY, sleep=sleep_then_start) as client:
            assert client.add("2", {"link": "https://x.com/a", "quantity": 100}) == "10001"
        assert started[0].ledger.calls["add"] == 1 and len(started[0].ledger.orders) == 1
    finally:
        for panel in started:
            panel.stop()


def test_refill_and_cancel_drops_are_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    oid = add_order(client)
    server.faults.queue("drop", actions={"cancel"})
    with pytest.raises(AmbiguousOrder):
        client.cancel([oid])
    assert server.order(oid).status == "Canceled"  # it did take effect
    other = add_order(client, "https://x.com/b")
    server.advance(3600)
    server.faults.queue("drop", actions={"refill"})
    with pytest.raises(AmbiguousOrder):
        client.refill(other)
    assert len(server.ledger.refills) == 1
    assert server.ledger.calls["cancel"] == 1 and server.ledger.calls["refill"] == 1
    assert sleeps.waits == []


def test_unexpected_add_reply_is_ambiguous(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply({"ok": True}, actions={"add"})
    with pytest.raises(AmbiguousOrder, match="unexpected reply"):
        add_order(client)


def test_a_failed_write_batch_among_good_ones_becomes_item_errors(
    server: PanelServer, sleeps: Sleeps
) -> None:
    ids = [str(i) for i in range(1, 151)]
    server.faults.queue("ok", actions={"cancel"})
    server.faults.queue("5xx", actions={"cancel"})
    with new_client(server, sleeps, concurrency=1) as client:
        result = client.cancel(ids)
        assert server.ledger.calls["cancel"] == 2
        assert result["1"] == ItemError("1", "Incorrect order ID")
        late = result["150"]
        assert isinstance(late, ItemError) and "may have reached the panel" in late.message
        assert all(isinstance(result[i], ItemError) and "HTTP 502" in result[i].message for i in ids[100:])  # type: ignore[union-attr]
        server.faults.queue("5xx", count=2)
        with pytest.raises(AmbiguousOrder):
            client.refills(ids)


# --- transport, secrecy ------------------------------------------------------------------------


def test_request_shape_user_agent_and_key_only_in_body(server: PanelServer, client: PanelClient) -> None:
    client.balance()
    request = server.ledger.last_request
    assert request is not None
    assert request.path == "/api/v2" and KEY not in request.path
    assert request.form == {"key": KEY, "action": "balance"}
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["user-agent"] == f"sheetorders/{__version__} (+https://pypi.org/project/sheetorders/)"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert DEFAULT_TIMEOUT.connect == 10.0 and DEFAULT_TIMEOUT.read == 30.0
    assert client.timeout == DEFAULT_TIMEOUT


def test_redirect_is_not_followed(server: PanelServer, client: PanelClient, sleeps: Sleeps) -> None:
    server.faults.queue("redirect", count=2)
    with pytest.raises(PanelUnavailable, match=r"redirected .*key was not re-sent"):
        client.balance()
    with pytest.raises(AmbiguousOrder, match=r"redirected .*check the panel URL"):
        add_order(client)  # the panel may have acted on it before redirecting
    assert sum(server.ledger.calls.values()) == 2 and server.ledger.orders == {}
    assert sleeps.waits == []


def test_the_key_never_leaks(server: PanelServer, sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.faults.html_body = f"<html>Blocked request key={KEY}</html>"
    errors: list[PanelError] = []
    with new_client(server, sleeps, retry=RetryPolicy(attempts=2)) as client:
        assert KEY not in repr(client)
        client.services()
        add_order(client)
        steps = [
            lambda: add_order(client, quantity=1),
            lambda: server.faults.queue("html", count=2) or client.balance(),
            lambda: server.faults.queue("html") or add_order(client, "https://x.com/z"),
            lambda: server.faults.queue_reply({"error": f"Invalid API key {KEY}"}) or client.balance(),
            lambda: server.faults.queue("redirect") or client.balance(),
            lambda: server.faults.queue("5xx", count=2) or client.statuses(["1"]),
        ]
        for step in steps:
            with pytest.raises(PanelError) as caught:
                step()
            errors.append(caught.value)
    with PanelClient(f"http://127.0.0.1:{closed_port()}/api/v2", KEY, sleep=sleeps) as offline:
        with pytest.raises(PanelError) as caught:
            offline.add("2", {"link": "https://x.com/a", "quantity": 100})
        errors.append(caught.value)
    assert len(errors) == 7
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)
        assert all(KEY not in str(arg) for arg in error.args)
        assert KEY not in getattr(error, "snippet", "")
    assert "***" in str(errors[1])  # the echoed key was blanked out
    assert any(r.name == "sheetorders.panel" and "balance" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text


# --- concurrency and rate --------------------------------------------------------------------------


def test_connection_is_reused(server: PanelServer, client: PanelClient) -> None:
    for _ in range(20):
        client.balance()
    assert server.ledger.connections == 1


def test_concurrency_limit_across_threads(server: PanelServer) -> None:
    server.faults.latency = 0.15
    with new_client(server, concurrency=3) as client:
        threads = [threading.Thread(target=client.balance) for _ in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert server.ledger.calls["balance"] == 9
    assert server.ledger.max_in_flight == 3


def test_batches_run_in_parallel_within_the_limit(server: PanelServer) -> None:
    server.faults.latency = 0.1
    with new_client(server, concurrency=2) as client:
        result = client.statuses(str(i) for i in range(450))
    assert len(result) == 450 and server.ledger.calls["status"] == 5
    assert server.ledger.max_in_flight == 2  # batches overlapped, and never more than 2


def test_connections_stay_within_concurrency_and_share_cookies(
    server: PanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cookies: list[str | None] = []
    serve = panel_server._Handler._serve

    def recording(handler: Any, panel: PanelServer, form: dict[str, str], action: str) -> None:
        cookies.append(handler.headers.get("Cookie"))
        serve(handler, panel, form, action)

    monkeypatch.setattr(panel_server._Handler, "_serve", recording)
    server.faults.latency = 0.1

    def burst(client: PanelClient, count: int) -> None:
        threads = [threading.Thread(target=client.balance) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    with new_client(server, concurrency=3) as client:
        server.faults.queue_reply(
            {"balance": "1.00", "currency": "USD"}, headers={"Set-Cookie": "cdn=ok; Path=/"}
        )
        burst(client, 3)  # three connections at once; one reply sets a cookie
        cookies.clear()
        burst(client, 3)  # on the three connections again
        assert cookies == ["cdn=ok"] * 3
        burst(client, 12)
    assert server.ledger.max_in_flight == 3 and server.ledger.connections == 3
    assert server.ledger.calls["balance"] == 18


def test_rate_limit_spaces_requests(server: PanelServer, sleeps: Sleeps) -> None:
    with new_client(server, sleeps, rate_limit=4) as client:
        for _ in range(5):
            client.balance()
    # The injected sleep does not really wait, so each reservation lands 0.25 s after the last.
    assert len(sleeps.waits) == 4
    expected = [0.25, 0.5, 0.75, 1.0]
    for wait, want in zip(sleeps.waits, expected, strict=True):
        assert want - 0.1 <= wait <= want


def test_rate_limit_holds_across_threads_for_real(server: PanelServer) -> None:
    with PanelClient(server.url, KEY, rate_limit=20, concurrency=3) as client:
        started = time.monotonic()
        threads = [threading.Thread(target=client.balance) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    assert server.ledger.calls["balance"] == 6
    assert elapsed >= 0.24  # 6 starts at 20/s span at least 5 × 0.05 s


def test_concurrent_adds_get_distinct_ids(server: PanelServer) -> None:
    ids: list[str] = []
    lock = threading.Lock()
    with new_client(server, concurrency=4) as client:

        def place(n: int) -> None:
            for i in range(5):
                oid = add_order(client, f"https://x.com/{n}/{i}")
                with lock:
                    ids.append(oid)

        threads = [threading.Thread(target=place, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(set(ids)) == 40 and len(server.ledger.orders) == 40


def test_close_and_arguments(server: PanelServer) -> None:
    with new_client(server) as client:
        client.balance()
    assert client.closed
    with pytest.raises(ValueError):
        PanelClient(server.url, KEY, concurrency=0)
    with pytest.raises(ValueError):
        PanelClient(server.url, KEY, rate_limit=0)


def test_a_compressed_reply_is_decoded(server: PanelServer, client: PanelClient) -> None:
    body = gzip.compress(b'{"balance": "12.50", "currency": "EUR"}')
    server.faults.queue_reply(body, headers={"Content-Encoding": "gzip"})
    assert client.balance() == Balance(Decimal("12.50"), "EUR")
    request = server.ledger.last_request
    assert request is not None and "gzip" in request.headers["Accept-Encoding"]


def test_a_reply_too_long_is_cut_off_and_its_connection_not_reused(
    server: PanelServer, client: PanelClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "MAX_REPLY", 1000)
    server.faults.queue_reply({"order": 10001, "padding": "x" * 5000}, actions={"add"})
    with pytest.raises(AmbiguousOrder, match="longer than 1000 bytes"):
        add_order(client)
    with pytest.raises(PanelUnavailable, match="longer than 1000 bytes"):
        client.services()  # a read: retried, and too long every time
    assert client.balance().balance == Decimal(1000)  # on a fresh connection, not the rest of a reply


def test_an_add_dropped_on_a_reused_connection_is_sent_once(server: PanelServer, client: PanelClient) -> None:
    client.balance()  # the connection the add will reuse
    server.faults.drop_after_create = 1.0
    with pytest.raises(AmbiguousOrder, match="may have reached the panel"):
        add_order(client)
    # libcurl would send it again on a new connection (the reused one died unanswered): refused.
    assert server.ledger.calls["add"] == 1 and list(server.ledger.orders) == ["10001"]
    server.faults.drop_after_create = 0.0
    assert client.balance().balance == Decimal(1000) - Decimal("0.24")


def test_an_add_after_the_panel_closed_an_idle_connection_goes_on_a_new_one(
    server: PanelServer, client: PanelClient
) -> None:
    server.faults.trickle_interval = 0.01
    server.faults.queue("trickle", actions={"balance"})  # answered, then the connection is closed
    assert client.balance().balance == Decimal(1000)
    assert add_order(client) == "10001"  # not sent into the closed connection: no unclear add
    assert server.ledger.calls["add"] == 1 and server.ledger.connections == 2


def test_a_client_closed_while_a_request_waits_sends_nothing(server: PanelServer) -> None:
    client = new_client(server)
    client.balance()
    pool = client._connections()
    client.close()
    with pytest.raises(transport.NoReply, match="closed") as refused:
        pool.post(b"action=balance")
    assert refused.value.phase == "connect"
    assert server.ledger.calls["balance"] == 1
