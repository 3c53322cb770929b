"""The overview's numbers equal what was ingested through the real API, on both backends.

Every filter combination is checked against an independent count over the rows the test
sent (tests/dash_app/helpers.Expected, plain Python), with the rows in three places: all
still in the hot table, all exported to the columnar store's files, and split between the
two (some exported, more ingested after).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from dash_app.panels import compute
from server.keys.api_keys import lookup_key
from server.lake import catalog
from server.lake.export import flush
from server.stats.filters import Filters
from tests.dash_app.helpers import Expected, ingest, known_rows
from tests.helpers import row

FILTERS = [
    Filters(),
    Filters(period="7d"),
    Filters(period="24h"),
    Filters(period="all"),
    Filters(hostname="eu.example.com"),
    Filters(exclude_404=True, exclude_bots=True),
    Filters(hostname="api.example.com", exclude_bots=True),
    Filters(exclude_404=True),
    Filters().with_click("location", "US"),
    Filters().with_click("location", ""),
    Filters().with_click("status_class", "4xx"),
    Filters().with_click("status", "200").with_click("browser", "Chrome"),
    Filters().with_click("endpoint", "GET /v1/items/{id}"),
    Filters(period="7d").with_click("endpoint", "GET /v1/items/{id}"),
    Filters().with_click("version", "v2"),
    Filters().with_click("version", ""),
    Filters().with_click("user", "8.8.8.8"),
    Filters().with_click("user", "user5"),
    Filters(keep_ids=True),
    Filters(keep_ids=True).with_click("endpoint", "GET /v1/items/101"),
    Filters(keep_params=True).with_click("endpoint", "POST /v2/orders"),
    Filters(keep_params=True, keep_ids=True),
    Filters().with_click("device", "bot"),
    Filters(exclude_404=True).with_click("location", "GB").with_click("os", "Windows"),
    Filters(hidden=("/v2/*", "GET /health")),
    Filters(hidden=("*orders*",)).with_click("status_class", "2xx"),
]


def _ingest(stack, placement: str):
    # Rows stay hot until the test exports them.
    stack.config.LAKE_EXPORT_SECONDS = 3600
    now = datetime.now(UTC)
    rows = known_rows(now)
    key = stack.new_key()
    half = len(rows) // 2
    first, second = (rows, []) if placement != "split" else (rows[:half], rows[half:])
    ingest(stack, key, first)
    if placement in ("files", "split"):
        flush()
    if second:
        ingest(stack, key, second)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        in_files, _ = catalog.storage_bytes(conn, key_id)
    expected_in_files = {"hot": 0, "files": len(rows), "split": half}[placement]
    assert in_files == expected_in_files
    return key_id, rows, now


@pytest.fixture(params=["hot", "files", "split"])
def ingested(stack, request):
    key_id, rows, now = _ingest(stack, request.param)
    return stack, key_id, rows, now


def check(data, expected: Expected, label: str) -> None:
    s = data.summary
    assert s["requests"] == expected.requests, label
    assert s["success"] == expected.success, label
    assert data.users == expected.users, label
    codes = dict(zip(data.status_codes["status"], data.status_codes["n"], strict=True))
    assert codes == expected.count("status"), label
    endpoints = data.endpoints.groupby(data.endpoints["method"] + " " + data.endpoints["endpoint"])
    assert endpoints["n"].sum().to_dict() == expected.endpoints(), label
    assert dict(zip(data.versions["version"], data.versions["n"], strict=True)) == (
        expected.versions()
    ), label
    places = dict(zip(data.locations["value"], data.locations["n"], strict=True))
    assert places == expected.count("location"), label
    for panel, field in (
        (data.browsers, "browser"),
        (data.systems, "os"),
        (data.devices, "device"),
    ):
        assert dict(zip(panel["value"], panel["n"], strict=True)) == expected.count(field), label
    assert int(data.activity["requests"].sum()) == expected.requests, label
    assert int(data.hours["n"].sum()) == expected.requests, label
    assert int(data.weekdays["n"].sum()) == expected.requests, label
    assert int(data.histogram["n"].sum()) == expected.requests, label
    times = expected.response_times()
    for p, value in data.percentiles.items():
        assert value == (pytest.approx(np.percentile(times, p)) if times else None), label
    top = dict(zip(data.top_users["user"], data.top_users["requests"], strict=True))
    wanted = expected.top_users()
    assert len(top) == min(10, len(wanted)), label
    assert all(wanted[user] == n for user, n in top.items()), label
    # ... and they are the busiest, busiest first.
    shown = list(data.top_users["requests"])
    assert shown == sorted(wanted.values(), reverse=True)[: len(shown)], label
    for user, place in zip(data.top_users["user"], data.top_users["location"], strict=True):
        assert place == expected.latest_location(user), label
    step = data.window.step
    buckets = {
        int(t.timestamp()): u
        for t, u in zip(data.activity["time"], data.activity["users"], strict=True)
        if u
    }
    assert buckets == expected.users_per_bucket(step), label
    # Each bucket's p50 and p95, exact (numpy's percentile of the bucket's rows).
    times_by_bucket = expected.response_times_per_bucket(step)
    for t, p50, p95 in zip(
        data.activity["time"], data.activity["p50"], data.activity["p95"], strict=True
    ):
        values = times_by_bucket.get(int(t.timestamp()))
        if values is None:
            assert np.isnan(p50) and np.isnan(p95), label
        else:
            assert p50 == pytest.approx(np.percentile(values, 50)), label
            assert p95 == pytest.approx(np.percentile(values, 95)), label


def test_overview_numbers_equal_the_ingested_rows(ingested):
    stack, key_id, rows, now = ingested
    # The hostname menu: every hostname sent, from the files' catalog entries and hot rows.
    everything = compute(key_id, Filters(period="all"), now)
    assert everything.hostnames == sorted({r["hostname"] for _p, r in rows})
    for filters in FILTERS:
        data = compute(key_id, filters, now)
        expected = Expected(rows, filters, data.window.since, data.window.until)
        assert expected.requests or filters.click, f"{filters} selects nothing"
        check(data, expected, filters.to_query())


def test_hidden_endpoints_leave_every_panel(stack):
    key_id, rows, now = _ingest(stack, "split")
    hidden = compute(key_id, Filters(hidden=("/v2/*", "GET /health")), now)
    everything = compute(key_id, Filters(), now)
    assert set(hidden.endpoints["endpoint"]) == {"/v1/items/{id}", "/v1/items"}
    assert list(hidden.versions["version"]) == ["v1"]
    # Hiding filters the requests themselves, so no panel disagrees with the list.
    shown = int(hidden.endpoints["n"].sum())
    assert hidden.summary["requests"] == shown < everything.summary["requests"]
    assert int(hidden.activity["requests"].sum()) == shown


def test_versions_count_requests_without_one(stack):
    """457 requests, 3 with a version: the panel says so instead of "v1 100 %"."""
    key = stack.new_key()
    now = datetime.now(UTC)
    batch = [
        {
            "hostname": "h",
            "ip_address": "8.8.8.8",
            "path": "/v1/a" if i < 3 else f"/items/{i}",
            "user_agent": "curl/8",
            "method": "GET",
            "status": 200,
            "response_time": 5,
            "user_id": None,
            "created_at": now.isoformat(),
        }
        for i in range(457)
    ]
    ingest(stack, key, [(0, row) for row in batch])
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    data = compute(key_id, Filters(), now)
    assert dict(zip(data.versions["version"], data.versions["n"], strict=True)) == {
        "": 454,
        "v1": 3,
    }
    items = compute(key_id, Filters().with_click("endpoint", "GET /items/{id}"), now)
    assert items.summary["requests"] == 454
    assert dict(zip(items.versions["version"], items.versions["n"], strict=True)) == {"": 454}


def test_empty_period_and_other_keys_see_nothing(stack):
    key_id, _rows, now = _ingest(stack, "split")
    with stack.engine.connect() as conn:
        other = lookup_key(conn, stack.new_key())
    data = compute(other, Filters(period="all"), now)
    assert data.empty and data.users == 0 and data.activity.empty
    assert compute(key_id, Filters(period="all"), now).summary["requests"] == 60


@pytest.mark.parametrize(
    ("default_path", "limit"),
    [
        # Past the bitmaps' memory (many users over many buckets) each bucket's users are
        # a distinct count in a scan of their own, and the traffic a scan without bitmaps.
        ("timeseries.traffic_and_users", "MAX_BITS"),
        # With more user numbers than the breakdowns' scan counts, the busiest users come
        # from a query of their own.
        ("breakdowns.users_part", "MAX_USERS_IN_SCAN"),
    ],
    ids=["users-without-bitmaps", "busiest-users-asked-apart"],
)
def test_past_a_memory_limit_users_count_the_same(stack, monkeypatch, default_path, limit):
    """The path taken past one of server.stats.users' limits gives the same numbers as
    the default one-scan path."""
    from server.stats import breakdowns, timeseries, users

    module_name, function = default_path.split(".")
    module = {"timeseries": timeseries, "breakdowns": breakdowns}[module_name]
    key_id, rows, now = _ingest(stack, "split")
    real = getattr(module, function)
    used = []
    monkeypatch.setattr(module, function, lambda *a: used.append(1) or real(*a))
    compute(key_id, Filters(period="7d"), now)
    assert used, f"{default_path} is the default for a few users"
    monkeypatch.setattr(users, limit, 0)
    used.clear()
    for filters in FILTERS[:4] + FILTERS[8:12]:
        data = compute(key_id, filters, now)
        check(data, Expected(rows, filters, data.window.since, data.window.until), str(filters))
    assert not used


@pytest.mark.parametrize("in_scan", [True, False], ids=["in-the-scan", "asked-apart"])
def test_the_busiest_users_are_shown_busiest_first(stack, monkeypatch, in_scan):
    """Fifteen users, the n-th with n requests: the table shows the ten busiest, busiest
    first, whether the breakdowns' scan counted them or a query of their own did."""
    from server.stats import users

    if not in_scan:
        monkeypatch.setattr(users, "MAX_USERS_IN_SCAN", 0)
    now = datetime.now(UTC)
    sent = [
        (0, row(ip_address=f"10.0.0.{n}", created_at=(now - timedelta(minutes=i)).isoformat()))
        for n in range(1, 16)
        for i in range(n)
    ]
    key = stack.new_key()
    ingest(stack, key, sent)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    data = compute(key_id, Filters(period="24h"), now)
    assert list(data.top_users["user"]) == [f"10.0.0.{n}" for n in range(15, 5, -1)]
    assert list(data.top_users["requests"]) == list(range(15, 5, -1))
