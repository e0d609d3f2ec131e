"""The panel's catalog is checked service by service: a malformed one is left out and reported,
and the rest stay usable."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from sheetorders.errors import PanelUnavailable
from sheetorders.models import Catalog, RefusedService
from sheetorders.panel import PanelClient
from sheetorders.testing.clients import SECRET_KEY as KEY
from sheetorders.testing.panel_server import PanelServer, default_catalog


def service(sid: Any = "900", **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "service": sid,
        "name": f"Service {sid}",
        "type": "Default",
        "category": "Tests",
        "rate": "1.20",
        "min": "10",
        "max": "1000",
        "refill": False,
        "cancel": False,
    }
    item.update(changes)
    return item


def test_one_null_rate_does_not_reject_the_whole_catalog(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply([*default_catalog(), service("900", rate=None)], actions={"services"})
    services = client.services()
    assert len(services) == 20 and "900" not in {s.id for s in services}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"rate": "-1"}, "not positive"),
        ({"rate": "0"}, "not positive"),
        ({"rate": 0}, "not positive"),
        ({"rate": "0.00"}, "not positive"),
        ({"rate": "1,500"}, "ambiguous"),
        ({"rate": "12,000"}, "ambiguous"),
        ({"rate": "1.500,25"}, "ambiguous"),
        ({"rate": None}, "no rate"),
        ({"rate": ""}, "no rate"),
        ({"rate": "cheap"}, "not a number"),
        ({"rate": "NaN"}, "not a number"),
        ({"rate": [1]}, "not a number"),
        ({"min": None}, "no min"),
        ({"max": None}, "no max"),
        ({"min": "ten"}, "min"),
        ({"max": "1.5"}, "max"),
        ({"min": "-5"}, "negative"),
        ({"min": "500", "max": "100"}, "min 500 is above max 100"),
    ],
)
def test_a_malformed_service_is_left_out_and_reported(
    server: PanelServer, client: PanelClient, changes: dict[str, Any], reason: str
) -> None:
    server.faults.queue_reply([service("1"), service("900", **changes), service("2")], actions={"services"})
    catalog = client.catalog()
    assert isinstance(catalog, Catalog)
    assert [s.id for s in catalog.services] == ["1", "2"]
    assert len(catalog.refused) == 1
    refused = catalog.refused[0]
    assert (refused.id, refused.name) == ("900", "Service 900")
    assert reason in refused.reason


def test_duplicate_service_ids_refuse_every_copy(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply(
        [service("1"), service(5, name="A"), service("5 ", name="B", rate="x"), service("2")],
        actions={"services"},
    )
    catalog = client.catalog()
    assert [s.id for s in catalog.services] == ["1", "2"]
    assert sorted((r.id, r.name) for r in catalog.refused) == [("5", "A"), ("5", "B")]
    assert all("2 times" in r.reason for r in catalog.refused)


def test_items_without_an_id_or_not_objects_are_refused(server: PanelServer, client: PanelClient) -> None:
    no_id = service("1")
    del no_id["service"]
    server.faults.queue_reply([no_id, "junk", service("2"), service(None)], actions={"services"})
    catalog = client.catalog()
    assert [s.id for s in catalog.services] == ["2"]
    assert [(r.id, r.reason) for r in catalog.refused] == [
        ("", "no service ID"),
        ("", "not a service object: 'junk'"),
        ("", "no service ID"),
    ]
    assert catalog.refused[0].name == "Service 1"


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("1,5", "1.5"),
        ("0,500", "0.500"),
        ("1,500.25", "1500.25"),
        ("12,345,678", "12345678"),
        (" 2.40 ", "2.40"),
    ],
)
def test_rates_that_can_be_read_only_one_way_are_kept(
    server: PanelServer, client: PanelClient, rate: str, expected: str
) -> None:
    server.faults.queue_reply([service("1", rate=rate)], actions={"services"})
    (only,) = client.services()
    assert only.rate == Decimal(expected)


def test_refusals_are_logged_without_the_key_and_kept_on_the_client(
    server: PanelServer, client: PanelClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sheetorders.panel")
    server.faults.queue_reply(
        [service("1"), service("9", name=f"leak {KEY}", rate=None)], actions={"services"}
    )
    assert [s.id for s in client.services()] == ["1"]
    assert client.refused_services == [RefusedService("9", "leak ***", "no rate")]
    assert any("9" in r.getMessage() and "no rate" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text
    client.services()  # the panel's own catalog: nothing refused
    assert client.refused_services == []


def test_a_reply_that_is_not_a_list_is_still_unexpected(server: PanelServer, client: PanelClient) -> None:
    server.faults.queue_reply({"services": []}, actions={"services"})
    with pytest.raises(PanelUnavailable, match="unexpected reply"):
        client.catalog()
