"""Every panel request ends by its deadline (connect to last byte), however slowly the panel answers.

The panel here sends its reply one byte a second, or a body that never ends; the per-read
timeout never fires on either. The bounds are generous: the point is "seconds, not minutes".
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from sheetorders.errors import AmbiguousOrder, PanelUnavailable
from sheetorders.panel import DEFAULT_DEADLINE, PanelClient, RetryPolicy, Timeouts
from sheetorders.testing.clients import SECRET_KEY as KEY
from sheetorders.testing.clients import Sleeps, add_order
from sheetorders.testing.panel_server import PanelServer

DEADLINE = 1.0
BOUND = 10.0  # the trickled replies below would take 15 s or more; the endless ones forever


@pytest.fixture
def server() -> Iterator[PanelServer]:
    with PanelServer(key=KEY, speed=0) as panel:
        panel.faults.trickle_interval = 1.0
        yield panel


def new_client(server: PanelServer, sleeps: Sleeps, **kwargs: object) -> PanelClient:
    return PanelClient(server.url, KEY, name="test", sleep=sleeps, deadline=DEADLINE, **kwargs)  # type: ignore[arg-type]


def test_a_trickled_add_reply_past_the_deadline_is_ambiguous(server: PanelServer) -> None:
    sleeps = Sleeps()
    server.faults.queue("trickle", actions={"add"})
    started = time.monotonic()
    with new_client(server, sleeps) as client, pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert time.monotonic() - started < BOUND
    assert "deadline" in str(ambiguous.value)
    assert len(server.ledger.orders) == 1  # the panel did place it
    assert server.ledger.calls["add"] == 1 and sleeps.waits == []


@pytest.mark.parametrize("kind", ["trickle", "endless"])
def test_refill_and_cancel_past_the_deadline_are_ambiguous(server: PanelServer, kind: str) -> None:
    sleeps = Sleeps()
    with new_client(server, sleeps) as client:
        oid = add_order(client)
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
        assert add_order(client) == "10001"


def test_the_deadline_is_at_least_the_configured_timeouts(server: PanelServer) -> None:
    assert DEFAULT_DEADLINE == 60.0
    with PanelClient(server.url, KEY) as client:
        assert client.deadline == DEFAULT_DEADLINE
    with PanelClient(server.url, KEY, timeout=Timeouts(connect=10.0, read=90.0)) as client:
        assert client.deadline == 100.0  # a longer read timeout than the default deadline wins
    with PanelClient(server.url, KEY, deadline=2.5) as client:
        assert client.deadline == 2.5
    for bad in (0, -1.0):
        with pytest.raises(ValueError):
            PanelClient(server.url, KEY, deadline=bad)


class Tarpit:
    """A server on 127.0.0.1 that reads each request and answers `reply` one byte every
    `interval` seconds, or never when `reply` is None. `requests` holds what it was sent."""

    def __init__(self, reply: bytes | None, interval: float = 1.0) -> None:
        self.reply = reply
        self.interval = interval
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(BOUND)
            self.requests.append(read_request(conn))
            if self.reply is None:
                conn.recv(1)  # until the client gives up
                return
            for index in range(len(self.reply)):
                if self._stopped.wait(self.interval):
                    return
                conn.sendall(self.reply[index : index + 1])

    def __enter__(self) -> Tarpit:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread waiting in accept()
        self._listener.close()


def read_request(conn: socket.socket) -> bytes:
    """One request's head and body (as long as its Content-Length says)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


REPLY = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"order": 10001}'


def test_a_reply_whose_status_line_and_headers_trickle_in_is_cut_at_the_deadline() -> None:
    sleeps = Sleeps()
    with Tarpit(REPLY) as tarpit:
        started = time.monotonic()
        with (
            PanelClient(f"http://{tarpit.address}/api/v2", KEY, sleep=sleeps, deadline=DEADLINE) as client,
            pytest.raises(AmbiguousOrder, match="deadline"),
        ):
            add_order(client)
        assert time.monotonic() - started < BOUND
    assert len(tarpit.requests) == 1 and sleeps.waits == []


def proxy_env(monkeypatch: pytest.MonkeyPatch, scheme: str, address: str) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", f"http://{address}")
    monkeypatch.setenv("NO_PROXY", "example.org")


def test_a_request_through_a_forwarding_proxy_keeps_the_key_in_the_body_and_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Tarpit(REPLY) as proxy:
        proxy_env(monkeypatch, "http", proxy.address)
        started = time.monotonic()
        with (
            PanelClient(
                "http://panel.invalid/api/v2", KEY, deadline=DEADLINE, retry=RetryPolicy(attempts=1)
            ) as client,
            pytest.raises(AmbiguousOrder, match="deadline"),
        ):
            add_order(client)
        assert time.monotonic() - started < BOUND
    (request,) = proxy.requests
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST http://panel.invalid/api/v2 HTTP/1.1\r\n")
    assert KEY.encode() not in head and b"key=" + KEY.encode() in body


def test_a_tunnel_through_a_proxy_that_never_opens_is_not_sent_and_ends_by_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Tarpit(None) as proxy:
        proxy_env(monkeypatch, "https", proxy.address)
        started = time.monotonic()
        with (
            PanelClient(
                "https://panel.invalid/api/v2", KEY, deadline=DEADLINE, retry=RetryPolicy(attempts=1)
            ) as client,
            pytest.raises(PanelUnavailable, match="nothing was sent") as down,
        ):
            add_order(client)
        assert time.monotonic() - started < BOUND
    assert not isinstance(down.value, AmbiguousOrder)
    (request,) = proxy.requests
    assert request.startswith(b"CONNECT panel.invalid:443 ") and KEY.encode() not in request


def test_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch, server: PanelServer) -> None:
    with Tarpit(None) as proxy:
        proxy_env(monkeypatch, "http", proxy.address)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with PanelClient(server.url, KEY, deadline=DEADLINE) as client:
            assert client.balance().balance == Decimal(1000)
    assert proxy.requests == []


def test_a_tls_handshake_that_never_ends_is_cut_at_the_deadline_and_not_sent() -> None:
    with Tarpit(None) as tarpit:  # takes the connection, never answers the TLS hello
        started = time.monotonic()
        with (
            PanelClient(
                f"https://{tarpit.address}/api/v2",
                KEY,
                deadline=DEADLINE,
                timeout=Timeouts(connect=30.0, read=30.0),
                retry=RetryPolicy(attempts=1),
            ) as client,
            pytest.raises(PanelUnavailable, match="nothing was sent") as down,
        ):
            add_order(client)
        elapsed = time.monotonic() - started
    assert not isinstance(down.value, AmbiguousOrder)
    assert DEADLINE - 0.05 <= elapsed < DEADLINE + 0.4  # the deadline, not the 30 s connect timeout
