"""Every panel request ends by its deadline (connect to last byte), however slowly the panel answers.

The panel here sends its reply one byte a second, or a body that never ends; the per-read
timeout never fires on either. The bounds are generous: the point is "seconds, not minutes".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from sheetorders.errors import AmbiguousOrder, PanelUnavailable
from sheetorders.panel import DEFAULT_DEADLINE, PanelClient, RetryPolicy, _DeadlineBackend
from sheetorders.testing.panel_server import PanelServer

KEY = "sk-SECRET-9f8e7d6c5b4a3210"
DEADLINE = 1.0
BOUND = 10.0  # the trickled replies below would take 15 s or more; the endless ones forever


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def server() -> Iterator[PanelServer]:
    with PanelServer(key=KEY, speed=0) as panel:
        panel.faults.trickle_interval = 1.0
        yield panel


def new_client(server: PanelServer, sleeps: Sleeps, **kwargs: object) -> PanelClient:
    return PanelClient(server.url, KEY, name="test", sleep=sleeps, deadline=DEADLINE, **kwargs)  # type: ignore[arg-type]


def add(client: PanelClient, link: str = "https://x.com/a") -> str:
    return client.add("2", {"link": link, "quantity": 100})


def test_a_trickled_add_reply_past_the_deadline_is_ambiguous(server: PanelServer) -> None:
    sleeps = Sleeps()
    server.faults.queue("trickle", actions={"add"})
    started = time.monotonic()
    with new_client(server, sleeps) as client, pytest.raises(AmbiguousOrder) as ambiguous:
        add(client)
    assert time.monotonic() - started < BOUND
    assert "deadline" in str(ambiguous.value)
    assert len(server.ledger.orders) == 1  # the panel did place it
    assert server.ledger.calls["add"] == 1 and sleeps.waits == []


@pytest.mark.parametrize("kind", ["trickle", "endless"])
def test_refill_and_cancel_past_the_deadline_are_ambiguous(server: PanelServer, kind: str) -> None:
    sleeps = Sleeps()
    with new_client(server, sleeps) as client:
        oid = add(client)
        server.advance(3600)
        server.faults.queue(kind, actions={"refill", "cancel"}, count=2)
        started = time.monotonic()
        with pytest.raises(AmbiguousOrder, match="deadline"):
            client.refill(oid)
        with pytest.raises(AmbiguousOrder, match="deadline"):
            client.cancel([oid])
        assert time.monotonic() - started < BOUND
    assert server.ledger.calls["refill"] == 1 and server.ledger.calls["cancel"] == 1
    assert sleeps.waits == []


def test_a_services_reply_that_never_ends_is_unavailable_after_bounded_retries(server: PanelServer) -> None:
    sleeps = Sleeps()
    server.faults.queue("endless", count=5, actions={"services"})
    started = time.monotonic()
    with (
        new_client(server, sleeps, retry=RetryPolicy(attempts=3)) as client,
        pytest.raises(PanelUnavailable, match="deadline") as down,
    ):
        client.services()
    assert time.monotonic() - started < 3 * BOUND
    assert not isinstance(down.value, AmbiguousOrder)
    assert server.ledger.calls["services"] == 3 and len(sleeps.waits) == 2


def test_a_trickled_read_is_retried_and_then_answered(server: PanelServer) -> None:
    sleeps = Sleeps()
    server.faults.queue("trickle", actions={"balance"})
    started = time.monotonic()
    with new_client(server, sleeps) as client:
        assert client.balance().balance == Decimal(1000)
    assert time.monotonic() - started < BOUND
    assert server.ledger.calls["balance"] == 2 and len(sleeps.waits) == 1


def test_a_quick_reply_is_not_cut_by_the_deadline(server: PanelServer) -> None:
    server.faults.trickle_interval = 0.01  # about 0.15 s for the whole reply
    server.faults.queue("trickle", actions={"add"})
    with new_client(server, Sleeps()) as client:
        assert add(client) == "10001"


def test_the_deadline_is_at_least_the_configured_timeouts(server: PanelServer) -> None:
    assert DEFAULT_DEADLINE == 60.0
    with PanelClient(server.url, KEY) as client:
        assert client.deadline == DEFAULT_DEADLINE
    with PanelClient(server.url, KEY, timeout=httpx.Timeout(90.0, connect=10.0)) as client:
        assert client.deadline == 100.0  # a longer read timeout than the default deadline wins
    with PanelClient(server.url, KEY, deadline=2.5) as client:
        assert client.deadline == 2.5
    for bad in (0, -1.0):
        with pytest.raises(ValueError):
            PanelClient(server.url, KEY, deadline=bad)


def test_connections_through_a_proxy_are_bound_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "example.org")
    with PanelClient("https://panel.example/api/v2", KEY) as client:
        lane = client._http
        transports = [lane._transport, *(t for t in lane._mounts.values() if t is not None)]
        assert len(transports) >= 2  # the direct one and the proxy's
        assert all(type(t._pool._network_backend) is _DeadlineBackend for t in transports)  # type: ignore[attr-defined]
