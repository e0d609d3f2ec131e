"""A real local SMM panel speaking API v2 over HTTP, for tests, benchmarks and `sheetorders demo`.

It validates `add` like a real panel (same error strings), keeps a ledger of orders, refills,
balance and calls per action, moves orders along on a simulated clock, and can inject faults
(5xx, HTML pages, 429, empty bodies, dropped connections, latency, replies that trickle or never
end, recorded replies of a CDN in front of a panel), either at random or
deterministically with `Faults.queue`.

Like a real panel, it gives order IDs from one sequence shared with its other customers
(`other_customers`: how many of their orders come between two of ours, on average) and
answers `status` only for the key's own orders (`Incorrect order ID` for the others), unless
it is told to leak them (`leaks_statuses`). `idempotency_field` makes `add` honour a client
key: the same key with the same fields gets the same answer and places nothing more.

Run it standalone with `python -m sheetorders.testing.panel_server --port 8000`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import json
import os
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sheetorders.testing.servers import ClosingHTTPServer, ServedInBackground

__all__ = [
    "FAULT_KINDS",
    "SERVICE_TYPES",
    "CannedReply",
    "Faults",
    "Ledger",
    "LedgerOrder",
    "LedgerRefill",
    "PanelServer",
    "ProcessedReply",
    "RecordedReply",
    "default_catalog",
]

API_PATH = "/api/v2"
FIRST_ORDER_ID = 10001
FIRST_REFILL_ID = 501
MAX_BATCH = 100

# Required `add` fields by service type, as in the API reference.
SERVICE_TYPES: dict[str, tuple[str, ...]] = {
    "Default": ("link", "quantity"),
    "Package": ("link",),
    "SEO": ("link", "quantity", "keywords"),
    "Custom Comments": ("link", "comments"),
    "Custom Comments Package": ("link", "comments"),
    "Mentions": ("link", "quantity", "usernames"),
    "Mentions with Hashtags": ("link", "quantity", "usernames", "hashtags"),
    "Mentions Custom List": ("link", "usernames"),
    "Mentions Hashtag": ("link", "quantity", "hashtag"),
    "Mentions User Followers": ("link", "quantity", "username"),
    "Mentions Media Likers": ("link", "quantity", "media"),
    "Comment Likes": ("link", "quantity", "username"),
    "Comment Replies": ("link", "username", "comments"),
    "Poll": ("link", "quantity", "answer_number"),
    "Invites from Groups": ("link", "quantity", "groups"),
    "Subscriptions": ("username", "min", "max", "delay"),
    "Web Traffic": ("link", "quantity", "country", "device", "type_of_traffic"),
}
PACKAGE_TYPES = frozenset({"Package", "Custom Comments Package"})
# Types whose quantity is the number of lines of a list field.
LINE_COUNT_TYPES = {
    "Custom Comments": "comments",
    "Mentions Custom List": "usernames",
    "Comment Replies": "comments",
}
DRIPFEED_TYPES = frozenset({"Default", "Web Traffic"})
FINAL_STATUSES = frozenset({"Completed", "Partial", "Canceled"})

# Simulated seconds an order stays Pending, then In progress (plus the drip-feed schedule).
PENDING_SECONDS = 5.0
RUN_SECONDS = 30.0
REFILL_PENDING_SECONDS = 5.0
REFILL_RUN_SECONDS = 30.0
PARTIAL_EVERY = 5  # every 5th order (shifted by the seed) ends Partial

ERR_KEY = "Invalid API key"
ERR_REQUEST = "Incorrect request"
ERR_SERVICE = "Incorrect service ID"
ERR_ORDER = "Incorrect order ID"
ERR_LINK = "Incorrect link"
ERR_FUNDS = "Not enough funds on balance"
ERR_ACTIVE = "You have active order with this link. Please wait until order being completed."
ERR_REFILL_NOT_FOUND = "Refill not found"
ERR_REFILL_SERVICE = "Refill not available for this service"
ERR_REFILL_NOT_COMPLETED = "Order is not completed"
ERR_REFILL_ACTIVE = "Refill is already in progress for this order"
ERR_CANCEL_SERVICE = "Cancel not available for this service"
ERR_KEY_REUSED = "This request ID was used for another order"

_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
_Q7 = Decimal("0.0000001")

DEFAULT_HTML = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><h1>Checking your browser before accessing the panel</h1>"
    "<p>This process is automatic. Your browser will redirect shortly.</p></body></html>"
)


def _catalog_entry(
    sid: int | str,
    name: str,
    stype: str,
    category: str,
    rate: str,
    lo: int,
    hi: int,
    *,
    refill: bool = False,
    cancel: bool = False,
    dripfeed: bool | None = False,
) -> dict[str, Any]:
    """One service as the `services` action returns it (None: no `dripfeed` field at all)."""
    item: dict[str, Any] = {
        "service": sid,
        "name": name,
        "type": stype,
        "category": category,
        "rate": rate,
        "min": str(lo),
        "max": str(hi),
        "refill": refill,
        "cancel": cancel,
    }
    if dripfeed is not None:
        item["dripfeed"] = dripfeed
    return item


def default_catalog() -> list[dict[str, Any]]:
    """One service or more of every type, as the `services` action returns them (numbers as strings)."""
    svc = _catalog_entry
    return [
        svc(1, "Instagram Likes | Real | Drip-feed", "Default", "Instagram Likes", "0.90", 10, 50000,
            dripfeed=True),
        svc("2", "Instagram Followers | 30 days refill", "Default", "Instagram Followers", "2.40", 50, 100000,
            refill=True, cancel=True),
        svc(3, "YouTube Views | High retention", "Default", "YouTube Views", "1.25", 100, 1000000,
            refill=True, dripfeed=None),
        svc("4", "Instagram Story Views | Package 1000", "Package", "Instagram Story Views", "1.50", 1, 1),
        svc(5, "Google Keyword Search Traffic", "SEO", "Website SEO", "3.20", 100, 10000),
        svc("6", "Instagram Custom Comments", "Custom Comments", "Instagram Comments", "12.00", 5, 1000,
            cancel=True),
        svc(7, "YouTube Custom Comments | Package 10", "Custom Comments Package", "YouTube Comments",
            "5.00", 1, 1),
        svc("8", "Instagram Mentions | Usernames", "Mentions", "Instagram Mentions", "4.50", 100, 50000),
        svc(9, "Instagram Mentions | With Hashtags", "Mentions with Hashtags", "Instagram Mentions", "5.10",
            100, 50000),
        svc("10", "Instagram Mentions | Custom List", "Mentions Custom List", "Instagram Mentions", "6.00",
            10, 5000),
        svc(11, "Instagram Mentions | Hashtag", "Mentions Hashtag", "Instagram Mentions", "4.80", 100, 50000),
        svc("12", "Instagram Mentions | User Followers", "Mentions User Followers", "Instagram Mentions",
            "5.40", 100, 50000),
        svc(13, "Instagram Mentions | Media Likers", "Mentions Media Likers", "Instagram Mentions", "5.40",
            100, 50000),
        svc("14", "Instagram Comment Likes", "Comment Likes", "Instagram Comments", "3.00", 20, 10000),
        svc(15, "Instagram Comment Replies", "Comment Replies", "Instagram Comments", "15.00", 1, 500),
        svc("16", "Twitter Poll Votes", "Poll", "Twitter Polls", "2.10", 100, 20000),
        svc(17, "Telegram Members | Invites from Groups", "Invites from Groups", "Telegram Members", "8.00",
            100, 10000),
        svc("18", "Instagram Auto Likes | Subscription", "Subscriptions", "Instagram Auto Likes", "0.95", 50,
            10000),
        svc(19, "Website Traffic | Worldwide", "Web Traffic", "Website Traffic", "0.35", 1000, 1000000,
            dripfeed=True),
        svc("20", "Twitter Views | Budget", "Default", "Twitter Views", "0.0123456", 1000, 10000000,
            cancel=True, dripfeed=None),
    ]  # fmt: skip


# --- faults -------------------------------------------------------------------

FAULT_KINDS = ("5xx", "html", "429", "drop", "late", "empty", "redirect", "trickle", "endless", "ok")
_KIND_ALIASES = {
    "error_5xx": "5xx",
    "500": "5xx",
    "502": "5xx",
    "rate_limit_429": "429",
    "rate_limit": "429",
    "drop_after_create": "drop",
    "create_after_drop": "late",
    "empty_body": "empty",
}


@dataclass(frozen=True)
class CannedReply:
    """A reply sent as is instead of the panel's answer (see `Faults.queue_reply`)."""

    body: Any
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ProcessedReply:
    """The panel processes the request, then answers with `status` (see `Faults.queue_processed`).

    The reply is the panel's own, with `extra` merged into it when both are objects, or `body`
    instead when that is given.
    """

    status: int = 200
    extra: tuple[tuple[str, Any], ...] = ()
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RecordedReply:
    """A reply replayed as it was recorded (see `Faults.queue_recorded`): status line, headers
    and body, whatever the request; `processed`: the panel handles the request first (a CDN
    that took it to the panel, then answered with its own page)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    processed: bool = False

    # Set by the server for the body it sends, or meaningless once replayed.
    HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

    @classmethod
    def parse(cls, raw: bytes | str, *, processed: bool = False) -> RecordedReply:
        """A reply as it comes over the wire: "HTTP/1.1 522 Reason", headers, a blank line, the
        body (lines may end with CRLF or LF)."""
        data = raw.encode() if isinstance(raw, str) else raw
        head, _, body = data.replace(b"\r\n", b"\n").partition(b"\n\n")
        status_line, *lines = head.decode("latin-1").split("\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise ValueError(f"not an HTTP status line: {status_line!r}")
        headers = tuple(
            (name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)
        )
        return cls(int(code), reason.strip(), headers, body, processed)


Fault = str | CannedReply | ProcessedReply | RecordedReply


@dataclass
class Faults:
    """Faults to inject; change the fields at any time, even while the server runs.

    Probabilities apply per request (only to `actions` when that is set); `drop_after_create`
    and `create_after_drop` apply to `add` only ("drop" and "late" below).

    Deterministic faults: `queue(kind, count)` makes the next `count` matching requests fail
    that way, whatever the probabilities. Kinds: "5xx" (a 502 HTML page, not processed), "html"
    (HTTP 200 HTML page, not processed), "429" (with Retry-After, not processed), "empty"
    (HTTP 200, empty body, not processed), "drop" (processed, then the connection is closed
    unanswered), "late" (the connection is closed unanswered, then the request is processed
    `late_delay` seconds later: a panel that goes on working on a request the client lost),
    "redirect" (a 307 to the API URL, not processed), "trickle" (processed, then the reply is
    sent one byte every `trickle_interval` seconds), "endless" (processed, then
    a reply whose body never ends: whitespace every `trickle_interval` / 10 seconds, until the
    client goes away) and "ok" (no fault: lets one request through, to aim the next queued
    fault at a later request). `queue_reply`
    sends a given body instead of the panel's answer; `queue_processed` processes the request
    and then answers with another status, extra fields or another body; `queue_recorded`
    replays a recorded reply (a CDN's page, say) as it was, headers included. Queued entries
    are used in order.
    """

    error_5xx: float = 0.0
    html: float = 0.0
    rate_limit_429: float = 0.0
    drop_after_create: float = 0.0
    create_after_drop: float = 0.0  # "late", for `add` only
    late_delay: float = 0.3  # seconds between closing the connection and processing, for "late"
    empty_body: float = 0.0
    latency: float = 0.0
    trickle_interval: float = 1.0  # seconds between the bytes of a "trickle" reply
    retry_after: float | str | None = 1  # the Retry-After header of a 429 (None: no header)
    html_body: str = DEFAULT_HTML
    actions: set[str] | None = None
    _queued: list[list[Any]] = field(default_factory=list, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def queue(self, kind: str, count: int = 1, *, actions: Iterable[str] | None = None) -> None:
        """Make the next `count` requests (for `actions`, or any action) fail as `kind`."""
        kind = _KIND_ALIASES.get(kind, kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        self._push(kind, count, actions)

    def queue_reply(
        self,
        body: Any,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        count: int = 1,
        actions: Iterable[str] | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `body` (JSON-encoded unless str/bytes).

        The request is not processed. For odd reply shapes and error strings the panel never says.
        """
        self._push(CannedReply(body, status, tuple((headers or {}).items())), count, actions)

    def queue_processed(
        self,
        *,
        status: int = 200,
        extra: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        count: int = 1,
        actions: Iterable[str] | None = None,
    ) -> None:
        """Process the next `count` matching requests (an `add` places its order), then answer
        with `status`, the panel's reply plus `extra` (or `body` instead), and `headers`."""
        reply = ProcessedReply(status, tuple((extra or {}).items()), body, tuple((headers or {}).items()))
        self._push(reply, count, actions)

    def queue_recorded(
        self,
        reply: RecordedReply | bytes | str | os.PathLike[str],
        *,
        processed: bool | None = None,
        count: int = 1,
        actions: Iterable[str] | None = None,
    ) -> None:
        """Answer the next `count` matching requests with a recorded reply (a `RecordedReply`,
        its raw bytes or text, or a file of them), not processed unless `processed`."""
        if isinstance(reply, os.PathLike):
            reply = Path(reply).read_bytes()
        if not isinstance(reply, RecordedReply):
            reply = RecordedReply.parse(reply)
        if processed is not None:
            reply = dataclasses.replace(reply, processed=processed)
        self._push(reply, count, actions)

    def _push(self, fault: Fault, count: int, actions: Iterable[str] | None) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._queued.append([fault, count, frozenset(actions) if actions is not None else None])

    @property
    def pending(self) -> int:
        """Queued faults not yet used."""
        with self._lock:
            return sum(entry[1] for entry in self._queued)

    def clear(self) -> None:
        """No faults, no latency, empty queue."""
        with self._lock:
            self._queued.clear()
            self.error_5xx = self.html = self.rate_limit_429 = 0.0
            self.drop_after_create = self.create_after_drop = self.empty_body = self.latency = 0.0
            self.actions = None

    def draw(self, action: str, rng: random.Random) -> Fault | None:
        """The fault for this request, if any (used by the server)."""
        with self._lock:
            for entry in self._queued:
                fault, _count, actions = entry
                if actions is None or action in actions:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._queued.remove(entry)
                    return None if fault == "ok" else fault
            if self.actions is not None and action not in self.actions:
                return None
            chances = (
                ("429", self.rate_limit_429),
                ("5xx", self.error_5xx),
                ("html", self.html),
                ("empty", self.empty_body),
                ("drop", self.drop_after_create if action == "add" else 0.0),
                ("late", self.create_after_drop if action == "add" else 0.0),
            )
            for kind, chance in chances:
                if chance > 0 and rng.random() < chance:
                    return kind
        return None


# --- ledger -------------------------------------------------------------------


@dataclass
class LedgerOrder:
    id: str
    service: str
    type: str
    link: str | None
    fields: dict[str, str]
    quantity: int
    runs: int
    interval: int
    charge: Decimal
    created: float  # simulated clock
    ends_partial: bool
    status: str = "Pending"
    remains: int = 0
    start_count: int = 0
    refunded: Decimal = Decimal(0)
    link_key: tuple[str, str] | None = None  # (service, link): one active order each

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def run_seconds(self) -> float:
        return RUN_SECONDS + max(0, self.runs - 1) * self.interval * 60.0


@dataclass
class LedgerRefill:
    id: str
    order_id: str
    created: float
    status: str = "Pending"

    @property
    def is_final(self) -> bool:
        return self.status == "Completed"


@dataclass
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class Ledger:
    """Everything the panel knows. Hold `lock` to read several fields consistently."""

    def __init__(self, balance: Decimal) -> None:
        self.lock = threading.RLock()
        self.balance = Decimal(balance)
        self.orders: dict[str, LedgerOrder] = {}  # the key's own orders
        self.others: dict[str, LedgerOrder] = {}  # other customers' orders, from the same ID sequence
        self.refills: dict[str, LedgerRefill] = {}
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0  # TCP connections accepted: shows keep-alive at work
        self.last_request: RequestRecord | None = None


# --- server -------------------------------------------------------------------


class PanelServer(ServedInBackground):
    """A panel on 127.0.0.1 (a free port by default). Use as a context manager."""

    thread_name = "panel server"

    def __init__(
        self,
        *,
        key: str = "test-key",
        balance: Decimal | int | str = Decimal("1000"),
        currency: str = "USD",
        speed: float = 1.0,
        seed: int = 0,
        profile: str = "standard",
        catalog: list[dict[str, Any]] | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        error_http_status: int = 200,
        tls: ssl.SSLContext | None = None,
        other_customers: float = 0.0,
        leaks_statuses: bool = False,
        idempotency_field: str | None = None,
    ) -> None:
        """`tls`: serve HTTPS with this (server-side) context instead of plain HTTP.
        `other_customers`: the mean number of other customers' orders placed between two of
        ours (their IDs come from the same sequence); `leaks_statuses`: `status` answers for
        their orders too, as a broken panel would; `idempotency_field`: the `add` field that
        carries a client key (e.g. "request_id")."""
        if profile not in ("standard", "alt"):
            raise ValueError("profile must be 'standard' or 'alt'")
        self.key = key
        self.currency = currency
        self.speed = speed
        self.seed = seed
        self.profile = profile
        self.catalog = catalog if catalog is not None else default_catalog()
        self.faults = faults if faults is not None else Faults()
        self.host = host
        self.error_http_status = error_http_status
        self.tls = tls
        self.other_customers = other_customers
        self.leaks_statuses = leaks_statuses
        self.idempotency_field = idempotency_field
        self._answered_keys: dict[str, tuple[tuple[tuple[str, str], ...], tuple[int, Any]]] = {}
        self.ledger = Ledger(Decimal(balance))
        self._requested_port = port
        self._services = {str(s["service"]).strip(): s for s in self.catalog}
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._t0 = time.monotonic()
        self._offset = 0.0
        self._next_order = FIRST_ORDER_ID
        self._next_refill = FIRST_REFILL_ID
        # (simulated time, order id) of each unfinished order's next change of status, soonest first
        self._due: list[tuple[float, int, str]] = []
        self._active_links: dict[tuple[str, str], str] = {}
        self._active_refills: set[str] = set()
        # (created, number, refill id), oldest first: refills still Pending, and refills not yet
        # Completed. Keyed by creation time so that `_settle` tests each refill's age exactly
        # as it always has, stopping at the first one too young.
        self._refills_pending: list[tuple[float, int, str]] = []
        self._refills_running: list[tuple[float, int, str]] = []
        self._refill_of: dict[str, str] = {}  # order id -> its latest refill id
        super().__init__()

    # --- lifecycle ---

    def _make_server(self) -> ClosingHTTPServer:
        httpd = _HTTPServer((self.host, self._requested_port), _Handler)
        httpd.panel = self
        return httpd

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{API_PATH}"

    # --- clock and inspection ---

    def now(self) -> float:
        """The simulated clock: real seconds since start × speed, plus `advance`s."""
        return (time.monotonic() - self._t0) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        """Jump the simulated clock forward."""
        with self.ledger.lock:
            self._offset += seconds
            self._settle()

    def reset_calls(self) -> None:
        with self.ledger.lock:
            self.ledger.calls.clear()
            self.ledger.max_in_flight = self.ledger.in_flight

    @property
    def balance(self) -> Decimal:
        with self.ledger.lock:
            self._settle()
            return self.ledger.balance

    def order(self, order_id: str | int) -> LedgerOrder:
        """One order, brought up to the simulated clock (fields in `ledger.orders` may lag a bit)."""
        with self.ledger.lock:
            self._settle()
            order = self.ledger.orders[str(order_id)]
            self._touch(order)
            return order

    def service(self, service_id: str | int) -> dict[str, Any]:
        return self._services[str(service_id)]

    # --- request handling (called by the HTTP handler) ---

    def draw_fault(self, action: str) -> Fault | None:
        with self._rng_lock:
            return self.faults.draw(action, self._rng)

    def handle(self, form: dict[str, str]) -> tuple[int, Any]:
        """Answer one API request: (HTTP status, JSON-able reply)."""
        if form.get("key") != self.key:
            return self._error(ERR_KEY)
        handler = {
            "services": self._services_reply,
            "add": self._add,
            "status": self._status,
            "refill": self._refill,
            "refill_status": self._refill_status,
            "cancel": self._cancel,
            "balance": self._balance_reply,
        }.get(form.get("action", ""))
        if handler is None:
            return self._error(ERR_REQUEST)
        with self.ledger.lock:
            self._settle()
            return handler(form)

    # --- replies ---

    def _error(self, message: str) -> tuple[int, Any]:
        if self.profile == "alt":
            return self.error_http_status, {"status": "error", "message": message}
        return self.error_http_status, {"error": message}

    def _item_error(self, message: str) -> Any:
        return message if self.profile == "alt" else {"error": message}

    def _id_out(self, value: str) -> Any:
        return value if self.profile == "alt" or not value.isdigit() else int(value)

    def _services_reply(self, form: dict[str, str]) -> tuple[int, Any]:
        if self.profile == "standard":
            return 200, self.catalog
        services = []
        for item in self.catalog:
            out = {k: v for k, v in item.items() if k != "dripfeed"}
            out["service"] = str(item["service"])
            out["rate"] = _json_number(Decimal(str(item["rate"])))
            out["min"], out["max"] = int(item["min"]), int(item["max"])
            out["refill"] = "1" if item.get("refill") else "0"
            out["cancel"] = 1 if item.get("cancel") else 0
            services.append(out)
        return 200, services

    def _balance_reply(self, form: dict[str, str]) -> tuple[int, Any]:
        return 200, {"balance": _money(self.ledger.balance), "currency": self.currency}

    def _add(self, form: dict[str, str]) -> tuple[int, Any]:
        """An `add`; with a client key, the answer given to that key before, if any."""
        client_key = form.get(self.idempotency_field or "", "").strip() if self.idempotency_field else ""
        if not client_key:
            return self._new_order(form)
        fields = tuple(sorted((k, v) for k, v in form.items() if k != "key"))
        seen = self._answered_keys.get(client_key)
        if seen is not None:
            return seen[1] if seen[0] == fields else self._error(ERR_KEY_REUSED)
        answer = self._new_order(form)
        self._answered_keys[client_key] = (fields, answer)
        return answer

    def _new_order(self, form: dict[str, str]) -> tuple[int, Any]:
        """Validate an order as a real panel does, then charge it and put it on the ledger."""
        try:
            service, stype, link = self._add_target(form)
            runs, interval = _dripfeed(form, service, stype)
            quantity, charge = _quantity_and_charge(form, service, stype, runs)
            target = link if link is not None else form.get("username", "").strip()
            link_key = (str(service["service"]), target)
            holder = self._active_links.get(link_key)
            if holder is not None and not self.ledger.orders[holder].is_final:
                raise _Refused(ERR_ACTIVE)
            if charge > self.ledger.balance:
                raise _Refused(ERR_FUNDS)
        except _Refused as refused:
            return self._error(str(refused))
        order = LedgerOrder(
            id=str(self._next_order),
            service=str(service["service"]),
            type=stype,
            link=link,
            fields={k: v for k, v in form.items() if k not in ("key", "action")},
            quantity=quantity,
            runs=runs,
            interval=interval,
            charge=charge,
            created=self.now(),
            ends_partial=False,
            remains=quantity,
            link_key=link_key,
        )
        self._place(order)
        return 200, {"order": order.id if self.profile == "alt" else int(order.id)}

    def _add_target(self, form: dict[str, str]) -> tuple[dict[str, Any], str, str | None]:
        """The service ordered, its type, and the link (None for types without one)."""
        service = self._services.get(form.get("service", "").strip())
        if service is None:
            raise _Refused(ERR_SERVICE)
        stype = str(service.get("type") or "Default")
        required = SERVICE_TYPES.get(stype, SERVICE_TYPES["Default"])
        if any(not form.get(name, "").strip() for name in required):
            raise _Refused(ERR_REQUEST)
        link = form.get("link", "").strip() if "link" in required else None
        if link is not None and not _LINK.fullmatch(link):
            raise _Refused(ERR_LINK)
        return service, stype, link

    def _others_order(self) -> None:
        """Other customers' orders, placed since our last one: they take IDs of the sequence."""
        if self.other_customers <= 0:
            return
        keep_going = self.other_customers / (1 + self.other_customers)  # a geometric count, that mean
        while True:
            with self._rng_lock:
                if self._rng.random() >= keep_going:
                    return
                quantity = self._rng.choice((100, 250, 500, 1000, 2000))
                rate = Decimal(str(self._rng.choice(self.catalog)["rate"]))
            oid = str(self._next_order)
            self._next_order += 1
            charge = (rate * quantity / 1000).quantize(_Q7, rounding=ROUND_HALF_UP)
            self.ledger.others[oid] = LedgerOrder(
                id=oid,
                service="0",
                type="Default",
                link=None,
                fields={},
                quantity=quantity,
                runs=1,
                interval=0,
                charge=charge,
                created=self.now(),
                ends_partial=False,
                status="In progress",
                remains=quantity // 2,
                start_count=100,
            )

    def _place(self, order: LedgerOrder) -> None:
        """Take the next order ID, charge the order and schedule its progress."""
        self._others_order()
        order.id = str(self._next_order)
        index = self._next_order - FIRST_ORDER_ID
        self._next_order += 1
        order.ends_partial = (
            (index + self.seed) % PARTIAL_EVERY == PARTIAL_EVERY - 1
            and order.quantity >= 2
            and order.type not in PACKAGE_TYPES
        )
        self.ledger.orders[order.id] = order
        self.ledger.balance -= order.charge
        heapq.heappush(self._due, (order.created + PENDING_SECONDS, index, order.id))
        if order.link_key is not None:
            self._active_links[order.link_key] = order.id

    def _status_obj(self, order: LedgerOrder) -> dict[str, str]:
        self._touch(order)
        return {
            "charge": _money(order.charge),
            "start_count": str(order.start_count),
            "status": order.status,
            "remains": str(order.remains),
            "currency": self.currency,
        }

    def _status(self, form: dict[str, str]) -> tuple[int, Any]:
        if "orders" in form:
            ids = _split_ids(form["orders"])
            if not ids or len(ids) > MAX_BATCH:
                return self._error(ERR_REQUEST)
            reply: dict[str, Any] = {}
            for oid in ids:
                order = self._visible_order(oid)
                reply[oid] = self._status_obj(order) if order else self._item_error(ERR_ORDER)
            return 200, reply
        if not form.get("order", "").strip():
            return self._error(ERR_REQUEST)
        order = self._visible_order(form["order"].strip())
        if order is None:
            return self._error(ERR_ORDER)
        return 200, self._status_obj(order)

    def _visible_order(self, oid: str) -> LedgerOrder | None:
        """The order `status` answers for: one of ours (or anyone's, on a panel that leaks)."""
        order = self.ledger.orders.get(oid)
        if order is None and self.leaks_statuses:
            order = self.ledger.others.get(oid)
        return order

    def _refill_one(self, oid: str) -> tuple[str | None, str | None]:
        order = self.ledger.orders.get(oid)
        if order is None:
            return None, ERR_ORDER
        if not self._services[order.service].get("refill"):
            return None, ERR_REFILL_SERVICE
        if order.status != "Completed":
            return None, ERR_REFILL_NOT_COMPLETED
        if oid in self._refill_of and self._refill_of[oid] in self._active_refills:
            return None, ERR_REFILL_ACTIVE
        number = self._next_refill
        rid = str(number)
        self._next_refill += 1
        refill = self.ledger.refills[rid] = LedgerRefill(id=rid, order_id=oid, created=self.now())
        self._active_refills.add(rid)
        heapq.heappush(self._refills_pending, (refill.created, number, rid))
        heapq.heappush(self._refills_running, (refill.created, number, rid))
        self._refill_of[oid] = rid
        return rid, None

    def _refill(self, form: dict[str, str]) -> tuple[int, Any]:
        if "orders" in form:
            ids = _split_ids(form["orders"])
            if not ids or len(ids) > MAX_BATCH:
                return self._error(ERR_REQUEST)
            items = []
            for oid in ids:
                rid, error = self._refill_one(oid)
                value = self._id_out(rid) if rid is not None else self._item_error(str(error))
                items.append({"order": self._id_out(oid), "refill": value})
            return 200, items
        if not form.get("order", "").strip():
            return self._error(ERR_REQUEST)
        rid, error = self._refill_one(form["order"].strip())
        if rid is None:
            return self._error(str(error))
        return 200, {"refill": rid}

    def _refill_status(self, form: dict[str, str]) -> tuple[int, Any]:
        if "refills" in form:
            ids = _split_ids(form["refills"])
            if not ids or len(ids) > MAX_BATCH:
                return self._error(ERR_REQUEST)
            items = []
            for rid in ids:
                refill = self.ledger.refills.get(rid)
                status = refill.status if refill else self._item_error(ERR_REFILL_NOT_FOUND)
                items.append({"refill": self._id_out(rid), "status": status})
            return 200, items
        if not form.get("refill", "").strip():
            return self._error(ERR_REQUEST)
        refill = self.ledger.refills.get(form["refill"].strip())
        if refill is None:
            return self._error(ERR_REFILL_NOT_FOUND)
        return 200, {"status": refill.status}

    def _cancel(self, form: dict[str, str]) -> tuple[int, Any]:
        ids = _split_ids(form.get("orders", ""))
        if not ids or len(ids) > MAX_BATCH:
            return self._error(ERR_REQUEST)
        items = []
        for oid in ids:
            order = self.ledger.orders.get(oid)
            if order is None:
                result: Any = self._item_error(ERR_ORDER)
            elif not self._services[order.service].get("cancel"):
                result = self._item_error(ERR_CANCEL_SERVICE)
            elif order.is_final:
                result = self._item_error(f"Order can not be canceled: it is {order.status.lower()}")
            else:
                order.status = "Canceled"
                order.refunded += order.charge
                self.ledger.balance += order.charge
                order.charge = Decimal(0)
                self._retire(order)
                result = 1
            items.append({"order": self._id_out(oid), "cancel": result})
        return 200, items

    # --- simulated progress ---

    def _settle(self) -> None:
        """Apply every status change due by the simulated clock (hold the lock)."""
        now = self.now()
        orders = self.ledger.orders
        while self._due and self._due[0][0] <= now:
            _, index, oid = heapq.heappop(self._due)
            order = orders[oid]
            if order.is_final:  # canceled meanwhile
                continue
            if order.status == "Pending":
                order.status = "In progress"
                order.start_count = 1000 + (int(oid) * 7919) % 9000
                heapq.heappush(self._due, (order.created + PENDING_SECONDS + order.run_seconds, index, oid))
                continue
            if order.ends_partial:
                order.status = "Partial"
                order.remains = max(1, order.quantity // 4)
                kept = (order.charge * (order.quantity - order.remains) / order.quantity).quantize(
                    _Q7, rounding=ROUND_HALF_UP
                )
                refund = order.charge - kept
                order.charge = kept
                order.refunded += refund
                self.ledger.balance += refund
            else:
                order.status = "Completed"
                order.remains = 0
            self._retire(order)
        refills = self.ledger.refills
        running = self._refills_running
        while running and now - running[0][0] >= REFILL_PENDING_SECONDS + REFILL_RUN_SECONDS:
            rid = heapq.heappop(running)[2]
            refills[rid].status = "Completed"
            self._active_refills.discard(rid)
        pending = self._refills_pending
        while pending and now - pending[0][0] >= REFILL_PENDING_SECONDS:
            rid = heapq.heappop(pending)[2]
            if rid in self._active_refills:  # else it went straight to Completed above
                refills[rid].status = "In progress"

    def _touch(self, order: LedgerOrder) -> None:
        """Update what moves continuously (remains while in progress); statuses move in `_settle`."""
        if order.status == "In progress":
            done = (self.now() - order.created - PENDING_SECONDS) / order.run_seconds
            order.remains = min(order.quantity, max(1, round(order.quantity * (1 - done))))

    def _retire(self, order: LedgerOrder) -> None:
        if order.link_key is not None and self._active_links.get(order.link_key) == order.id:
            del self._active_links[order.link_key]


class _Refused(Exception):
    """An `add` the panel refuses; the message is the panel's error string."""


def _dripfeed(form: dict[str, str], service: dict[str, Any], stype: str) -> tuple[int, int]:
    """(runs, interval) of the order: (1, 0) unless it asks for drip-feed, which must be valid."""
    if not (form.get("runs", "").strip() or form.get("interval", "").strip()):
        return 1, 0
    runs, interval = _to_int(form.get("runs")), _to_int(form.get("interval"))
    if (
        stype not in DRIPFEED_TYPES
        or service.get("dripfeed") is False
        or runs is None
        or interval is None
        or runs < 1
        or interval < 1
    ):
        raise _Refused(ERR_REQUEST)
    return runs, interval


def _quantity_and_charge(
    form: dict[str, str], service: dict[str, Any], stype: str, runs: int
) -> tuple[int, Decimal]:
    """The order's quantity, within the service's limits, and its price (7 decimals)."""
    lo, hi = int(service["min"]), int(service["max"])
    rate = Decimal(str(service["rate"]))
    if stype in PACKAGE_TYPES:
        quantity, charge = 1, rate
    elif stype == "Subscriptions":
        quantity, posts = _subscription(form, lo, hi)
        charge = rate * quantity * posts / 1000
    else:
        if stype in LINE_COUNT_TYPES:
            quantity = len([x for x in form[LINE_COUNT_TYPES[stype]].splitlines() if x.strip()])
        else:
            parsed = _to_int(form.get("quantity"))
            if parsed is None:
                raise _Refused(ERR_REQUEST)
            quantity = parsed
        _within(quantity, quantity, lo, hi)
        charge = rate * quantity * runs / 1000
    return quantity, charge.quantize(_Q7, rounding=ROUND_HALF_UP)


def _subscription(form: dict[str, str], lo: int, hi: int) -> tuple[int, int]:
    """(quantity, posts) of a subscription: its max per post, and how many posts."""
    sub_min, sub_max = _to_int(form.get("min")), _to_int(form.get("max"))
    delay, posts = _to_int(form.get("delay")), _to_int(form.get("posts") or "1")
    if sub_min is None or sub_max is None or delay is None or delay < 0 or posts is None or posts < 1:
        raise _Refused(ERR_REQUEST)
    if sub_min > sub_max:
        raise _Refused(ERR_REQUEST)
    _within(sub_min, sub_max, lo, hi)
    return sub_max, posts


def _within(low: int, high: int, lo: int, hi: int) -> None:
    if low < lo:
        raise _Refused(f"Quantity less than minimal {lo}")
    if high > hi:
        raise _Refused(f"Quantity more than maximal {hi}")


def _to_int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _split_ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _money(value: Decimal) -> str:
    """Like panels print money: at least 2 decimals, at most 7, no exponent."""
    text = format(value.quantize(_Q7, rounding=ROUND_HALF_UP), "f")
    whole, _, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(2, "0")
    return f"{whole}.{decimals}"


def _json_number(value: Decimal) -> int | float:
    # Only for the alt dialect's numeric rates; repr(float) round-trips these short decimals.
    return int(value) if value == value.to_integral_value() else float(value)


# --- HTTP ---------------------------------------------------------------------


class _HTTPServer(ClosingHTTPServer):
    block_on_close = False
    request_queue_size = 256
    panel: PanelServer

    def finish_request(self, request: Any, client_address: Any) -> None:
        tls = self.panel.tls
        if tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake happens here, in the connection's own thread. The TLS socket takes the
        # connection over: it is the one to close when the server stops, and when it is done.
        with self._connections_lock:
            self._connections.discard(request)
        try:
            secure = tls.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return  # a client that does not speak TLS, or does not trust the certificate
        with self._connections_lock:
            self._connections.add(secure)
        try:
            super().finish_request(secure, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(secure)
            with contextlib.suppress(OSError):
                secure.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.panel.ledger.lock:
            self.panel.ledger.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-reply is part of the game here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PanelServer/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._count("")
        self._send_json(405, {"error": "Method not allowed"}, extra={"Allow": "POST"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def do_POST(self) -> None:
        panel = self.server.panel
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        action = form.get("action", "")
        ledger = panel.ledger
        with ledger.lock:
            ledger.calls[action] += 1
            ledger.in_flight += 1
            ledger.max_in_flight = max(ledger.max_in_flight, ledger.in_flight)
            ledger.last_request = RequestRecord("POST", self.path, dict(self.headers.items()), dict(form))
        try:
            self._serve(panel, form, action)
        finally:
            with ledger.lock:
                ledger.in_flight -= 1

    def _serve(self, panel: PanelServer, form: dict[str, str], action: str) -> None:
        faults = panel.faults
        if faults.latency > 0:
            time.sleep(faults.latency)
        if urlsplit(self.path).path.rstrip("/") != API_PATH:
            self._send_json(404, {"error": "Not found"})
            return
        kind = panel.draw_fault(action)
        if isinstance(kind, CannedReply):
            self._send_any(kind.status, kind.body, dict(kind.headers))
        elif kind == "redirect":
            self._send(307, b"", "text/plain", {"Location": panel.url})
        elif kind == "5xx":
            body = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"
            self._send(502, body, "text/html")
        elif kind == "html":
            self._send(200, faults.html_body.encode(), "text/html; charset=utf-8")
        elif kind == "429":
            extra = {"Retry-After": str(faults.retry_after)} if faults.retry_after is not None else {}
            self._send_json(429, {"error": "Too many requests"}, extra=extra)
        elif kind == "empty":
            self._send(200, b"", "application/json")
        elif kind == "trickle":
            status, payload = panel.handle(form)
            self._send_slowly(status, json.dumps(payload).encode(), faults.trickle_interval)
        elif kind == "endless":
            panel.handle(form)
            self._send_endless(faults.trickle_interval / 10)
        elif isinstance(kind, ProcessedReply):
            self._send_processed(kind, panel.handle(form)[1])
        elif isinstance(kind, RecordedReply):
            if kind.processed:
                panel.handle(form)
            self._send_recorded(kind)
        elif kind == "late":
            self._drop()
            time.sleep(faults.late_delay)
            panel.handle(form)
        else:
            status, payload = panel.handle(form)
            if kind == "drop":
                self._drop()
            else:
                self._send_json(status, payload)

    def _send_slowly(self, status: int, body: bytes, interval: float) -> None:
        """Headers at once, then the body one byte every `interval` seconds."""
        self.close_connection = True
        try:
            self._send_head(status, "application/json", len(body))
            for index in range(len(body)):
                time.sleep(interval)
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
        except OSError:
            pass  # the client gave up

    def _send_endless(self, interval: float) -> None:
        """A 200 whose body never ends: whitespace (JSON allows it) until the client goes away."""
        self.close_connection = True
        try:
            self._send_head(200, "application/json", 10**12)
            while True:
                self.wfile.write(b" " * 64)
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass  # the client gave up, or the server stopped

    def _send_recorded(self, reply: RecordedReply) -> None:
        """The recorded status line, headers and body, and no header of this server's own."""
        try:
            self.send_response_only(reply.status, reply.reason or None)
            for name, value in reply.headers:
                if name.lower() not in RecordedReply.HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_processed(self, fault: ProcessedReply, payload: Any) -> None:
        if fault.body is not None:
            payload = fault.body
        elif fault.extra and isinstance(payload, dict):
            payload = {**payload, **dict(fault.extra)}
        self._send_any(fault.status, payload, dict(fault.headers))

    def _send_any(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        """Bytes and text as they are (HTML when they look like it), anything else as JSON."""
        if isinstance(payload, str):
            payload = payload.encode()
        if isinstance(payload, bytes):
            ctype = "text/html; charset=utf-8" if payload.lstrip().startswith(b"<") else "application/json"
            self._send(status, payload, ctype, headers)
        else:
            self._send_json(status, payload, extra=headers)

    def _count(self, action: str) -> None:
        with self.server.panel.ledger.lock:
            self.server.panel.ledger.calls[action] += 1

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, body, "application/json", extra)

    def _send_head(
        self, status: int, content_type: str, length: int, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        try:
            self._send_head(status, content_type, len(body), extra)
            if body and self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# --- command line ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sheetorders.testing.panel_server", description="Run a local SMM panel (API v2)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--balance", default="1000")
    parser.add_argument("--currency", default="USD")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", choices=("standard", "alt"), default="standard")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--error-5xx", type=float, default=0.0, help="probability of a 502")
    parser.add_argument("--html", type=float, default=0.0, help="probability of an HTML page")
    parser.add_argument("--rate-limit-429", type=float, default=0.0, help="probability of a 429")
    parser.add_argument("--drop-after-create", type=float, default=0.0, help="probability, for add")
    parser.add_argument("--empty-body", type=float, default=0.0, help="probability of an empty reply")
    args = parser.parse_args(argv)
    faults = Faults(
        error_5xx=args.error_5xx,
        html=args.html,
        rate_limit_429=args.rate_limit_429,
        drop_after_create=args.drop_after_create,
        empty_body=args.empty_body,
        latency=args.latency,
    )
    server = PanelServer(
        key=args.key,
        balance=Decimal(args.balance),
        currency=args.currency,
        speed=args.speed,
        seed=args.seed,
        profile=args.profile,
        faults=faults,
        host=args.host,
        port=args.port,
    )
    with server:
        print(f"panel API v2 at {server.url}", flush=True)
        print(f"key: {server.key}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
