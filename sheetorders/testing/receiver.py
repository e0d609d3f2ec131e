"""A local JSON webhook on 127.0.0.1 that records each POST, for testing notifications.

apprise's `json://127.0.0.1:PORT/path` posts `{"title": ..., "message": ..., "type": ...}` here:

    with WebhookReceiver() as receiver:
        notifier = Notifier(NotifyConfig(urls=(receiver.apprise_url(),)))
        ...
        assert receiver.wait_for(1)[0]["title"] == ...

`status` sets the HTTP status of the replies; `hold()` keeps every reply back until `release()`
(a receiver that accepts the connection and never answers).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from sheetorders.testing.servers import ClosingHTTPServer, ServedInBackground

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or None when it was not JSON
    raw: bytes


class WebhookReceiver(ServedInBackground):
    """Records every POST on 127.0.0.1 (a free port by default). Use as a context manager."""

    thread_name = "webhook receiver"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, status: int = 200) -> None:
        super().__init__()
        self.host = host
        self.status = status
        self._requested_port = port
        self._received: list[Received] = []
        self._changed = threading.Condition()
        self._open = threading.Event()
        self._open.set()

    def _make_server(self) -> ClosingHTTPServer:
        httpd = _HTTPServer((self.host, self._requested_port), _Handler)
        httpd.receiver = self
        return httpd

    def _before_stop(self) -> None:
        self.release()

    def apprise_url(self, path: str = "/notify") -> str:
        """The apprise URL that posts JSON here."""
        return f"json://{self.host}:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    @property
    def bodies(self) -> list[Any]:
        return [request.body for request in self.received]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """The bodies once at least `count` arrived (fewer if `timeout` seconds pass first)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._received) < count and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return [request.body for request in self._received]

    def clear(self) -> None:
        with self._changed:
            self._received.clear()

    def hold(self) -> None:
        """Keep every reply back (requests are still recorded) until `release()`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _record(self, request: Received) -> None:
        with self._changed:
            self._received.append(request)
            self._changed.notify_all()


class _HTTPServer(ClosingHTTPServer):
    receiver: WebhookReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        receiver = self.server.receiver
        receiver._record(Received(self.path, dict(self.headers.items()), body, raw))
        receiver._open.wait()
        reply = b'{"ok": true}'
        self.send_response(receiver.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean
