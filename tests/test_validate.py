from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from sheetorders.cells import cell_text
from sheetorders.models import Service
from sheetorders.resources import load_schema
from sheetorders.validate import (
    SERVICE_TYPES,
    OrderRequest,
    RowProblem,
    _schema_errors,
    estimate_cost,
    is_blank_row,
    parse_whole_number,
    same_target_key,
    schema_path,
    type_key,
    type_schema,
    validate_row,
)

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "orders"
LINK = "https://instagram.com/p/abc"


def service(
    id: int, type: str, name: str, *, rate: str = "0.9", min: int = 50, max: int = 10000, dripfeed=None
) -> Service:
    return Service(str(id), name, type, "Instagram", Decimal(rate), min, max, False, False, dripfeed)


SERVICES = [
    service(1, "Default", "Instagram Followers", dripfeed=True),
    service(2, "Default", "Instagram Likes", dripfeed=False),
    service(3, "Package", "Starter pack", rate="12.5", min=1, max=1),
    service(4, "SEO", "Search traffic", min=100),
    service(5, "Custom Comments", "Custom comments", rate="20", min=2, max=5),
    service(6, "Custom Comments Package", "Comment pack", rate="7.25", min=1, max=1),
    service(7, "Mentions", "Mentions"),
    service(8, "Mentions with Hashtags", "Mentions + hashtags"),
    service(9, "Mentions Custom List", "Mention these", rate="3", min=2, max=3),
    service(10, "Mentions Hashtag", "Mentions hashtag"),
    service(11, "Mentions User Followers", "Mentions followers"),
    service(12, "Mentions Media Likers", "Mentions likers"),
    service(13, "Comment Likes", "Comment likes"),
    service(14, "Comment Replies", "Comment replies", rate="10", min=1, max=10),
    service(15, "Poll", "Poll votes"),
    service(16, "Invites from Groups", "Group invites"),
    service(17, "Subscriptions", "Auto likes", rate="1.5", min=50, max=1000),
    service(18, "Web Traffic", "Website visits", rate="0.05", min=100, max=100000),
    service(19, "Brand New Type", "Something new"),
]
CATALOGS = {"main": {s.id: s for s in SERVICES}, "backup": {"1": service(1, "Default", "Backup followers")}}


def check(cells: dict[str, object], row: int = 14, panel: str = "main") -> OrderRequest | list[RowProblem]:
    return validate_row(row, cells, CATALOGS, panel)


def accepted(cells: dict[str, object]) -> OrderRequest:
    result = check(cells)
    assert isinstance(result, OrderRequest), [str(p) for p in result]
    return result


def problems(cells: dict[str, object], row: int = 14) -> list[str]:
    result = check(cells, row)
    assert isinstance(result, list), result
    return [str(p) for p in result]


# --- schemas -------------------------------------------------------------------------------


def test_one_valid_schema_per_reference_type():
    files = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert files == {type_key(t) for t in SERVICE_TYPES}
    assert len(SERVICE_TYPES) == 17
    for service_type in SERVICE_TYPES:
        path = schema_path(service_type)
        assert path is not None
        schema = load_schema(path)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] and schema["description"]
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        for name, sub in schema["properties"].items():
            assert sub["title"] and sub["description"], name
    assert schema_path("Brand New Type") is None


@pytest.mark.parametrize("service_type", [*SERVICE_TYPES, "Brand New Type"])
def test_split_schema_check_agrees_with_whole_schema(service_type):
    key = type_key(service_type) if schema_path(service_type) else None
    compiled = type_schema(key)
    assert compiled.split
    everything = {
        "link": LINK,
        "quantity": 100,
        "runs": 2,
        "interval": 5,
        "comments": ["a"],
        "usernames": ["a"],
        "hashtags": ["#a"],
        "hashtag": "a",
        "username": "a",
        "media": LINK,
        "keywords": ["a"],
        "answer_number": 1,
        "groups": ["g"],
        "min": 1,
        "max": 2,
        "posts": 1,
        "old_posts": 1,
        "delay": 0,
        "expiry": "01/02/2027",
        "country": "US",
        "device": "1",
        "type_of_traffic": "1",
        "google_keyword": "k",
        "referring_url": LINK,
    }
    allowed = set(compiled.schema["properties"])
    own = {k: v for k, v in everything.items() if k in allowed}
    broken = {k: (0 if isinstance(v, int) else [] if isinstance(v, list) else "x") for k, v in own.items()}
    candidates = [own, {**own, "comments": ["a"], "min": 1}, {**own, "runs": 3}, broken, {}]
    candidates += [{k: v for k, v in own.items() if k != name} for name in own]
    for instance in candidates:
        whole = sorted(error.validator for error in compiled.whole.iter_errors(instance))
        split = sorted(error.validator for _, error in _schema_errors(key, instance))
        assert whole == split, instance


def test_schema_files_are_plain_json():
    for path in SCHEMA_DIR.glob("*.schema.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["type"] == "object"


# --- every type accepted -------------------------------------------------------------------

VALID_ROWS = [
    pytest.param(
        {"service": 1, "link": LINK, "quantity": 100}, {"link": LINK, "quantity": 100}, 100, id="default"
    ),
    pytest.param(
        {"service": 1, "link": LINK, "quantity": 100, "runs": 5, "interval": 30},
        {"link": LINK, "quantity": 100, "runs": 5, "interval": 30},
        100,
        id="default-dripfeed",
    ),
    pytest.param({"service": 3, "link": LINK}, {"link": LINK}, None, id="package"),
    pytest.param(
        {"service": 4, "link": LINK, "quantity": 500, "keywords": "buy shoes\n cheap shoes \n\n"},
        {"link": LINK, "quantity": 500, "keywords": "buy shoes\ncheap shoes"},
        500,
        id="seo",
    ),
    pytest.param(
        {"service": 5, "link": LINK, "comments": "Nice!\r\nGreat shot\n\n  Wow  "},
        {"link": LINK, "comments": "Nice!\nGreat shot\nWow"},
        3,
        id="custom-comments",
    ),
    pytest.param(
        {"service": 6, "link": LINK, "comments": "one\ntwo"},
        {"link": LINK, "comments": "one\ntwo"},
        None,
        id="custom-comments-package",
    ),
    pytest.param(
        {"service": 7, "link": LINK, "quantity": 100, "usernames": "alice\nbob"},
        {"link": LINK, "quantity": 100, "usernames": "alice\nbob"},
        100,
        id="mentions",
    ),
    pytest.param(
        {"service": 8, "link": LINK, "quantity": 100, "usernames": "alice", "hashtags": "#a\n#b"},
        {"link": LINK, "quantity": 100, "usernames": "alice", "hashtags": "#a\n#b"},
        100,
        id="mentions-with-hashtags",
    ),
    pytest.param(
        {"service": 9, "link": LINK, "usernames": "alice\nbob\ncarol"},
        {"link": LINK, "usernames": "alice\nbob\ncarol"},
        3,
        id="mentions-custom-list",
    ),
    pytest.param(
        {"service": 10, "link": LINK, "quantity": 100, "hashtag": "summer"},
        {"link": LINK, "quantity": 100, "hashtag": "summer"},
        100,
        id="mentions-hashtag",
    ),
    pytest.param(
        {"service": 11, "link": LINK, "quantity": 100, "username": "natgeo"},
        {"link": LINK, "quantity": 100, "username": "natgeo"},
        100,
        id="mentions-user-followers",
    ),
    pytest.param(
        {"service": 12, "link": LINK, "quantity": 100, "media": "https://instagram.com/p/xyz"},
        {"link": LINK, "quantity": 100, "media": "https://instagram.com/p/xyz"},
        100,
        id="mentions-media-likers",
    ),
    pytest.param(
        {"service": 13, "link": LINK, "quantity": 100, "username": "author"},
        {"link": LINK, "quantity": 100, "username": "author"},
        100,
        id="comment-likes",
    ),
    pytest.param(
        {"service": 14, "link": LINK, "username": "author", "comments": "thanks\nagreed"},
        {"link": LINK, "comments": "thanks\nagreed", "username": "author"},
        2,
        id="comment-replies",
    ),
    pytest.param(
        {"service": 15, "link": LINK, "quantity": 100, "answer_number": "2"},
        {"link": LINK, "quantity": 100, "answer_number": 2},
        100,
        id="poll",
    ),
    pytest.param(
        {"service": 16, "link": LINK, "quantity": 100, "groups": "group1\ngroup2"},
        {"link": LINK, "quantity": 100, "groups": "group1\ngroup2"},
        100,
        id="invites-from-groups",
    ),
    pytest.param(
        {"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": 0},
        {"username": "natgeo", "min": 100, "max": 200, "delay": 0},
        None,
        id="subscriptions",
    ),
    pytest.param(
        {
            "service": 17,
            "username": "natgeo",
            "min": "100",
            "max": 200.0,
            "delay": 30,
            "posts": 10,
            "old_posts": 2,
            "expiry": "1/2/2027",
        },
        {
            "username": "natgeo",
            "min": 100,
            "max": 200,
            "posts": 10,
            "old_posts": 2,
            "delay": 30,
            "expiry": "01/02/2027",
        },
        None,
        id="subscriptions-full",
    ),
    pytest.param(
        {
            "service": 17,
            "username": "natgeo",
            "min": 100,
            "max": 200,
            "delay": 0,
            "expiry": datetime(2027, 3, 9),
        },
        {"username": "natgeo", "min": 100, "max": 200, "delay": 0, "expiry": "09/03/2027"},
        None,
        id="subscriptions-expiry-date-cell",
    ),
    pytest.param(
        {"service": 18, "link": LINK, "quantity": 1000, "country": "US", "device": 1, "type_of_traffic": "2"},
        {"link": LINK, "quantity": 1000, "country": "US", "device": "1", "type_of_traffic": "2"},
        1000,
        id="web-traffic",
    ),
    pytest.param(
        {
            "service": 18,
            "link": LINK,
            "quantity": 1000,
            "country": "US",
            "device": "Mobile",
            "type_of_traffic": "Referrer",
            "google_keyword": "shoes",
            "referring_url": "https://google.com/",
            "runs": 2,
            "interval": 60,
        },
        {
            "link": LINK,
            "quantity": 1000,
            "runs": 2,
            "interval": 60,
            "country": "US",
            "device": "Mobile",
            "type_of_traffic": "Referrer",
            "google_keyword": "shoes",
            "referring_url": "https://google.com/",
        },
        1000,
        id="web-traffic-full",
    ),
]


@pytest.mark.parametrize(("cells", "fields", "quantity"), VALID_ROWS)
def test_every_type_accepted(cells, fields, quantity):
    order = accepted(cells)
    assert order.fields == fields
    assert list(order.fields) == list(fields)  # the order of ORDER_FIELDS
    assert order.quantity == quantity
    assert order.row == 14
    assert order.panel == "main"
    assert order.service is CATALOGS["main"][str(cells["service"])]


def test_every_reference_type_has_a_valid_row():
    covered = {CATALOGS["main"][str(p.values[0]["service"])].type for p in VALID_ROWS}
    assert covered == set(SERVICE_TYPES)


def test_whitespace_and_whole_floats_accepted():
    order = accepted({"panel": "  ", "service": " 1 ", "link": f"  {LINK}\t", "quantity": " 100.0 "})
    assert order.fields == {"link": LINK, "quantity": 100}
    assert accepted({"service": 1.0, "link": LINK, "quantity": 100.0}).fields["quantity"] == 100
    assert accepted({"service": "1", "link": LINK, "quantity": Decimal("250")}).fields["quantity"] == 250
    assert accepted({"service": 1, "link": LINK, "quantity": 100, "comments": "   "}).fields == {
        "link": LINK,
        "quantity": 100,
    }


def test_panel_by_name_case_insensitive_and_output_columns_ignored():
    order = accepted(
        {"panel": "Backup", "service": 1, "link": LINK, "quantity": 60, "order_id": "=X", "ref": "r1"}
    )
    assert order.panel == "backup"
    assert order.service.name == "Backup followers"


def test_numeric_text_cells_become_text():
    order = accepted({"service": 11, "link": LINK, "quantity": 100, "username": 12345.0})
    assert order.fields["username"] == "12345"
    order = accepted({"service": 14, "link": LINK, "username": 42, "comments": 7})
    assert order.fields == {"link": LINK, "comments": "7", "username": "42"}


def test_text_columns_read_cells_as_cell_text_does():
    order = accepted({"service": 11, "link": LINK, "quantity": 100, "username": Decimal("12345.00")})
    assert order.fields["username"] == cell_text(Decimal("12345.00")) == "12345"
    order = accepted({"service": 11, "link": LINK, "quantity": 100, "username": Decimal("Infinity")})
    assert order.fields["username"] == "Infinity"
    assert problems({"panel": True, "service": 1, "link": LINK, "quantity": 100})[0].startswith(
        'row 14, panel: "TRUE" is not a configured panel'
    )


def test_unknown_type_checks_link_and_quantity_and_passes_the_rest():
    order = accepted(
        {
            "service": 19,
            "link": LINK,
            "quantity": "100",
            "comments": " a \n\nb",
            "runs": "3",
            "country": "DE ",
        }
    )
    assert order.fields == {"link": LINK, "quantity": 100, "runs": 3, "comments": "a\nb", "country": "DE"}
    assert order.estimated_cost == Decimal("0.27")
    assert problems({"service": 19, "link": "nope", "quantity": 5}) == [
        'row 14, link: "nope" is not an http(s) URL; write the full address, starting with https://',
        'row 14, quantity: 5 is below the minimum 50 for service 19 "Something new"',
    ]
    assert problems({"service": 19, "link": LINK, "hashtag": "=B2"}) == [
        'row 14, hashtag: "=B2" is a formula; type the value itself'
    ]


# --- every rule refused --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            {"panel": "shop", "service": 1, "link": LINK, "quantity": 100},
            'row 14, panel: "shop" is not a configured panel; use one of "backup", "main", '
            'or leave it empty for "main"',
            id="unknown-panel",
        ),
        pytest.param(
            {"link": LINK, "quantity": 100},
            "row 14, service: empty; every order needs the ID of a service from the panel's catalog",
            id="service-missing",
        ),
        pytest.param(
            {"service": 999, "link": LINK, "quantity": 100},
            'row 14, service: 999 is not in the catalog of panel "main"',
            id="service-not-in-catalog",
        ),
        pytest.param(
            {"service": "1a", "link": LINK, "quantity": 100},
            'row 14, service: "1a" is not a whole number; use digits only, like 100',
            id="service-not-a-number",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": "lots"},
            'row 14, quantity: "lots" is not a whole number; use digits only, like 100',
            id="quantity-text",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": 12.5},
            "row 14, quantity: 12.5 is not a whole number; use digits only, like 100",
            id="quantity-fraction",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": True},
            "row 14, quantity: TRUE is not a whole number; use digits only, like 100",
            id="quantity-checkbox",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": -5},
            "row 14, quantity: -5 is not allowed; use a whole number of at least 1",
            id="quantity-negative",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": "0"},
            "row 14, quantity: 0 is not allowed; use a whole number of at least 1",
            id="quantity-zero",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": 10},
            'row 14, quantity: 10 is below the minimum 50 for service 1 "Instagram Followers"',
            id="quantity-below-min",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": "20000"},
            'row 14, quantity: 20000 is above the maximum 10000 for service 1 "Instagram Followers"',
            id="quantity-above-max",
        ),
        pytest.param(
            {"service": 1, "link": LINK},
            'row 14, quantity: empty, but service 1 "Instagram Followers" (type Default) needs it',
            id="quantity-required",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": "=A1*2"},
            'row 14, quantity: "=A1*2" is a formula; type the value itself',
            id="formula",
        ),
        pytest.param(
            {"service": "=B2", "link": LINK, "quantity": 100},
            'row 14, service: "=B2" is a formula; type the value itself',
            id="formula-service",
        ),
        pytest.param(
            {"service": 1, "link": "instagram.com/p/abc", "quantity": 100},
            'row 14, link: "instagram.com/p/abc" is not an http(s) URL; write the full address, '
            "starting with https://",
            id="link-no-scheme",
        ),
        pytest.param(
            {"service": 1, "link": "ftp://files.example/x", "quantity": 100},
            'row 14, link: "ftp://files.example/x" is not an http(s) URL; write the full address, '
            "starting with https://",
            id="link-ftp",
        ),
        pytest.param(
            {"service": 1, "link": "https://", "quantity": 100},
            'row 14, link: "https://" is not an http(s) URL; write the full address, starting with https://',
            id="link-no-host",
        ),
        pytest.param(
            {"service": 1, "link": "https://insta gram.com/p", "quantity": 100},
            'row 14, link: "https://insta gram.com/p" is not a valid URL: it contains spaces',
            id="link-spaces",
        ),
        pytest.param(
            {"service": 12, "link": LINK, "quantity": 100, "media": "pic.jpg"},
            'row 14, media: "pic.jpg" is not an http(s) URL; write the full address, starting with https://',
            id="media-url",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": 100, "comments": "hello"},
            'row 14, comments: not used by service 1 "Instagram Followers" (type Default); leave it empty',
            id="field-not-used",
        ),
        pytest.param(
            {"service": 3, "link": LINK, "quantity": 100},
            'row 14, quantity: not used by service 3 "Starter pack" (type Package); leave it empty',
            id="quantity-on-package",
        ),
        pytest.param(
            {"service": 7, "link": LINK, "runs": 2, "interval": 10, "quantity": 100, "usernames": "a"},
            [
                'row 14, runs: not used by service 7 "Mentions" (type Mentions); leave it empty',
                'row 14, interval: not used by service 7 "Mentions" (type Mentions); leave it empty',
            ],
            id="dripfeed-on-other-type",
        ),
        pytest.param(
            {"service": 2, "link": LINK, "quantity": 100, "runs": 2, "interval": 10},
            'row 14, runs: service 2 "Instagram Likes" does not support drip-feed (runs/interval); '
            "leave runs and interval empty",
            id="dripfeed-not-supported",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": 100, "runs": 2},
            "row 14, interval: empty, but runs is filled; drip-feed needs both runs and interval",
            id="dripfeed-runs-alone",
        ),
        pytest.param(
            {"service": 1, "link": LINK, "quantity": 100, "interval": 15},
            "row 14, runs: empty, but interval is filled; drip-feed needs both runs and interval",
            id="dripfeed-interval-alone",
        ),
        pytest.param(
            {"service": 5, "link": LINK, "comments": "only one"},
            'row 14, comments: 1 non-empty line is below the minimum 2 for service 5 "Custom comments"; '
            "the quantity is the number of lines",
            id="comments-below-min",
        ),
        pytest.param(
            {"service": 9, "link": LINK, "usernames": "a\nb\nc\nd"},
            'row 14, usernames: 4 non-empty lines are above the maximum 3 for service 9 "Mention these"; '
            "the quantity is the number of lines",
            id="usernames-above-max",
        ),
        pytest.param(
            {"service": 5, "link": LINK, "comments": "a\nb\nc", "quantity": 4},
            "row 14, quantity: 4 does not match the 3 non-empty lines of comments; "
            "leave quantity empty (the lines are counted)",
            id="comments-quantity-mismatch",
        ),
        pytest.param(
            {"service": 5, "link": LINK, "comments": "\n  \n"},
            'row 14, comments: empty, but service 5 "Custom comments" (type Custom Comments) needs it',
            id="comments-only-blank-lines",
        ),
        pytest.param(
            {"service": 11, "link": LINK, "quantity": 100, "username": True},
            "row 14, username: TRUE is a checkbox value, not text",
            id="text-checkbox",
        ),
        pytest.param(
            {"service": 11, "link": LINK, "quantity": 100, "username": datetime(2025, 5, 1)},
            "row 14, username: 2025-05-01 is a date, not text",
            id="text-date",
        ),
        pytest.param(
            {"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": 0, "expiry": "2027-12-31"},
            'row 14, expiry: "2027-12-31" is not a date written d/m/Y, like 31/12/2025',
            id="expiry-format",
        ),
        pytest.param(
            {"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": 0, "expiry": "31/02/2027"},
            'row 14, expiry: "31/02/2027" is not a real date',
            id="expiry-not-real",
        ),
        pytest.param(
            {"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": -1},
            "row 14, delay: -1 is not allowed; use a whole number of at least 0",
            id="delay-negative",
        ),
        pytest.param(
            {"service": 17, "username": "natgeo", "min": 10, "max": 2000, "delay": 0},
            [
                'row 14, min: 10 is below the minimum 50 for service 17 "Auto likes"',
                'row 14, max: 2000 is above the maximum 1000 for service 17 "Auto likes"',
            ],
            id="subscription-limits",
        ),
        pytest.param(
            {"service": 17, "username": "natgeo", "min": 300, "max": 200, "delay": 0},
            "row 14, max: 200 is below min 300; max must be at least min",
            id="subscription-min-above-max",
        ),
        pytest.param(
            {"service": 17, "link": LINK, "username": "natgeo", "min": 100, "max": 200, "delay": 0},
            'row 14, link: not used by service 17 "Auto likes" (type Subscriptions); leave it empty',
            id="subscription-no-link",
        ),
        pytest.param(
            {"service": 18, "link": LINK, "quantity": 1000, "country": "US", "device": "1"},
            'row 14, type_of_traffic: empty, but service 18 "Website visits" (type Web Traffic) needs it',
            id="web-traffic-required",
        ),
        pytest.param(
            {
                "service": 18,
                "link": LINK,
                "quantity": 1000,
                "country": "US",
                "device": "1",
                "type_of_traffic": "1",
                "referring_url": "google",
            },
            'row 14, referring_url: "google" is not an http(s) URL; write the full address, starting with https://',
            id="referring-url",
        ),
    ],
)
def test_rule_refused(cells, expected):
    assert problems(cells) == (expected if isinstance(expected, list) else [expected])


def test_problem_fields_and_str():
    (problem,) = check({"service": 1, "link": LINK, "quantity": 10}, row=7)
    assert problem == RowProblem(
        7, "quantity", '10 is below the minimum 50 for service 1 "Instagram Followers"'
    )
    assert str(problem) == 'row 7, quantity: 10 is below the minimum 50 for service 1 "Instagram Followers"'


def test_all_problems_of_a_row_collected_in_column_order():
    assert problems(
        {
            "service": 2,
            "link": "www.example.com",
            "quantity": "lots",
            "runs": 3,
            "interval": "=C2",
            "comments": "hi",
            "username": "me",
        },
        row=3,
    ) == [
        'row 3, link: "www.example.com" is not an http(s) URL; write the full address, starting with https://',
        'row 3, quantity: "lots" is not a whole number; use digits only, like 100',
        'row 3, runs: service 2 "Instagram Likes" does not support drip-feed (runs/interval); '
        "leave runs and interval empty",
        'row 3, interval: "=C2" is a formula; type the value itself',
        'row 3, comments: not used by service 2 "Instagram Likes" (type Default); leave it empty',
        'row 3, username: not used by service 2 "Instagram Likes" (type Default); leave it empty',
    ]


def test_values_checked_even_when_the_service_is_unknown():
    assert problems({"panel": "nope", "service": "x", "link": "x", "quantity": 1.5, "username": "ok"}) == [
        'row 14, panel: "nope" is not a configured panel; use one of "backup", "main", '
        'or leave it empty for "main"',
        'row 14, service: "x" is not a whole number; use digits only, like 100',
        'row 14, link: "x" is not an http(s) URL; write the full address, starting with https://',
        "row 14, quantity: 1.5 is not a whole number; use digits only, like 100",
    ]


def test_default_panel_not_configured():
    assert [str(p) for p in validate_row(2, {"service": 1}, CATALOGS, "gone")] == [
        'row 2, panel: empty, and the default panel "gone" is not configured; use one of "backup", "main"'
    ]


def test_long_values_are_shortened():
    long_link = "example.com/" + "x" * 100
    (message,) = problems({"service": 1, "link": long_link, "quantity": 100})
    shown = '"example.com/' + "x" * 26 + "…"
    assert len(shown) == 40
    assert (
        message
        == f"row 14, link: {shown} is not an http(s) URL; write the full address, starting with https://"
    )


def test_unknown_dripfeed_support_is_allowed():
    service_none = service(30, "Default", "Unknown dripfeed", dripfeed=None)
    catalogs = {"main": {"30": service_none}}
    order = validate_row(
        2, {"service": 30, "link": LINK, "quantity": 50, "runs": 2, "interval": 5}, catalogs, "main"
    )
    assert isinstance(order, OrderRequest)
    assert order.fields["runs"] == 2


# --- whole numbers, blank rows, dedupe -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100, 100),
        (100.0, 100),
        ("100", 100),
        (" 100 ", 100),
        ("100.0", 100),
        (Decimal("100.00"), 100),
        ("-5", -5),
    ],
)
def test_parse_whole_number(value, expected):
    assert parse_whole_number(value) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (12.5, "12.5"),
        ("12.5", '"12.5"'),
        ("lots", '"lots"'),
        (True, "TRUE"),
        ("1,000", '"1,000"'),
        ("1e3", '"1e3"'),
        ("", '""'),
        (None, "None"),
        (float("nan"), "nan"),
        (Decimal("Infinity"), "Infinity"),
        (date(2025, 1, 1), "2025-01-01"),
    ],
)
def test_parse_whole_number_refuses(value, shown):
    with pytest.raises(ValueError) as caught:
        parse_whole_number(value)
    assert str(caught.value) == f"{shown} is not a whole number; use digits only, like 100"


def test_is_blank_row():
    assert is_blank_row({})
    assert is_blank_row(
        {"service": None, "link": "  ", "quantity": "", "order_id": "123", "status": "Completed"}
    )
    assert not is_blank_row({"quantity": 0})
    assert not is_blank_row({"panel": "main"})


def test_dedupe_key_is_panel_service_and_link_as_sent():
    a = accepted({"service": 1, "link": f" {LINK} ", "quantity": 100})
    b = accepted({"service": "1", "link": LINK, "quantity": 200})
    c = accepted({"service": 1, "link": "https://instagram.com/p/other", "quantity": 200})
    assert a.dedupe_key == b.dedupe_key == ("main", "1", LINK)
    assert c.dedupe_key != a.dedupe_key
    sub = accepted({"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": 0})
    assert sub.dedupe_key == ("main", "17", "natgeo")


def test_same_target_key_of_sheet_cells_matches_the_order_key():
    assert same_target_key("main", " 1 ", f" {LINK} ") == ("main", "1", LINK)
    assert same_target_key("main", 1.0, LINK, "ignored") == ("main", "1", LINK)
    assert same_target_key("main", "17", "", " natgeo ") == ("main", "17", "natgeo")
    assert same_target_key("main", None, None, 12345.0) == ("main", "", "12345")
    assert same_target_key("main", "abc", LINK) == ("main", "abc", LINK)
    cells = {"service": "1.0", "link": f" {LINK} ", "quantity": 100}
    order = accepted(cells)
    assert same_target_key("main", cells["service"], cells["link"]) == order.dedupe_key
    cells = {"service": 17.0, "username": " natgeo", "min": 100, "max": 200, "delay": 0}
    sub = accepted(cells)
    assert same_target_key("main", cells["service"], None, cells["username"]) == sub.dedupe_key


# --- cost ------------------------------------------------------------------------------------


def test_cost_default():
    assert accepted({"service": 1, "link": LINK, "quantity": 1500}).estimated_cost == Decimal("1.35")
    assert estimate_cost(CATALOGS["main"]["1"], 1500, None) == Decimal("1.35")


def test_cost_dripfeed_times_runs():
    order = accepted({"service": 1, "link": LINK, "quantity": 1500, "runs": 4, "interval": 60})
    assert order.estimated_cost == Decimal("5.4")
    assert order.quantity == 1500


def test_cost_exact_decimal():
    odd = service(40, "Default", "Cheap", rate="0.0012345")
    assert estimate_cost(odd, 777, None) == Decimal("0.0009592065")
    assert isinstance(estimate_cost(odd, 777, None), Decimal)


def test_cost_flat_for_package_types():
    assert accepted({"service": 3, "link": LINK}).estimated_cost == Decimal("12.5")
    assert accepted({"service": 6, "link": LINK, "comments": "a\nb\nc"}).estimated_cost == Decimal("7.25")
    sub = accepted({"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": 0})
    assert sub.quantity is None


def test_a_subscription_costs_up_to_max_per_post_and_has_no_bound_without_posts():
    # service 17: rate 1.50 per 1000; up to `max` per new post, for `posts` posts (+ old_posts)
    sub = accepted({"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": 0})
    assert sub.unbounded and sub.estimated_cost == Decimal("0.3")  # one post's worth
    bounded = accepted(
        {"service": 17, "username": "natgeo", "min": 100, "max": 200, "delay": 0, "posts": 10, "old_posts": 2}
    )
    assert not bounded.unbounded and bounded.estimated_cost == Decimal("3.6")  # 1.50 × 200 × 12 / 1000


def test_cost_counts_comment_lines():
    order = accepted({"service": 5, "link": LINK, "comments": "a\n\nb\nc\n", "quantity": "3"})
    assert order.quantity == 3
    assert order.estimated_cost == Decimal("0.06")  # 20 × 3 / 1000
    assert "quantity" not in order.fields
