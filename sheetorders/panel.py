"""HTTP client for one SMM panel's API v2.

Reads are retried with backoff. Writes (`add`, `refill`, `cancel`) are retried only when the
request surely never reached the panel; when it may have, they raise `AmbiguousOrder`.
Every request ends by its deadline (connect to last byte), however slowly the panel answers.
The API key is sent only in the POST body and never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote_plus, unquote

from tenacity import RetryCallState, Retrying, retry_if_exception
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from sheetorders import __version__
from sheetorders.config import Config, PanelConfig
from sheetorders.errors import (
    ActiveOrderExists,
    AmbiguousOrder,
    InvalidKey,
    NotEnoughFunds,
    PanelError,
    PanelRefused,
    PanelUnavailable,
    RateLimited,
)
from sheetorders.models import (
    Balance,
    Catalog,
    ItemError,
    OrderStatus,
    RefillStatus,
    RefusedService,
    Service,
)
from sheetorders.retry_after import parse_retry_after
from sheetorders.transport import DEFAULT_TIMEOUT, Connections, Endpoint, Headers, NoReply, Reply, Timeouts

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "ClientFactory",
    "PanelClient",
    "Panels",
    "RetryPolicy",
    "Timeouts",
    "make_client",
]

log = logging.getLogger("sheetorders.panel")

BATCH_SIZE = 100  # the API's limit of IDs per batch call
SNIPPET_LENGTH = 120
# Seconds from connecting to the last byte of the reply, for any request; longer when the
# timeouts allow a longer connect + read.
DEFAULT_DEADLINE = 60.0
USER_AGENT = f"sheetorders/{__version__} (+https://pypi.org/project/sheetorders/)"
_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json",  # and Accept-Encoding: gzip, deflate (libcurl decodes)
    # Every request is a POST of a form, encoded in _attempt.
    "Content-Type": "application/x-www-form-urlencoded",
}

T = TypeVar("T")

_KNOWN_REFILL_STATUSES = frozenset(
    {"pending", "in progress", "processing", "completed", "rejected", "canceled", "cancelled", "error"}
)
_ERRORISH = re.compile(r"\b(not|no|incorrect|invalid|wrong|unknown|missing|denied)\b", re.IGNORECASE)
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Order IDs come from the panel's database sequence: a positive whole number.
_ORDER_ID = re.compile(r"[1-9][0-9]{0,29}")


@dataclass(frozen=True)
class RetryPolicy:
    """How reads (and writes that surely never reached the panel) are retried.

    Waits grow exponentially from `initial` up to `maximum`, with up to `jitter` × the wait
    added at random; a 429's Retry-After is a floor. Retrying stops after `attempts` attempts
    or once the next wait would pass `total` seconds since the first attempt.
    """

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 8.0
    total: float = 60.0
    jitter: float = 0.25


class _Backoff(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        p = self.policy
        backoff = min(p.maximum, p.initial * 2.0 ** (retry_state.attempt_number - 1))
        backoff = min(p.maximum, backoff * (1 + random.uniform(0, p.jitter)))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        return max(backoff, retry_after or 0.0)


class _Stop(stop_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.attempt_number >= self.policy.attempts:
            return True
        # idle_for counts the waits even when the injected sleep does not really wait.
        since_start = (retry_state.seconds_since_start or 0.0) + getattr(retry_state.fn, "spent", 0.0)
        elapsed = max(since_start, retry_state.idle_for)
        return elapsed + retry_state.upcoming_sleep > self.policy.total


class _Resume:
    """The attempts of a call after its first one failed. The first is made without tenacity
    (most calls need no other); tenacity's first attempt replays its failure, and `spent` is
    how long it took, so the time budget counts from the first attempt all the same."""

    def __init__(self, attempt: Callable[..., Any], failure: PanelError, spent: float) -> None:
        self._attempt = attempt
        self._failure: PanelError | None = failure
        self.spent = spent

    def __call__(self, *args: Any) -> Any:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        return self._attempt(*args)


class _RateLimiter:
    """At most `rate` request starts per second, across threads."""

    def __init__(self, rate: float, sleep: Callable[[float], None]) -> None:
        self._interval = 1.0 / rate
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


# What may stand for characters of the key in what a panel echoes back: an HTML character
# reference, a run of percent-escapes (a UTF-8 sequence takes several), a JSON \u escape.
_ESCAPE = re.compile(
    r"&(?:#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|[A-Za-z][A-Za-z0-9]{1,31});?"
    r"|(?:%[0-9A-Fa-f]{2})+"
    r"|\\+u[0-9A-Fa-f]{4}"  # with its backslash escaped too, when JSON was encoded twice
)
_ESCAPE_LEVELS = 4  # escapes of escapes (&amp;#45;, %26%2345%3B) are undone this many times over


class _Scrubber:
    """Blanks a secret out of text as "***": as it is, in any letter case, and where it is
    written with HTML, percent or JSON escapes, even escaped several times over."""

    def __init__(self, secret: str) -> None:
        # A key of 1-3 characters would blank out ordinary words, and is no secret anyway.
        self._needles = tuple({s.lower() for s in (secret, quote_plus(secret)) if len(s) >= 4})
        self.spans_words = any(c.isspace() for c in secret)

    def __call__(self, text: str) -> str:
        if not self._needles or not text:
            return text
        spans = sorted(self._spans(text))
        if not spans:
            return text
        parts: list[str] = []
        done = 0
        for start, end in spans:
            if end <= done:
                continue
            if start >= done:
                parts.append(text[done:start])
                parts.append("***")
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where the secret is in `text`, at each level of unescaping, as spans of `text`."""
        spans = self._find(text, None, None)
        if _ESCAPE.search(text) is None:
            return spans
        level: _Level = (text, list(range(len(text))), list(range(1, len(text) + 1)))
        for _ in range(_ESCAPE_LEVELS):
            unescaped = _unescape_once(*level)
            if unescaped is None:
                break
            level = unescaped
            spans += self._find(*level)
        return spans

    def _find(self, text: str, starts: list[int] | None, ends: list[int] | None) -> list[tuple[int, int]]:
        low = _lower(text)
        found: list[tuple[int, int]] = []
        for needle in self._needles:
            at = low.find(needle)
            while at >= 0:
                last = at + len(needle) - 1
                if starts is None or ends is None:
                    found.append((at, last + 1))
                else:
                    found.append((starts[at], ends[last]))
                at = low.find(needle, at + 1)
        return found


# A text, and for each of its characters the span of the original text it stands for.
_Level = tuple[str, list[int], list[int]]


def _unescape_once(text: str, starts: list[int], ends: list[int]) -> _Level | None:
    """`text` with its escapes undone once (None when it has none), and where each char came from."""
    chars: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    done = 0
    for match in _ESCAPE.finditer(text):
        token = match.group()
        decoded = _unescape_token(token)
        if decoded == token:
            continue
        begin, end = match.span()
        chars.append(text[done:begin])
        new_starts += starts[done:begin]
        new_ends += ends[done:begin]
        chars.append(decoded)
        if token.startswith("%") and len(decoded) * 3 == len(token):  # one char per escape
            new_starts += starts[begin:end:3]
            new_ends += ends[begin + 2 : end : 3]
        else:
            new_starts += [starts[begin]] * len(decoded)
            new_ends += [ends[end - 1]] * len(decoded)
        done = end
    if done == 0:
        return None
    chars.append(text[done:])
    return "".join(chars), new_starts + starts[done:], new_ends + ends[done:]


def _unescape_token(token: str) -> str:
    if token.startswith("&"):
        return html.unescape(token)
    if token.startswith("%"):
        return unquote(token)
    return chr(int(token[-4:], 16))


def _lower(text: str) -> str:
    """`text` in lower case, character for character (a few characters lower to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


class _BadShape(Exception):
    """A reply that is JSON but not of the shape the action returns."""


def _final(exc: PanelError) -> PanelError:
    """Mark an error that retrying cannot fix (a redirect, a wrong URL)."""
    exc.retryable = False  # type: ignore[attr-defined]
    return exc


def _default_deadline(timeout: Timeouts) -> float:
    """DEFAULT_DEADLINE, or one connect and one read when the timeouts allow longer."""
    return max(DEFAULT_DEADLINE, timeout.connect + timeout.read)


_OWN_FIELDS = frozenset({"key", "action"})


@functools.lru_cache(maxsize=256)
def _quoted_name(name: str) -> str:
    """A field's name (or an action), form-encoded: there are few, so they are encoded once."""
    return quote_plus(name)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, PanelUnavailable) and getattr(exc, "retryable", True)


class PanelClient:
    """One panel's API v2 over pooled HTTP connections. Thread-safe; use as a context manager."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        name: str = "",
        concurrency: int = 4,
        rate_limit: float | None = None,
        timeout: Timeouts | None = None,
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`timeout` applies to each connect and each read; `deadline` (seconds) to a whole
        request, from connecting to the reply's last byte."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive")
        if deadline is not None and deadline <= 0:
            raise ValueError("deadline must be positive")
        self.url = url
        self.name = name
        self.concurrency = concurrency
        self._key = key
        self._key_field = f"key={quote_plus(key)}"
        self._scrub = _Scrubber(key)  # blanks the key out of anything the panel echoes back
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(concurrency)
        self._limiter = _RateLimiter(rate_limit, sleep) if rate_limit else None
        # One retry controller for every call: its per-call state is thread-local in tenacity.
        self._retrying = Retrying(
            sleep=self._sleep,
            stop=_Stop(self._retry),
            wait=_Backoff(self._retry),
            retry=retry_if_exception(_is_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        self.refused_services: list[RefusedService] = []
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.deadline = deadline if deadline is not None else _default_deadline(self.timeout)
        self._open_pool()

    def _open_pool(self) -> None:
        """The connections: at most `concurrency` keep-alive connections, opened on the first
        request (a request takes one while it holds a slot, so none ever waits for one)."""
        self._endpoint = Endpoint.of(self.url)
        self._pool_lock = threading.Lock()
        self._pool: Connections | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PanelClient(name={self.name!r}, url={self._scrub(self.url)!r})"

    def __enter__(self) -> PanelClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _connections(self) -> Connections:
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("the panel client is closed")
            if self._pool is None:
                self._pool = Connections(self._endpoint, self.timeout, self.deadline, _HEADERS)
            return self._pool

    # --- reads -------------------------------------------------------------

    def services(self) -> list[Service]:
        """The usable services of the catalog (see `catalog` for the entries left out)."""
        return self.catalog().services

    def catalog(self) -> Catalog:
        """The catalog, checked entry by entry: an entry that cannot be trusted (no or a
        non-positive rate, min above max, a duplicate ID...) is left out and reported, with
        its name and the reason scrubbed of the key; the last fetch's are `refused_services`."""
        payload = self._call("services", {}, write=False)
        with self._parsing("services", payload, write=False):
            catalog = _parse_catalog(payload)
        refused = [RefusedService(r.id, self._scrub(r.name), self._scrub(r.reason)) for r in catalog.refused]
        for entry in refused:
            log.warning(
                "%s: service %s (%s) left out of the catalog: %s",
                self.name or "panel",
                entry.id or "?",
                entry.name,
                entry.reason,
            )
        self.refused_services = refused
        return Catalog(catalog.services, refused)

    def balance(self) -> Balance:
        payload = self._call("balance", {}, write=False)
        with self._parsing("balance", payload, write=False):
            amount = _decimal(payload["balance"])
            if amount is None:
                raise _BadShape
            return Balance(balance=amount, currency=_text(payload.get("currency")))

    def status(self, order_id: str | int) -> OrderStatus:
        oid = _clean_id(order_id)
        payload = self._call("status", {"order": oid}, write=False)
        with self._parsing("status", payload, write=False):
            return _parse_status(oid, payload)

    def statuses(self, order_ids: Iterable[str | int]) -> dict[str, OrderStatus | ItemError]:
        """Status of many orders, 100 per call. Unknown IDs come back as ItemError."""

        def one_batch(batch: list[str]) -> dict[str, OrderStatus | ItemError]:
            payload = self._call("status", {"orders": ",".join(batch)}, write=False)
            with self._parsing("status", payload, write=False):
                if not isinstance(payload, dict):
                    raise _BadShape
                return {oid: _status_item(oid, payload.get(oid)) for oid in batch}

        return self._read_batches(order_ids, one_batch)

    def refill_status(self, refill_id: str | int) -> RefillStatus:
        rid = _clean_id(refill_id)
        payload = self._call("refill_status", {"refill": rid}, write=False)
        with self._parsing("refill_status", payload, write=False):
            status = payload["status"]
            if isinstance(status, dict) and "error" in status:
                raise self._refusal("refill_status", _text(status["error"]))
            if not isinstance(status, str) or not status.strip():
                raise _BadShape
            return RefillStatus(refill_id=rid, status=status.strip())

    def refill_statuses(self, refill_ids: Iterable[str | int]) -> dict[str, RefillStatus | ItemError]:
        def one_batch(batch: list[str]) -> dict[str, RefillStatus | ItemError]:
            payload = self._call("refill_status", {"refills": ",".join(batch)}, write=False)
            with self._parsing("refill_status", payload, write=False):
                found = _items_by_id(payload, "refill")
                return {rid: _refill_status_item(rid, found.get(rid, _MISSING)) for rid in batch}

        return self._read_batches(refill_ids, one_batch)

    # --- writes ------------------------------------------------------------

    def add(
        self, service: str | int, fields: Mapping[str, object], *, go_on: Callable[[], bool] | None = None
    ) -> str:
        """Place one order; returns its ID. List values are sent one item per line. `go_on` is
        asked as each try is about to leave (after its wait for a connection, the rate limit,
        a retry's back-off): False sends nothing more.

        Raises AmbiguousOrder when the request may have reached the panel without a clear answer.
        """
        data = {k: _form_value(v) for k, v in fields.items() if v is not None}
        data["service"] = _clean_id(service)
        payload = self._call("add", data, write=True, go_on=go_on)
        with self._parsing("add", payload, write=True):
            value = payload["order"]
        order_id = _order_id(value)
        if order_id is None:
            text = json.dumps(payload, default=str)[:1000]
            raise self._ambiguous("add", "the reply's order ID does not look like one", text, lingers=False)
        return order_id

    def refill(self, order_id: str | int) -> str:
        """Ask for a refill of one order; returns the refill ID."""
        payload = self._call("refill", {"order": _clean_id(order_id)}, write=True)
        with self._parsing("refill", payload, write=True):
            value = payload["refill"]
            if isinstance(value, dict) and "error" in value:
                raise self._refusal("refill", _text(value["error"]))
            return _parse_id(value)

    def refills(self, order_ids: Iterable[str | int]) -> dict[str, str | ItemError]:
        """Order ID -> refill ID (or ItemError), 100 orders per call."""

        def one_batch(batch: list[str]) -> dict[str, str | ItemError]:
            payload = self._call("refill", {"orders": ",".join(batch)}, write=True)
            with self._parsing("refill", payload, write=True):
                found = _items_by_id(payload, "order")
                return {oid: _refill_item(oid, found.get(oid, _MISSING)) for oid in batch}

        return self._write_batches(order_ids, one_batch)

    def cancel(self, order_ids: Iterable[str | int]) -> dict[str, bool | ItemError]:
        """Order ID -> True when the panel accepted the cancel request (not that money came back)."""

        def one_batch(batch: list[str]) -> dict[str, bool | ItemError]:
            payload = self._call("cancel", {"orders": ",".join(batch)}, write=True)
            with self._parsing("cancel", payload, write=True):
                found = _items_by_id(payload, "order")
                return {oid: _cancel_item(oid, found.get(oid, _MISSING)) for oid in batch}

        return self._write_batches(order_ids, one_batch)

    # --- batching ----------------------------------------------------------

    def _run_batches(self, ids: Iterable[str | int], fn: Callable[[list[str]], dict[str, T]]) -> list[Any]:
        """Run `fn` on each batch of 100, up to `concurrency` at once; each result or its exception."""
        unique = list(dict.fromkeys(_clean_id(i) for i in ids))
        batches = [unique[i : i + BATCH_SIZE] for i in range(0, len(unique), BATCH_SIZE)]

        def guarded(batch: list[str]) -> Any:
            try:
                return fn(batch)
            except PanelError as exc:
                return exc

        if len(batches) <= 1 or self.concurrency == 1:
            return [guarded(b) for b in batches]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
            return list(pool.map(guarded, batches))

    def _read_batches(
        self, ids: Iterable[str | int], fn: Callable[[list[str]], dict[str, T]]
    ) -> dict[str, T]:
        result: dict[str, T] = {}
        for outcome in self._run_batches(ids, fn):
            if isinstance(outcome, PanelError):
                raise outcome
            result.update(outcome)
        return result

    def _write_batches(
        self, ids: Iterable[str | int], fn: Callable[[list[str]], dict[str, T]]
    ) -> dict[str, T | ItemError]:
        """Like `_read_batches`, but a failed batch among successful ones becomes per-ID errors,
        so the results of the batches that did go through are not lost."""
        unique = list(dict.fromkeys(_clean_id(i) for i in ids))
        outcomes = self._run_batches(unique, fn)
        if outcomes and all(isinstance(o, PanelError) for o in outcomes):
            raise outcomes[0]
        result: dict[str, T | ItemError] = {}
        for start, outcome in zip(range(0, len(unique), BATCH_SIZE), outcomes, strict=True):
            if isinstance(outcome, PanelError):
                for oid in unique[start : start + BATCH_SIZE]:
                    result[oid] = ItemError(oid, str(outcome))
            else:
                result.update(outcome)
        return result

    # --- transport ---------------------------------------------------------

    def _call(
        self, action: str, fields: Mapping[str, str], *, write: bool, go_on: Callable[[], bool] | None = None
    ) -> Any:
        started = time.monotonic()
        try:
            return self._attempt(action, fields, write, go_on)
        except PanelUnavailable as exc:
            if not _is_retryable(exc) or self._retry.attempts <= 1:
                raise
            failure = exc
        resume = _Resume(self._attempt, failure, _since(started))
        return self._retrying(resume, action, fields, write, go_on)

    def _log_retry(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        log.info(
            "%s: retry %d after %s, waiting %.2fs",
            self.name or "panel",
            retry_state.attempt_number,
            exc,
            retry_state.upcoming_sleep,
        )

    def _attempt(
        self, action: str, fields: Mapping[str, str], write: bool, go_on: Callable[[], bool] | None = None
    ) -> Any:
        body = self._form(action, fields)
        if self._endpoint.error:
            raise _final(self._unavailable(action, f"invalid panel URL ({self._endpoint.error})"))
        with self._slots:
            if self._limiter is not None:
                self._limiter.wait()
            if go_on is not None and not go_on():  # asked for while it waited for its turn
                raise _final(self._unavailable(action, "not sent: a stop was asked for"))
            pool = self._connections()
            started = time.monotonic()
            try:
                reply = pool.post(body)
            except NoReply as exc:
                raise self._failed(action, exc, write, started) from exc
        if log.isEnabledFor(logging.INFO):
            self._log_reply(action, reply, _since(started))
        return self._interpret(action, reply, write)

    def _log_reply(self, action: str, reply: Reply, seconds: float) -> None:
        # One line per request at INFO (what -v shows), and the exchange at DEBUG.
        line = 'HTTP Request: POST %s "HTTP/1.1 %d %s"'
        log.info(line, self._endpoint.shown, reply.status, reply.reason)
        log.debug("%s %s: HTTP %d in %.3fs", self.name, action, reply.status, seconds)

    def _form(self, action: str, fields: Mapping[str, str]) -> bytes:
        """The request's body, form-encoded (every value is a string already); `key` and
        `action` are always this client's, whatever `fields` holds."""
        parts = [f"{_quoted_name(k)}={quote_plus(v)}" for k, v in fields.items() if k not in _OWN_FIELDS]
        parts.append(self._key_field)
        parts.append(f"action={_quoted_name(action)}")
        return "&".join(parts).encode()

    def _failed(self, action: str, exc: NoReply, write: bool, started: float) -> PanelError:
        """The error for a request that got no reply: surely not sent when it failed while
        connecting (safe to retry, even a write); else it may have reached the panel."""
        log.debug(
            "%s %s: %s while in %s, after %.3fs", self.name, action, exc.kind, exc.phase, _since(started)
        )
        detail = self._snippet(f"{exc.kind}: {exc.reason}" if exc.reason else exc.kind)
        if exc.phase == "connect":
            note = "; nothing was sent" if write else ""
            return self._unavailable(action, f"could not connect ({detail}){note}")
        if exc.kind.endswith("Timeout") and exc.cut:
            what = f"no complete reply within the {self.deadline:g} s deadline"
        else:
            what = f"no reply ({detail})"
        if write:
            return self._ambiguous(action, what)
        return self._unavailable(action, what)

    def _interpret(self, action: str, response: Reply, write: bool) -> Any:
        status = response.status
        text = response.content.decode("utf-8-sig", errors="replace").strip()
        payload = _json(text)
        if 300 <= status < 400:
            location = self._snippet(response.headers.get("location", ""))
            target = f" to {location}" if location else ""
            redirected = (
                f"the panel redirected (HTTP {status}{target}); redirects are not followed, "
                "so the key was not re-sent: check the panel URL"
            )
            if write:  # the panel may have acted on it before redirecting
                raise self._ambiguous(action, redirected, text)
            raise _final(self._unavailable(action, redirected))
        never = _never_reached(status, response.headers, text) if payload is _MISSING else None
        if never is not None:  # the CDN's own page says so: safe to send again, even a write
            raise self._unavailable(
                action, f"HTTP {status}, {never}: the request never reached the panel", text
            )
        if write and _unclear_write_reply(action, status, payload):
            # An ID in the reply is an order (or refill) whatever else the reply says; and any
            # answer but a plain refusal or a 429 came after the panel had the request.
            what = _what_came_back(action, status, payload, text)
            raise self._ambiguous(action, what, text, lingers=_may_still_be_working(status, payload))
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise RateLimited(
                "rate limited (HTTP 429)", panel=self.name, action=action, retry_after=retry_after
            )
        if status >= 500:
            raise self._unavailable(action, f"HTTP {status}", text)
        if payload is _MISSING:
            # Refused before it was processed (a CDN block, a wrong path) or not JSON at all.
            raise self._unavailable(action, _what_came_back(action, status, payload, text), text)
        message = _error_message(payload)
        if message is not None:
            raise self._refusal(action, message)
        if status >= 400:
            raise self._refusal(action, f"HTTP {status}: {text}")
        return payload

    # --- errors ------------------------------------------------------------

    def _snippet(self, text: str) -> str:
        """The start of `text`, whitespace collapsed, the key blanked out (before cutting it)."""
        if self._scrub.spans_words:
            text = self._scrub(" ".join(text.split()))
        else:
            # The key cannot span whitespace: scrubbing word by word finds it all, and only
            # the first words are needed, however long the page.
            words: list[str] = []
            length = 0
            for word in re.finditer(r"\S+", text):
                words.append(self._scrub(word.group()))
                length += len(words[-1]) + 1
                if length > SNIPPET_LENGTH:
                    break
            text = " ".join(words)
        if len(text) > SNIPPET_LENGTH:
            text = text[: SNIPPET_LENGTH - 3] + "..."
        return text

    def _describe(self, exc: Exception) -> str:
        detail = self._snippet(str(exc))
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _unavailable(self, action: str, message: str, text: str = "") -> PanelUnavailable:
        return PanelUnavailable(
            self._scrub(message), panel=self.name, action=action, snippet=self._snippet(text)
        )

    def _ambiguous(self, action: str, what: str, text: str = "", *, lingers: bool = True) -> AmbiguousOrder:
        got = f" (got: {self._snippet(text)})" if text.strip() else ""
        return AmbiguousOrder(
            f"{self._scrub(what)}{got}; the request may have reached the panel and taken effect: "
            "check on the panel before trying again",
            panel=self.name,
            action=action,
            lingers=lingers,
        )

    def _refusal(self, action: str, message: str) -> PanelRefused:
        message = self._scrub(message)
        low = message.lower()
        cls: type[PanelRefused] = PanelRefused
        if any(s in low for s in ("not_enough_funds", "not enough funds", "insufficient", "balance")):
            cls = NotEnoughFunds
        elif "link_duplicate" in low or "active order" in low:
            cls = ActiveOrderExists
        elif "api key" in low or "api_key" in low or "invalid key" in low:
            cls = InvalidKey
        return cls(message, panel=self.name, action=action)

    @contextmanager
    def _parsing(self, action: str, payload: Any, *, write: bool) -> Iterator[None]:
        try:
            yield
        except (_BadShape, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise self._unexpected(action, payload, write) from exc

    def _unexpected(self, action: str, payload: Any, write: bool) -> PanelError:
        text = json.dumps(payload, default=str)[:1000]
        if write:
            return self._ambiguous(action, "unexpected reply", text, lingers=False)
        return self._unavailable(action, "unexpected reply", text)


# --- parsing helpers ----------------------------------------------------------

_MISSING: Any = object()


def _since(started: float) -> float:
    return time.monotonic() - started


def _error_message(payload: Any) -> str | None:
    """The panel's refusal in either dialect, or None when the payload is not an error."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if error not in (None, "", False):
        return _text(error) if not isinstance(error, (dict, list)) else json.dumps(error, default=str)
    status = payload.get("status")
    # {"status": "Error"} alone is a legitimate order/refill status; the error dialect has a message.
    if isinstance(status, str) and status.strip().lower() == "error" and "message" in payload:
        return _text(payload.get("message")) or "error"
    return None


def _json(text: str) -> Any:
    """The reply as JSON (floats as Decimal), or _MISSING when it is empty or not JSON."""
    if not text:
        return _MISSING
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError):
        return _MISSING


# What a write's reply carries when the write took effect: the ID it created, or its outcome.
_RESULT_KEYS = {"add": "order", "refill": "refill", "cancel": "cancel"}


def _carries_result(action: str, payload: Any) -> bool:
    """Whether a write's reply holds an ID (or outcome) of what it did, however odd the rest."""
    if isinstance(payload, list):  # the batch dialect: one result per ID
        return True
    if not isinstance(payload, dict):
        return False
    value = payload.get(_RESULT_KEYS.get(action, "order"))
    if value is None or value is False:
        return False
    # {"refill": {"error": ...}} is a refusal of that refill, not a refill ID.
    return not (isinstance(value, dict) and _error_message(value) is not None)


def _unclear_write_reply(action: str, status: int, payload: Any) -> bool:
    """Whether the reply to a write shows it may have taken effect without saying it clearly.

    Clear answers: a success (2xx with a result and no error), a plain refusal (2xx or 4xx with
    an error and no result), and 429 without a result (not processed: retried). Anything else
    came from the panel after it had the request.
    """
    if _carries_result(action, payload):
        return _error_message(payload) is not None or not 200 <= status < 300
    if status == 429:
        return False
    if payload is _MISSING or status >= 300:
        return not (400 <= status < 500 and _error_message(payload) is not None)
    return False


# Statuses of a proxy (or server) that stopped waiting for the panel's application, or that
# says it is unavailable, while the application may still be working on the request and
# make the order later: a gateway timeout, Heroku's request timeout (503), Cloudflare's 524.
_STOPPED_WAITING = frozenset({408, 503, 504, 524, 598, 599})


def _may_still_be_working(status: int, payload: Any) -> bool:
    """Whether the panel may still make the order after this reply: not when its application
    answered (JSON), nor after a page that says the application ended the request (a 500 or a
    200 error page of its own, a 502 for an application that closed or crashed)."""
    return payload is _MISSING and status in _STOPPED_WAITING


# Cloudflare's own error pages for an origin it never got the request to, by status: the words
# of their title ("panel.example | 522: Connection timed out"). 520 (unknown error) and 524 (a
# timeout occurred) are not here: the origin may have had the request.
_CLOUDFLARE_NOT_REACHED = {
    521: "web server is down",
    522: "connection timed out",
    523: "origin is unreachable",
    525: "ssl handshake failed",
    526: "invalid ssl certificate",
}
_CHALLENGE_TITLES = frozenset({"just a moment...", "just a moment…"})
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def _page_title(text: str) -> str:
    """The title of an HTML page, unescaped, whitespace collapsed, in lower case ("" if none)."""
    match = _TITLE.search(text, 0, 20000)
    return " ".join(html.unescape(match.group(1)).split()).lower() if match else ""


def _never_reached(status: int, headers: Headers, text: str) -> str | None:
    """What a page of Cloudflare's own says when the panel never saw the request, else None.

    Only a reply that carries Cloudflare's headers (`server: cloudflare` and a `cf-ray`) can be
    Cloudflare's own; then an error page must have the title of that status, and a challenge
    be marked `cf-mitigated: challenge` or be a 403/503 "Just a moment..." page. The status
    alone never says it: an origin behind Cloudflare, or another server, may send a 522 too.
    """
    if status < 400 or status == 429:  # a 429 is a rate limit, with its Retry-After
        return None
    if headers.get("server", "").strip().lower() != "cloudflare" or "cf-ray" not in headers:
        return None
    title = _page_title(text)
    words = _CLOUDFLARE_NOT_REACHED.get(status)
    if words is not None:
        return f"Cloudflare's {status} page ({words})" if f"{status}: {words}" in title else None
    challenged = headers.get("cf-mitigated", "").strip().lower() == "challenge"
    if challenged or (status in (403, 503) and title in _CHALLENGE_TITLES):
        return "a Cloudflare challenge page (a check for browsers)"
    return None


_RESULT_NAMES = {"add": "an order ID", "refill": "a refill ID"}


def _what_came_back(action: str, status: int, payload: Any, text: str) -> str:
    """A few words on a reply that is not a clear answer."""
    if _carries_result(action, payload):
        result = _RESULT_NAMES.get(action, "a result")
        if _error_message(payload) is not None:
            return f"the reply has {result} and an error"
        return f"HTTP {status} with {result}"
    if payload is not _MISSING:
        return f"HTTP {status} with a reply that is not a clear answer"
    if not text:
        what = "empty reply"
    elif text.lstrip().startswith("<"):
        what = "an HTML page instead of JSON"
    else:
        what = "a reply that is not JSON"
    return what if 200 <= status < 300 else f"HTTP {status}, {what}"


def _form_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(_form_value(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return str(value)


def _clean_id(value: object) -> str:
    text = _form_value(value).strip()
    if not text:
        raise ValueError("empty ID")
    return text


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _parse_id(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise _BadShape
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _BadShape


def _order_id(value: Any) -> str | None:
    """The order ID in `value` (a positive whole number, maybe as a string), or None."""
    try:
        text = _parse_id(value)
    except _BadShape:
        return None
    return text if _ORDER_ID.fullmatch(text) else None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if "," in text:
            text = text.replace(",", "") if "." in text else text.replace(",", ".")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise _BadShape from None
    else:
        raise _BadShape
    if not result.is_finite():
        raise _BadShape
    return result


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _decimal(value.replace(",", "") if isinstance(value, str) else value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise _BadShape
    return int(number)


def _optional_int(value: Any) -> int | None:
    try:
        return _int(value)
    except _BadShape:
        return None


def _optional_decimal(value: Any) -> Decimal | None:
    try:
        return _decimal(value)
    except _BadShape:
        return None


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, Decimal)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "y", "on"):
            return True
        if text in ("false", "0", "no", "n", "off", ""):
            return False
    return None


class _Untrusted(Exception):
    """A catalog entry that cannot be used; the message says why."""


def _parse_catalog(payload: Any) -> Catalog:
    """The `services` reply, entry by entry; every copy of a duplicated ID is refused."""
    if not isinstance(payload, list):
        raise _BadShape
    entries = [_service_or_refusal(item) for item in payload]
    counts = Counter(entry.id for entry in entries if entry.id)
    services: list[Service] = []
    refused: list[RefusedService] = []
    for entry in entries:
        if entry.id and counts[entry.id] > 1:
            reason = f"the catalog lists service ID {entry.id} {counts[entry.id]} times"
            refused.append(RefusedService(entry.id, entry.name, reason))
        elif isinstance(entry, Service):
            services.append(entry)
        else:
            refused.append(entry)
    return Catalog(services, refused)


def _service_or_refusal(item: Any) -> Service | RefusedService:
    if not isinstance(item, dict):
        return RefusedService("", "", f"not a service object: {item!r}"[:SNIPPET_LENGTH])
    name = _text(item.get("name"))
    try:
        sid = _parse_id(item.get("service"))
    except _BadShape:
        return RefusedService("", name, "no service ID")
    try:
        return _parse_service(sid, name, item)
    except _Untrusted as exc:
        return RefusedService(sid, name, str(exc))


def _parse_service(sid: str, name: str, item: dict[str, Any]) -> Service:
    rate = _rate(item.get("rate"))
    lo, hi = _limit(item, "min"), _limit(item, "max")
    if lo > hi:
        raise _Untrusted(f"min {lo} is above max {hi}")
    return Service(
        id=sid,
        name=name,
        type=_text(item.get("type")) or "Default",
        category=_text(item.get("category")),
        rate=rate,
        min=lo,
        max=hi,
        refill=bool(_bool(item.get("refill"))),
        cancel=bool(_bool(item.get("cancel"))),
        dripfeed=_bool(item.get("dripfeed")),
    )


# "1,500" is 1.5 to some and 1500 to others; "1,500.25" and "1,5" can be read only one way.
_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?")
_ONE_GROUP = re.compile(r"[1-9][0-9]{0,2},[0-9]{3}")
_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]+")


def _rate(value: Any) -> Decimal:
    """A service's rate: a positive number that can be read only one way."""
    if isinstance(value, str):
        value = _rate_text(value)
    try:
        rate = _decimal(value)
    except _BadShape:
        raise _Untrusted(f"rate {value!r} is not a number") from None
    if rate is None:
        raise _Untrusted("no rate")
    if rate <= 0:
        raise _Untrusted(f"rate {rate} is not positive")
    return rate


def _rate_text(value: str) -> str:
    text = value.strip()
    if "," not in text:
        return text
    if _GROUPED.fullmatch(text) and ("." in text or text.count(",") > 1):
        return text.replace(",", "")
    if _ONE_GROUP.fullmatch(text) or "." in text:
        raise _Untrusted(f"rate {value!r} is ambiguous: is the comma a thousands or a decimal separator?")
    if _DECIMAL_COMMA.fullmatch(text):
        return text.replace(",", ".")
    raise _Untrusted(f"rate {value!r} is not a number")


def _limit(item: dict[str, Any], field: str) -> int:
    """A service's min or max: a whole number, not negative."""
    try:
        number = _int(item.get(field))
    except _BadShape:
        raise _Untrusted(f"{field} {item.get(field)!r} is not a whole number") from None
    if number is None:
        raise _Untrusted(f"no {field}")
    if number < 0:
        raise _Untrusted(f"{field} {number} is negative")
    return number


def _parse_status(order_id: str, item: Any) -> OrderStatus:
    if not isinstance(item, dict):
        raise _BadShape
    status = item.get("status")
    if not isinstance(status, str) or not status.strip():
        raise _BadShape
    currency = _text(item.get("currency"))
    return OrderStatus(
        order_id=order_id,
        status=status.strip(),
        charge=_optional_decimal(item.get("charge")),
        start_count=_optional_int(item.get("start_count")),
        remains=_optional_int(item.get("remains")),
        currency=currency or None,
    )


def _item_error(item_id: str, value: Any) -> ItemError | None:
    """The per-item error in `value` (`{"error": ...}`), or None."""
    if isinstance(value, dict) and value.get("error") not in (None, ""):
        return ItemError(item_id, _text(value["error"]))
    return None


def _missing(item_id: str) -> ItemError:
    return ItemError(item_id, "missing from the panel's reply")


def _status_item(order_id: str, value: Any) -> OrderStatus | ItemError:
    if value is None:
        return _missing(order_id)
    if isinstance(value, str):  # the bare-string dialect of a per-item error
        return ItemError(order_id, value.strip())
    error = _item_error(order_id, value)
    if error is not None:
        return error
    try:
        return _parse_status(order_id, value)
    except _BadShape:
        return ItemError(order_id, f"unexpected reply: {json.dumps(value, default=str)[:SNIPPET_LENGTH]}")


def _items_by_id(payload: Any, id_key: str) -> dict[str, Any]:
    """A batch reply (a list of objects that name their ID) as ID -> object."""
    if not isinstance(payload, list):
        raise _BadShape
    found: dict[str, Any] = {}
    for item in payload:
        if isinstance(item, dict) and id_key in item:
            found[_parse_id(item[id_key])] = item
    return found


def _refill_item(order_id: str, item: Any) -> str | ItemError:
    if item is _MISSING:
        return _missing(order_id)
    if "refill" not in item:
        return _item_error(order_id, item) or ItemError(order_id, "no refill ID in the panel's reply")
    value = item["refill"]
    error = _item_error(order_id, value)
    if error is not None:
        return error
    if isinstance(value, str) and not _PLAIN_ID.fullmatch(value.strip()):
        return ItemError(order_id, value.strip())
    try:
        return _parse_id(value)
    except _BadShape:
        return ItemError(order_id, f"unexpected refill value: {value!r}"[:SNIPPET_LENGTH])


def _cancel_item(order_id: str, item: Any) -> bool | ItemError:
    if item is _MISSING:
        return _missing(order_id)
    if "cancel" not in item:
        return _item_error(order_id, item) or ItemError(order_id, "no cancel result in the panel's reply")
    value = item["cancel"]
    error = _item_error(order_id, value)
    if error is not None:
        return error
    accepted = _bool(value)
    if accepted is None:
        return ItemError(order_id, _text(value)[:SNIPPET_LENGTH] or "unexpected cancel value")
    return accepted


def _refill_status_item(refill_id: str, item: Any) -> RefillStatus | ItemError:
    if item is _MISSING:
        return _missing(refill_id)
    if "status" not in item:
        return _item_error(refill_id, item) or ItemError(refill_id, "no status in the panel's reply")
    value = item["status"]
    error = _item_error(refill_id, value)
    if error is not None:
        return error
    if not isinstance(value, str) or not value.strip():
        return ItemError(refill_id, f"unexpected status: {value!r}"[:SNIPPET_LENGTH])
    text = value.strip()
    # Some panels put a bare error message where the status goes.
    if text.lower() not in _KNOWN_REFILL_STATUSES and _ERRORISH.search(text):
        return ItemError(refill_id, text)
    return RefillStatus(refill_id=refill_id, status=text)


# --- the configured panels -------------------------------------------------------


ClientFactory = Callable[[PanelConfig], PanelClient]


def make_client(panel: PanelConfig) -> PanelClient:
    return PanelClient(
        panel.url,
        panel.key,
        name=panel.name,
        concurrency=panel.concurrency,
        rate_limit=panel.rate_limit,
        timeout=Timeouts(connect=panel.connect_timeout, read=panel.read_timeout),
        retry=RetryPolicy(attempts=panel.attempts),
    )


class Panels:
    """The configured panels' clients and catalogs, opened on first use and shared by passes."""

    def __init__(self, config: Config, factory: ClientFactory | None = None) -> None:
        self.config = config
        self._factory = factory
        self._clients: dict[str, PanelClient] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> PanelClient:
        with self._lock:
            if name not in self._clients:
                factory = self._factory or make_client  # looked up now, so tests can patch it
                self._clients[name] = factory(self.config.panel(name))
            return self._clients[name]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> Panels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def each(self, names: Iterable[str], work: Callable[[str], Any]) -> dict[str, Any | PanelError]:
        """Run `work(name)` for every panel in parallel; a panel's error is its result."""
        names = list(dict.fromkeys(names))
        results: dict[str, Any | PanelError] = {}
        if not names:
            return results

        def guarded(name: str) -> Any | PanelError:
            try:
                return work(name)
            except PanelError as error:
                return error

        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            for name, result in zip(names, pool.map(guarded, names), strict=False):
                results[name] = result
        return results
