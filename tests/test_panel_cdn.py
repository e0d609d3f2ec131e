"""What a CDN's page in front of the panel says about a request that could cost money.

The recorded replies in tests/data/cdn are replayed by the local panel, headers and all. Those
named `not-reached--` come from Cloudflare's edge when the panel's application never saw the
request: a write answered so is safe to send again (retried, then PanelUnavailable). Those named
`ambiguous--` may come after the panel had the request: a write answered so is AmbiguousOrder
and is never sent again.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import urllib3

from sheetorders.errors import AmbiguousOrder, PanelUnavailable, RateLimited
from sheetorders.panel import PanelClient, RetryPolicy
from sheetorders.testing.clients import SECRET_KEY as KEY
from sheetorders.testing.clients import Sleeps, add_order
from sheetorders.testing.panel_server import PanelServer, RecordedReply

SAMPLES = Path(__file__).parent / "data" / "cdn"
NOT_REACHED = sorted(SAMPLES.glob("not-reached--*.http"))
AMBIGUOUS = sorted(SAMPLES.glob("ambiguous--*.http"))
CHALLENGES = [p for p in NOT_REACHED if "challenge" in p.name]


def ids(paths: list[Path]) -> list[str]:
    return [p.stem.split("--", 1)[1] for p in paths]


def test_the_samples_are_replayed_as_recorded(server: PanelServer) -> None:
    assert len(NOT_REACHED) == 8 and len(AMBIGUOUS) == 8
    sample = SAMPLES / "not-reached--cloudflare-522-connection-timed-out.http"
    recorded = RecordedReply.parse(sample.read_bytes())
    assert (recorded.status, recorded.reason) == (522, "Origin Connection Time-out")
    server.faults.queue_recorded(sample)
    reply = urllib3.PoolManager(retries=False).request("POST", server.url, fields={"action": "balance"})
    assert reply.status == 522 and reply.data == recorded.body
    assert reply.headers["server"] == "cloudflare" and reply.headers["cf-ray"] == "8a1f0c41ce7b2a6d-AMS"
    assert "Transfer-Encoding" not in reply.headers and reply.headers["Content-Length"] == str(
        len(reply.data)
    )


# --- the panel never saw it: sent again ---------------------------------------------------


@pytest.mark.parametrize("sample", NOT_REACHED, ids=ids(NOT_REACHED))
def test_an_add_the_cdn_says_never_reached_the_panel_is_sent_again(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, sample: Path
) -> None:
    server.faults.queue_recorded(sample, actions={"add"})
    assert add_order(client) == "10001"
    assert server.ledger.calls["add"] == 2 and list(server.ledger.orders) == ["10001"]
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("sample", NOT_REACHED, ids=ids(NOT_REACHED))
def test_an_add_that_never_reaches_the_panel_is_unavailable_not_ambiguous(
    server: PanelServer, sleeps: Sleeps, sample: Path
) -> None:
    server.faults.queue_recorded(sample, count=3, actions={"add"})
    with (
        PanelClient(server.url, KEY, name="test", sleep=sleeps, retry=RetryPolicy(attempts=3)) as client,
        pytest.raises(PanelUnavailable) as down,
    ):
        add_order(client)
    assert not isinstance(down.value, AmbiguousOrder)
    if isinstance(down.value, RateLimited):
        assert down.value.retry_after == 2.0
    else:
        assert "the request never reached the panel" in str(down.value)
    assert server.ledger.calls["add"] == 3 and server.ledger.orders == {}
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize("sample", CHALLENGES, ids=ids(CHALLENGES))
def test_a_challenge_page_names_itself(server: PanelServer, sleeps: Sleeps, sample: Path) -> None:
    server.faults.queue_recorded(sample)
    with (
        PanelClient(server.url, KEY, sleep=sleeps, retry=RetryPolicy(attempts=1)) as client,
        pytest.raises(PanelUnavailable, match="a Cloudflare challenge page") as down,
    ):
        add_order(client)
    assert not isinstance(down.value, AmbiguousOrder)


def test_refill_and_cancel_the_cdn_says_never_reached_the_panel_are_sent_again(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    done = add_order(client)
    server.advance(3600)
    running = add_order(client, "https://x.com/b")
    page = SAMPLES / "not-reached--cloudflare-521-web-server-down.http"
    server.faults.queue_recorded(page, actions={"refill"})
    server.faults.queue_recorded(page, actions={"cancel"})
    assert client.refill(done) == "501"
    assert client.cancel([running]) == {running: True}
    assert server.ledger.calls["refill"] == 2 and server.ledger.calls["cancel"] == 2
    assert len(server.ledger.refills) == 1 and len(sleeps.waits) == 2


# --- the panel may have had it: never sent again -------------------------------------------


@pytest.mark.parametrize("processed", [False, True], ids=["not processed", "processed"])
@pytest.mark.parametrize("sample", AMBIGUOUS, ids=ids(AMBIGUOUS))
def test_an_add_answered_by_a_page_that_leaves_it_open_is_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, sample: Path, processed: bool
) -> None:
    server.faults.queue_recorded(sample, processed=processed, actions={"add"})
    with pytest.raises(AmbiguousOrder) as ambiguous:
        add_order(client)
    assert "may have reached the panel" in str(ambiguous.value)
    assert server.ledger.calls["add"] == 1 and len(server.ledger.orders) == int(processed)
    assert sleeps.waits == []


def test_a_cloudflare_522_page_with_an_order_id_in_it_is_ambiguous(
    server: PanelServer, client: PanelClient, sleeps: Sleeps
) -> None:
    page = RecordedReply.parse(
        (SAMPLES / "not-reached--cloudflare-522-connection-timed-out.http").read_bytes()
    )
    server.faults.queue_recorded(RecordedReply(522, page.reason, page.headers, b'{"order": 10001}', True))
    with pytest.raises(AmbiguousOrder, match="10001"):
        add_order(client)
    assert server.ledger.calls["add"] == 1 and sleeps.waits == []


@pytest.mark.parametrize(
    ("sample", "status", "drop"),
    [
        ("cloudflare-521-web-server-down", 521, "server"),
        ("cloudflare-521-web-server-down", 521, "cf-ray"),
        ("cloudflare-521-web-server-down", 522, None),
        ("cloudflare-challenge-managed-403", 200, None),
    ],
    ids=["no server: cloudflare", "no cf-ray", "a 522 with the 521 page", "a challenge with HTTP 200"],
)
def test_a_page_short_of_any_of_cloudflare_s_marks_is_ambiguous(
    server: PanelServer, client: PanelClient, sample: str, status: int, drop: str | None
) -> None:
    page = RecordedReply.parse((SAMPLES / f"not-reached--{sample}.http").read_bytes())
    headers = tuple((name, value) for name, value in page.headers if name.lower() != drop)
    server.faults.queue_recorded(RecordedReply(status, page.reason, headers, page.body))
    with pytest.raises(AmbiguousOrder):
        add_order(client)
    assert server.ledger.calls["add"] == 1


# --- reads: retried whatever the page ------------------------------------------------------


@pytest.mark.parametrize("sample", NOT_REACHED + AMBIGUOUS, ids=ids(NOT_REACHED + AMBIGUOUS))
def test_a_read_answered_by_a_cdn_page_is_retried(
    server: PanelServer, client: PanelClient, sleeps: Sleeps, sample: Path
) -> None:
    server.faults.queue_recorded(sample, actions={"balance"})
    assert client.balance().balance == Decimal(1000)
    assert server.ledger.calls["balance"] == 2 and len(sleeps.waits) == 1
