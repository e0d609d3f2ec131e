"""Whether an unclear answer to an `add` leaves the panel possibly still working on it (and so
still able to make the order later): what the order-ID search waits `probe_grace` for."""

from __future__ import annotations

import pytest

from sheetorders.errors import AmbiguousOrder
from sheetorders.panel import PanelClient, RetryPolicy
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY

PAGE = "<html><head><title>{status}</title></head><body>{status}</body></html>"


@pytest.fixture
def panel():
    with PanelServer(key=TEST_KEY) as server:
        yield server


def unclear_add(panel: PanelServer) -> AmbiguousOrder:
    with (
        PanelClient(panel.url, TEST_KEY, retry=RetryPolicy(attempts=1)) as client,
        pytest.raises(AmbiguousOrder) as raised,
    ):
        client.add(2, {"link": "https://instagram.com/p/lingers", "quantity": 100})
    return raised.value


@pytest.mark.parametrize("status", [503, 504, 524])
def test_a_proxy_that_stopped_waiting_may_leave_the_panel_working(panel, status):
    panel.faults.queue_processed(status=status, body=PAGE.format(status=status), actions=["add"])
    assert unclear_add(panel).lingers


@pytest.mark.parametrize("status", [500, 502])
def test_a_page_for_a_request_the_application_ended_does_not(panel, status):
    panel.faults.queue_processed(status=status, body=PAGE.format(status=status), actions=["add"])
    assert not unclear_add(panel).lingers


def test_the_panels_own_answer_without_an_id_does_not(panel):
    panel.faults.queue_processed(status=500, body={"error": "Database error"}, actions=["add"])
    assert not unclear_add(panel).lingers


@pytest.mark.parametrize("kind", ["drop", "late"])
def test_a_lost_connection_may_leave_the_panel_working(panel, kind):
    panel.faults.queue(kind, actions=["add"])
    assert unclear_add(panel).lingers
