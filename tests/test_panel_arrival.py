"""Replies that prove a write reached the panel are never taken for "not sent".

An order ID in any reply is an order: such a reply is a success or AmbiguousOrder, never a
refusal. Anything else the panel sends back after the request went out (a redirect, a 4xx page,
a 4xx with JSON that is not a plain refusal) is AmbiguousOrder for add, refill and cancel.
"""

from __future__ import annotations

from typing import Any

import pytest

from sheetorders.errors import AmbiguousOrder, PanelRefused, PanelUnavailable, RateLimited
from sheetorders.panel import PanelClient
from sheetorders.testing.clients import SECRET_KEY as KEY
from sheetorders.testing.clients import Sleeps, add_order
from sheetorders.testing.panel_server import PanelServer


def assert_ambiguous_once(server: PanelServer, sleeps: Sleeps, error: AmbiguousOrder, action: str) -> None:
    assert "may have reached the panel" in str(error)
    assert server.ledger.calls[action] == 1 and sleeps.waits == []
    assert KEY not in str(error)


# --- an order ID with an error -------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"error": "Your balance is low"},
        {"error": "Not enough funds on balance"},
        {"error": "neworder.error.link_duplicate"},
        {"status": "error", "message": "Incorrect link"},
    ],
)
def test_an_order_id_together_with_an_error_is_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, extra: dict[str, Any]
) -> None:
    server.faults.queue_processed(extra=extra, actions={"add"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert list(server.ledger.orders) == ["10001"]  # the panel did place it
    assert "10001" in str(ambiguous.value)  # the ID is in the message, for the user to check
    assert_ambiguous_once(server, sleeps, ambiguous.value, "add")


def test_an_order_id_with_an_error_in_a_4xx_is_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    server.faults.queue_processed(status=400, extra={"error": "Not enough funds on balance"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert "10001" in str(ambiguous.value)
    assert_ambiguous_once(server, sleeps, ambiguous.value, "add")


def test_a_429_carrying_an_order_id_is_ambiguous_and_not_retried(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    server.faults.queue_processed(status=429, headers={"Retry-After": "1"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert not isinstance(ambiguous.value, RateLimited)
    assert len(server.ledger.orders) == 1
    assert_ambiguous_once(server, sleeps, ambiguous.value, "add")


# --- answers after the request went out ----------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_a_4xx_after_the_order_was_created_is_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, status: int
) -> None:
    server.faults.queue_processed(status=status, actions={"add"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert len(server.ledger.orders) == 1
    assert_ambiguous_once(server, sleeps, ambiguous.value, "add")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, "<html><body>Conflict</body></html>"),
        (403, "<html>Forbidden</html>"),
        (400, ""),
        (409, '{"ok": false}'),
        (400, "[]"),
    ],
)
def test_a_4xx_that_is_not_a_plain_json_refusal_is_ambiguous_for_add(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, status: int, body: str
) -> None:
    server.faults.queue_processed(status=status, body=body or b"", actions={"add"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert not isinstance(ambiguous.value, PanelUnavailable)
    assert_ambiguous_once(server, sleeps, ambiguous.value, "add")


def test_a_4xx_with_a_plain_json_refusal_is_still_a_refusal(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply({"error": "Incorrect service ID"}, status=409)
    with pytest.raises(PanelRefused, match="Incorrect service ID"):
        add_order(client)
    server.faults.queue_reply({"error": "Incorrect link", "order": None}, status=400)
    with pytest.raises(PanelRefused, match="Incorrect link"):
        add_order(client)


@pytest.mark.parametrize("processed", [False, True])
def test_a_redirect_answering_add_is_ambiguous_and_not_followed(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, processed: bool
) -> None:
    if processed:
        server.faults.queue_processed(status=302, headers={"Location": server.url})
    else:
        server.faults.queue("redirect")
    with pytest.raises(AmbiguousOrder, match="redirect") as ambiguous:
        add_order(client)
    assert len(server.ledger.orders) == int(processed)
    assert_ambiguous_once(server, sleeps, ambiguous.value, "add")


def test_refill_and_cancel_answered_by_a_page_or_a_redirect_are_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    oid = add_order(client)
    server.advance(3600)
    server.faults.queue_processed(status=403, body="<html>Forbidden</html>", actions={"refill"})
    with pytest.raises(AmbiguousOrder) as refill:
        client.refill(oid)
    assert len(server.ledger.refills) == 1
    assert_ambiguous_once(server, sleeps, refill.value, "refill")
    server.faults.queue("redirect", actions={"cancel"})
    with pytest.raises(AmbiguousOrder):
        client.cancel([oid])
    server.faults.queue_processed(extra={"error": "Refill is already in progress"}, actions={"refill"})
    other = add_order(client, "https://x.com/b")
    server.advance(3600)
    with pytest.raises(AmbiguousOrder):
        client.refill(other)  # a refill ID together with an error
    assert len(server.ledger.refills) == 2


def test_reads_answered_by_a_4xx_page_or_a_redirect_are_still_unavailable(
    server: PanelServer, client: PanelClient
) -> None:
    server.faults.queue_reply("<html>Forbidden</html>", status=403, count=5)
    with pytest.raises(PanelUnavailable, match="HTTP 403") as blocked:
        client.balance()
    assert not isinstance(blocked.value, AmbiguousOrder)
    server.faults.queue("redirect")
    with pytest.raises(PanelUnavailable, match="redirected") as redirected:
        client.balance()
    assert not isinstance(redirected.value, AmbiguousOrder)


# --- order IDs must look like order IDs ----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0, -7, "0", "-7", "abc", "<b>10001</b>", "", "   ", 1.5, "1.5", True, None, [10001], {"id": 10001}],
)
def test_an_order_id_that_does_not_look_like_one_is_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, value: Any
) -> None:
    server.faults.queue_reply({"order": value, "echo": KEY}, actions={"add"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    message = str(ambiguous.value)
    assert "(got: " in message and '"order"' in message  # the raw reply, for the user to check
    assert_ambiguous_once(server, sleeps, ambiguous.value, "add")


@pytest.mark.parametrize(("value", "expected"), [(10001, "10001"), ("10002", "10002"), (" 77 ", "77")])
def test_order_ids_that_look_like_ids_are_returned(
    server: PanelServer, client: PanelClient, value: Any, expected: str
) -> None:
    server.faults.queue_reply({"order": value}, actions={"add"})
    assert add_order(client) == expected
