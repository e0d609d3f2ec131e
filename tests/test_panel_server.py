"""The local panel server, spoken to over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import NewConnectionError, ProtocolError

from sheetorders.testing.panel_server import (
    SERVICE_TYPES,
    Faults,
    PanelServer,
    default_catalog,
)


class Reply:
    """A whole reply: status, headers and body."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.status_code = response.status
        self.headers = response.headers
        self.content = response.data

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


class Http:
    """A plain keep-alive HTTP client (no retries, no redirects), as a test's own."""

    def __init__(self, connections: int = 10) -> None:
        self._pool = urllib3.PoolManager(maxsize=connections, block=True, retries=False, timeout=5.0)

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.clear()

    def post(self, url: str, data: dict[str, str]) -> Reply:
        return Reply(self._pool.request("POST", url, fields=data, encode_multipart=False, redirect=False))

    def get(self, url: str) -> Reply:
        return Reply(self._pool.request("GET", url, redirect=False))

    def stream(self, url: str, data: dict[str, str]) -> urllib3.BaseHTTPResponse:
        return self._pool.request("POST", url, fields=data, encode_multipart=False, preload_content=False)


Call = Callable[..., Reply]


def new_http(connections: int = 10) -> Http:
    return Http(connections)


@pytest.fixture
def server() -> Iterator[PanelServer]:
    with PanelServer(speed=0) as panel:  # a frozen clock: tests move it with advance()
        yield panel


def make_call(panel: PanelServer, http: Http) -> Call:
    def call(**form: Any) -> Reply:
        form.setdefault("key", panel.key)
        return http.post(panel.url, data={k: str(v) for k, v in form.items()})

    return call


@pytest.fixture
def api(server: PanelServer) -> Iterator[Call]:
    with new_http() as http:
        yield make_call(server, http)


def by_type(stype: str) -> dict[str, Any]:
    return next(s for s in default_catalog() if s["type"] == stype)


def valid_fields(service: dict[str, Any]) -> dict[str, str]:
    """Fields a real panel accepts for this service, at its minimum quantity."""
    stype, lo, sid = service["type"], int(service["min"]), service["service"]
    link = {"link": f"https://example.com/p/{sid}"}
    lines = "\n".join(f"item{i}" for i in range(lo))
    by = {
        "Default": {**link, "quantity": lo},
        "Package": link,
        "SEO": {**link, "quantity": lo, "keywords": "buy shoes\ncheap shoes"},
        "Custom Comments": {**link, "comments": lines},
        "Custom Comments Package": {**link, "comments": "Nice!\nGreat video"},
        "Mentions": {**link, "quantity": lo, "usernames": "alice\nbob"},
        "Mentions with Hashtags": {**link, "quantity": lo, "usernames": "alice\nbob", "hashtags": "#a\n#b"},
        "Mentions Custom List": {**link, "usernames": lines},
        "Mentions Hashtag": {**link, "quantity": lo, "hashtag": "#sale"},
        "Mentions User Followers": {**link, "quantity": lo, "username": "alice"},
        "Mentions Media Likers": {**link, "quantity": lo, "media": "https://instagram.com/p/xyz"},
        "Comment Likes": {**link, "quantity": lo, "username": "alice"},
        "Comment Replies": {**link, "username": "alice", "comments": lines},
        "Poll": {**link, "quantity": lo, "answer_number": 2},
        "Invites from Groups": {**link, "quantity": lo, "groups": "group1\ngroup2"},
        "Subscriptions": {"username": "alice", "min": lo, "max": lo * 2, "delay": 0},
        "Web Traffic": {**link, "quantity": lo, "country": "US", "device": 1, "type_of_traffic": 1},
    }
    return {k: str(v) for k, v in by[stype].items()}


def expected_charge(service: dict[str, Any]) -> Decimal:
    rate, lo = Decimal(service["rate"]), int(service["min"])
    if service["type"] in ("Package", "Custom Comments Package"):
        return rate
    if service["type"] == "Subscriptions":
        return rate * lo * 2 / 1000
    return rate * lo / 1000


# --- catalog and services ---------------------------------------------------------


def test_default_catalog_has_every_type_and_mixed_id_kinds() -> None:
    catalog = default_catalog()
    assert {s["type"] for s in catalog} == set(SERVICE_TYPES)
    assert any(isinstance(s["service"], int) for s in catalog)
    assert any(isinstance(s["service"], str) for s in catalog)
    defaults = [s for s in catalog if s["type"] == "Default"]
    assert any(s.get("dripfeed") is True for s in defaults)
    assert any(s.get("dripfeed") is False and s["refill"] and s["cancel"] for s in defaults)
    assert any("dripfeed" not in s for s in catalog)
    catalog[0]["name"] = "changed"
    assert default_catalog()[0]["name"] != "changed"  # a fresh copy each call


def test_services_standard_numbers_as_strings(api: Call) -> None:
    reply = api(action="services").json()
    assert len(reply) == len(default_catalog())
    for item in reply:
        assert {"service", "name", "type", "category", "rate", "min", "max", "refill", "cancel"} <= set(item)
        assert isinstance(item["rate"], str) and isinstance(item["min"], str) and isinstance(item["max"], str)
    assert {type(item["service"]) for item in reply} == {int, str}


def test_services_alt_profile_numbers_as_numbers() -> None:
    with PanelServer(profile="alt") as panel, new_http() as http:
        reply = make_call(panel, http)(action="services").json()
    assert all(isinstance(item["rate"], (int, float)) for item in reply)
    assert all(isinstance(item["min"], int) for item in reply)
    assert all("dripfeed" not in item for item in reply)


def test_balance_and_currency(api: Call) -> None:
    assert api(action="balance").json() == {"balance": "1000.00", "currency": "USD"}
    with PanelServer(balance="12.3456789", currency="EUR") as panel, new_http() as http:
        assert make_call(panel, http)(action="balance").json() == {"balance": "12.3456789", "currency": "EUR"}


# --- transport ----------------------------------------------------------------------


def test_wrong_key_unknown_action_get_and_wrong_path(server: PanelServer, api: Call) -> None:
    assert api(action="balance", key="nope").json() == {"error": "Invalid API key"}
    assert api(action="launch").json() == {"error": "Incorrect request"}
    assert api().json() == {"error": "Incorrect request"}
    with new_http() as http:
        get = http.get(server.url)
        wrong = http.post(
            server.url.replace("/api/v2", "/api/v1"), data={"key": server.key, "action": "balance"}
        )
    assert get.status_code == 405 and get.json() == {"error": "Method not allowed"}
    assert wrong.status_code == 404
    assert server.ledger.calls["balance"] == 2 and server.ledger.calls["launch"] == 1


def test_keep_alive_reuses_one_connection(server: PanelServer) -> None:
    with new_http(connections=1) as http:
        call = make_call(server, http)
        for _ in range(20):
            assert call(action="balance").status_code == 200
    assert server.ledger.connections == 1
    assert server.ledger.calls["balance"] == 20


def test_stop_closes_kept_alive_connections_quickly() -> None:
    panel = PanelServer().start()
    url = panel.url
    with new_http() as http:
        assert make_call(panel, http)(action="balance").status_code == 200
        started = time.monotonic()
        panel.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises(NewConnectionError):
            http.post(url, data={"key": panel.key, "action": "balance"})


def test_alt_profile_error_dialect() -> None:
    with PanelServer(profile="alt") as panel, new_http() as http:
        call = make_call(panel, http)
        assert call(action="balance", key="x").json() == {"status": "error", "message": "Invalid API key"}
        reply = call(action="add", service="2", link="https://x.com/a", quantity="100").json()
        assert reply == {"order": "10001"}  # IDs as strings in this dialect
        assert call(action="status", orders="10001,42").json()["42"] == "Incorrect order ID"


def test_errors_with_4xx_status() -> None:
    with PanelServer(error_http_status=400) as panel, new_http() as http:
        reply = make_call(panel, http)(action="add", service="999", link="https://x.com", quantity="1")
    assert reply.status_code == 400 and reply.json() == {"error": "Incorrect service ID"}


# --- add ----------------------------------------------------------------------------


@pytest.mark.parametrize("service", default_catalog(), ids=lambda s: s["type"])
def test_add_accepts_every_type_and_charges(server: PanelServer, api: Call, service: dict[str, Any]) -> None:
    reply = api(action="add", service=service["service"], **valid_fields(service))
    assert reply.status_code == 200
    order_id = reply.json()["order"]
    assert order_id == 10001
    order = server.order(order_id)
    charge = expected_charge(service)
    assert order.charge == charge
    assert server.balance == Decimal(1000) - charge
    assert order.fields["service"] == str(service["service"])


@pytest.mark.parametrize(
    ("service", "fields", "error"),
    [
        ("999", {"link": "https://x.com/a", "quantity": "100"}, "Incorrect service ID"),
        ("2", {"link": "https://x.com/a"}, "Incorrect request"),
        ("2", {"quantity": "100"}, "Incorrect request"),
        ("2", {"link": "https://x.com/a", "quantity": "lots"}, "Incorrect request"),
        ("2", {"link": "https://x.com/a", "quantity": "10"}, "Quantity less than minimal 50"),
        ("2", {"link": "https://x.com/a", "quantity": "100001"}, "Quantity more than maximal 100000"),
        ("2", {"link": "x.com/a", "quantity": "100"}, "Incorrect link"),
        ("2", {"link": "ftp://x.com/a", "quantity": "100"}, "Incorrect link"),
        ("5", {"link": "https://x.com/a", "quantity": "100"}, "Incorrect request"),  # SEO without keywords
        ("6", {"link": "https://x.com/a", "comments": "a\nb"}, "Quantity less than minimal 5"),
        ("18", {"username": "al", "min": "10", "max": "100", "delay": "0"}, "Quantity less than minimal 50"),
        (
            "18",
            {"username": "al", "min": "100", "max": "99999", "delay": "0"},
            "Quantity more than maximal 10000",
        ),
        (
            "2",
            {"link": "https://x.com/a", "quantity": "100", "runs": "2", "interval": "5"},
            "Incorrect request",
        ),
        (
            "1",
            {"link": "https://x.com/a", "quantity": "100", "runs": "0", "interval": "5"},
            "Incorrect request",
        ),
        ("1", {"link": "https://x.com/a", "quantity": "100", "runs": "2"}, "Incorrect request"),
    ],
)
def test_add_validation_errors(
    server: PanelServer, api: Call, service: str, fields: dict[str, str], error: str
) -> None:
    assert api(action="add", service=service, **fields).json() == {"error": error}
    assert server.ledger.orders == {}
    assert server.balance == Decimal(1000)


def test_add_quantity_from_lines_and_dripfeed_charge(server: PanelServer, api: Call) -> None:
    comments = "\n".join(f"comment {i}" for i in range(7)) + "\n\n"
    oid = api(action="add", service="6", link="https://x.com/a", comments=comments).json()["order"]
    assert server.order(oid).quantity == 7
    assert server.order(oid).charge == Decimal("12.00") * 7 / 1000
    drip = api(action="add", service="1", link="https://x.com/b", quantity="100", runs="5", interval="10")
    order = server.order(drip.json()["order"])
    assert (order.runs, order.interval, order.quantity) == (5, 10, 100)
    assert order.charge == Decimal("0.90") * 100 * 5 / 1000


def test_add_not_enough_funds() -> None:
    with PanelServer(balance="0.20") as panel, new_http() as http:
        call = make_call(panel, http)
        reply = call(action="add", service="2", link="https://x.com/a", quantity="1000")
        assert reply.json() == {"error": "Not enough funds on balance"}
        assert panel.balance == Decimal("0.20")
        assert call(action="add", service="2", link="https://x.com/a", quantity="50").json() == {
            "order": 10001
        }


def test_add_one_active_order_per_link_and_service(server: PanelServer, api: Call) -> None:
    first = {"service": "2", "link": "https://x.com/a", "quantity": "100"}
    assert api(action="add", **first).json() == {"order": 10001}
    assert api(action="add", **first).json() == {
        "error": "You have active order with this link. Please wait until order being completed."
    }
    # Another service or another link is fine.
    assert api(action="add", service="3", link="https://x.com/a", quantity="100").json() == {"order": 10002}
    assert api(action="add", service="2", link="https://x.com/b", quantity="100").json() == {"order": 10003}
    server.advance(3600)
    assert api(action="add", **first).json() == {"order": 10004}


# --- status -------------------------------------------------------------------------


def test_status_progression_and_partial_refund(server: PanelServer, api: Call) -> None:
    ids = [
        api(action="add", service="2", link=f"https://x.com/{i}", quantity="1000").json()["order"]
        for i in range(5)
    ]
    first = api(action="status", order=ids[0]).json()
    assert first == {
        "charge": "2.40",
        "start_count": "0",
        "status": "Pending",
        "remains": "1000",
        "currency": "USD",
    }
    server.advance(10)
    running = api(action="status", order=ids[0]).json()
    assert running["status"] == "In progress"
    assert int(running["start_count"]) > 0 and 0 < int(running["remains"]) < 1000
    server.advance(3600)
    replies = api(action="status", orders=",".join(map(str, ids))).json()
    assert [replies[str(i)]["status"] for i in ids] == ["Completed"] * 4 + ["Partial"]
    partial = replies[str(ids[4])]
    assert int(partial["remains"]) > 0
    assert Decimal(partial["charge"]) < Decimal("2.40")
    refund = Decimal("2.40") - Decimal(partial["charge"])
    assert server.balance == Decimal(1000) - 5 * Decimal("2.40") + refund
    assert all(isinstance(v, str) for v in partial.values())


def test_status_seed_moves_the_partial_share() -> None:
    with PanelServer(speed=0, seed=4) as panel, new_http() as http:
        call = make_call(panel, http)
        oid = call(action="add", service="2", link="https://x.com/a", quantity="100").json()["order"]
        panel.advance(3600)
        assert call(action="status", order=oid).json()["status"] == "Partial"


def test_simulated_clock_runs_with_speed() -> None:
    with PanelServer(speed=1000) as panel, new_http() as http:
        call = make_call(panel, http)
        oid = call(action="add", service="2", link="https://x.com/a", quantity="100").json()["order"]
        time.sleep(0.1)  # 100 simulated seconds
        assert call(action="status", order=oid).json()["status"] == "Completed"


def test_status_errors(api: Call) -> None:
    assert api(action="status", order="424242").json() == {"error": "Incorrect order ID"}
    assert api(action="status", orders="1,2").json() == {
        "1": {"error": "Incorrect order ID"},
        "2": {"error": "Incorrect order ID"},
    }
    too_many = ",".join(str(i) for i in range(101))
    assert api(action="status", orders=too_many).json() == {"error": "Incorrect request"}
    assert api(action="status").json() == {"error": "Incorrect request"}


# --- refill ---------------------------------------------------------------------------


def test_refill_rules_and_progress(server: PanelServer, api: Call) -> None:
    refillable = api(action="add", service="2", link="https://x.com/a", quantity="100").json()["order"]
    no_refill = api(action="add", service="1", link="https://x.com/a", quantity="100").json()["order"]
    assert api(action="refill", order=refillable).json() == {"error": "Order is not completed"}
    server.advance(3600)
    assert api(action="refill", order=no_refill).json() == {"error": "Refill not available for this service"}
    assert api(action="refill", order="1").json() == {"error": "Incorrect order ID"}
    assert api(action="refill", order=refillable).json() == {"refill": "501"}
    assert api(action="refill", order=refillable).json() == {
        "error": "Refill is already in progress for this order"
    }
    assert api(action="refill_status", refill="501").json() == {"status": "Pending"}
    server.advance(10)
    assert api(action="refill_status", refill="501").json() == {"status": "In progress"}
    server.advance(3600)
    assert api(action="refill_status", refill="501").json() == {"status": "Completed"}
    assert api(action="refill_status", refill="9").json() == {"error": "Refill not found"}
    assert server.ledger.refills["501"].order_id == str(refillable)


def test_refill_batches_both_dialects() -> None:
    for profile, item_error in (("standard", {"error": "Incorrect order ID"}), ("alt", "Incorrect order ID")):
        with PanelServer(speed=0, profile=profile) as panel, new_http() as http:
            call = make_call(panel, http)
            oid = call(action="add", service="2", link="https://x.com/a", quantity="100").json()["order"]
            panel.advance(3600)
            reply = call(action="refill", orders=f"{oid},77").json()
            assert reply[1] == {"order": 77 if profile == "standard" else "77", "refill": item_error}
            assert str(reply[0]["refill"]) == "501"
            statuses = call(action="refill_status", refills="501,9").json()
            assert statuses[0]["status"] == "Pending"
            assert statuses[1]["status"] == (
                {"error": "Refill not found"} if profile == "standard" else "Refill not found"
            )


# --- cancel -----------------------------------------------------------------------------


def test_cancel(server: PanelServer, api: Call) -> None:
    done = api(action="add", service="20", link="https://x.com/a", quantity="1000").json()["order"]
    server.advance(3600)
    cancellable = api(action="add", service="2", link="https://x.com/a", quantity="1000").json()["order"]
    not_cancellable = api(action="add", service="1", link="https://x.com/a", quantity="1000").json()["order"]
    server.advance(10)
    running = api(action="add", service="2", link="https://x.com/b", quantity="100").json()["order"]
    assert server.order(cancellable).status == "In progress"
    balance = server.balance
    reply = api(action="cancel", orders=f"{cancellable},{not_cancellable},{done},{running},5").json()
    assert reply == [
        {"order": cancellable, "cancel": 1},
        {"order": not_cancellable, "cancel": {"error": "Cancel not available for this service"}},
        {"order": done, "cancel": {"error": "Order can not be canceled: it is completed"}},
        {"order": running, "cancel": 1},
        {"order": 5, "cancel": {"error": "Incorrect order ID"}},
    ]
    assert server.order(cancellable).status == "Canceled"
    assert server.balance == balance + Decimal("2.40") + Decimal("0.24")
    assert api(action="status", order=cancellable).json()["status"] == "Canceled"
    assert api(action="cancel", orders=str(cancellable)).json() == [
        {"order": cancellable, "cancel": {"error": "Order can not be canceled: it is canceled"}}
    ]
    assert api(action="cancel", order=cancellable).json() == {"error": "Incorrect request"}


# --- faults -----------------------------------------------------------------------------


def test_queued_faults_answer_as_told_and_count(server: PanelServer, api: Call) -> None:
    faults = server.faults
    faults.retry_after = 7
    faults.queue("5xx")
    faults.queue("html")
    faults.queue("429")
    faults.queue("empty")
    faults.queue("redirect")
    assert faults.pending == 5
    bad_gateway = api(action="balance")
    assert bad_gateway.status_code == 502 and "Bad Gateway" in bad_gateway.text
    html = api(action="balance")
    assert html.status_code == 200 and html.text.startswith("<!DOCTYPE html>")
    limited = api(action="balance")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    empty = api(action="balance")
    assert empty.status_code == 200 and empty.content == b""
    redirect = api(action="balance")
    assert redirect.status_code == 307 and redirect.headers["Location"] == server.url
    assert api(action="balance").json()["balance"] == "1000.00"
    assert faults.pending == 0
    assert server.ledger.calls["balance"] == 6
    server.reset_calls()
    assert server.ledger.calls == {}


def test_queued_fault_aimed_at_an_action(server: PanelServer, api: Call) -> None:
    server.faults.queue("ok", actions={"add"})
    server.faults.queue("5xx", count=2, actions={"add"})
    assert api(action="balance").status_code == 200
    assert api(action="add", service="2", link="https://x.com/a", quantity="100").status_code == 200
    assert api(action="add", service="2", link="https://x.com/b", quantity="100").status_code == 502
    assert api(action="balance").status_code == 200
    assert api(action="add", service="2", link="https://x.com/b", quantity="100").status_code == 502
    assert api(action="add", service="2", link="https://x.com/b", quantity="100").json() == {"order": 10002}
    assert len(server.ledger.orders) == 2  # faulted requests were not processed


def test_drop_after_create_creates_the_order_then_closes(server: PanelServer, api: Call) -> None:
    server.faults.queue("drop")
    with pytest.raises(ProtocolError):
        api(action="add", service="2", link="https://x.com/a", quantity="100")
    assert list(server.ledger.orders) == ["10001"]
    assert server.balance == Decimal(1000) - Decimal("0.24")
    assert server.ledger.calls["add"] == 1


def test_probabilistic_faults_and_action_filter(server: PanelServer, api: Call) -> None:
    server.faults.error_5xx = 1.0
    server.faults.actions = {"status"}
    assert api(action="balance").status_code == 200
    assert api(action="status", order="1").status_code == 502
    server.faults.clear()
    server.faults.drop_after_create = 1.0  # only for add
    assert api(action="balance").status_code == 200
    with pytest.raises(ProtocolError):
        api(action="add", service="2", link="https://x.com/a", quantity="100")
    server.faults.drop_after_create = 0.0
    server.faults.empty_body = 0.5
    bodies = [api(action="balance").content for _ in range(40)]
    assert 5 < bodies.count(b"") < 35


def test_queue_reply_and_html_body(server: PanelServer, api: Call) -> None:
    server.faults.queue_reply({"error": "neworder.error.link_duplicate"}, actions={"add"})
    server.faults.queue_reply("<html>down</html>", status=503, headers={"X-Test": "1"})
    assert api(action="add", service="2", link="https://x.com/a", quantity="100").json() == {
        "error": "neworder.error.link_duplicate"
    }
    down = api(action="balance")
    assert (down.status_code, down.text, down.headers["X-Test"]) == (503, "<html>down</html>", "1")
    assert server.ledger.orders == {}
    server.faults.html_body = "<html>custom</html>"
    server.faults.queue("html")
    assert api(action="balance").text == "<html>custom</html>"
    with pytest.raises(ValueError):
        server.faults.queue("meteor")


def test_queue_processed_places_the_order_then_answers_as_told(server: PanelServer, api: Call) -> None:
    server.faults.queue_processed(status=409, extra={"error": "Your balance is low"}, actions={"add"})
    server.faults.queue_processed(status=302, headers={"Location": server.url}, actions={"add"})
    server.faults.queue_processed(status=403, body="<html>Forbidden</html>", actions={"add"})
    conflict = api(action="add", service="2", link="https://x.com/a", quantity="100")
    assert conflict.status_code == 409
    assert conflict.json() == {"order": 10001, "error": "Your balance is low"}
    moved = api(action="add", service="2", link="https://x.com/b", quantity="100")
    assert moved.status_code == 302 and moved.headers["Location"] == server.url
    forbidden = api(action="add", service="2", link="https://x.com/c", quantity="100")
    assert (forbidden.status_code, forbidden.text) == (403, "<html>Forbidden</html>")
    assert list(server.ledger.orders) == ["10001", "10002", "10003"]  # every one was placed


def test_trickle_sends_the_reply_a_byte_at_a_time_after_processing(server: PanelServer, api: Call) -> None:
    server.faults.trickle_interval = 0.02
    server.faults.queue("trickle", actions={"add"})
    started = time.monotonic()
    reply = api(action="add", service="2", link="https://x.com/a", quantity="100")
    assert reply.json() == {"order": 10001} and list(server.ledger.orders) == ["10001"]
    assert time.monotonic() - started >= 0.02 * len(reply.content)


def test_endless_reply_never_ends_until_the_client_goes_away(server: PanelServer) -> None:
    server.faults.trickle_interval = 0.01
    server.faults.queue("endless")
    received = 0
    with new_http() as http:
        reply = http.stream(server.url, data={"key": server.key, "action": "balance"})
        assert reply.status == 200
        for chunk in reply.stream(1024):
            assert chunk.strip() == b""
            received += len(chunk)
            if received > 5000:
                break
        reply.close()
    assert received > 5000
    assert server.ledger.calls["balance"] == 1
    assert api_balance(server) == "1000.00"  # the server still answers


def api_balance(panel: PanelServer) -> str:
    with new_http() as http:
        return str(make_call(panel, http)(action="balance").json()["balance"])


def test_latency_requests_overlap(server: PanelServer) -> None:
    server.faults.latency = 0.2
    results: list[int] = []

    def one() -> None:
        with new_http() as http:
            results.append(make_call(server, http)(action="balance").status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert results == [200] * 4
    assert 0.2 <= elapsed < 0.8  # one after the other would take 4 × 0.2 s
    assert server.ledger.max_in_flight == 4


def test_faults_object_can_be_shared_and_passed_in() -> None:
    faults = Faults()
    with PanelServer(faults=faults) as panel, new_http() as http:
        faults.queue("empty")
        assert make_call(panel, http)(action="balance").content == b""
        assert panel.faults is faults


def test_command_line_entry_point() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sheetorders.testing.panel_server", "--port", "0", "--key", "cli-key"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        assert proc.stdout.readline().strip() == "key: cli-key"
        with new_http() as http:
            reply = http.post(url, data={"key": "cli-key", "action": "balance"})
        assert reply.json() == {"balance": "1000.00", "currency": "USD"}
    finally:
        proc.terminate()
        proc.wait(timeout=5)
