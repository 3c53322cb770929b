"""The overview's numbers equal what was ingested through the real API, on both backends.

Each filter combination is checked twice: as the dashboard computes it (rollups where
they answer) and with every panel forced onto raw-row SQL; both must match the rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dash_app import queries as q
from dash_app.filters import Filters
from dash_app.overview import compute
from server.auth import lookup_key
from tests.dash_app.helpers import Expected, ingest, known_rows

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
    Filters().with_click("status_class", "4xx"),
    Filters().with_click("status", "200").with_click("browser", "Chrome"),
    Filters().with_click("endpoint", "GET /v1/items/{id}"),
    Filters(period="7d").with_click("endpoint", "GET /v1/items/{id}"),
    Filters().with_click("version", "v2"),
    Filters().with_click("user", "8.8.8.8"),
    Filters().with_click("user", "user5"),
    Filters(keep_ids=True),
    Filters(keep_params=True).with_click("endpoint", "POST /v2/orders"),
    Filters(keep_params=True, keep_ids=True),
    Filters().with_click("device", "bot"),
    Filters(exclude_404=True).with_click("location", "GB").with_click("os", "Windows"),
]


@pytest.fixture
def ingested(stack):
    now = datetime.now(UTC)
    rows = known_rows(now)
    key = stack.new_key()
    ingest(stack, key, rows)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    return stack, key_id, rows, now


def force_raw(monkeypatch) -> None:
    monkeypatch.setattr(q, "source_for", lambda *a, **k: q.RAW)
    monkeypatch.setattr(q, "users_from_rollups", lambda scope: False)
    monkeypatch.setattr(q, "_rollup_answers", lambda scope, table: False)


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
    top = dict(zip(data.top_users["user"], data.top_users["requests"], strict=True))
    wanted = expected.top_users()
    assert len(top) == min(10, len(wanted)), label
    assert all(wanted[user] == n for user, n in top.items()), label
    for user, place in zip(data.top_users["user"], data.top_users["location"], strict=True):
        assert place == expected.latest_location(user), label
    if data.window.step == 86400:
        days = {
            int(t.timestamp()): u
            for t, u in zip(data.activity["time"], data.activity["users"], strict=True)
            if u
        }
        assert days == expected.per_day_users(), label


@pytest.mark.parametrize("raw", [False, True], ids=["rollups", "raw"])
def test_overview_numbers_equal_the_ingested_rows(ingested, monkeypatch, raw):
    stack, key_id, rows, now = ingested
    if raw:
        force_raw(monkeypatch)
    for filters in FILTERS:
        data = compute(stack.engine, key_id, filters, now)
        expected = Expected(rows, filters, data.window.since, data.window.until)
        assert expected.requests or filters.click, f"{filters} selects nothing"
        check(data, expected, f"{'raw' if raw else 'rollups'} {filters.to_query()}")


def test_hidden_endpoints_leave_the_endpoint_panels(ingested):
    stack, key_id, rows, now = ingested
    data = compute(stack.engine, key_id, Filters(hidden=("/v2/*", "GET /health")), now)
    everything = compute(stack.engine, key_id, Filters(), now)
    assert set(data.endpoints["endpoint"]) == {"/v1/items/{id}", "/v1/items"}
    assert list(data.versions["version"]) == ["v1"]
    assert data.summary == everything.summary  # hiding is about the endpoint list only


def test_empty_period_and_other_keys_see_nothing(stack, ingested):
    stack, key_id, _rows, now = ingested
    with stack.engine.connect() as conn:
        other = lookup_key(conn, stack.new_key())
    data = compute(stack.engine, other, Filters(period="all"), now)
    assert data.empty and data.users == 0 and data.activity.empty


def test_raw_views_fit_the_row_budget(ingested, monkeypatch):
    """A click on a long period reads whole recent days within RAW_ROW_BUDGET rows."""
    from dash_app.filters import DAY, window_for

    stack, key_id, rows, now = ingested
    year = window_for("1y", now)
    per_day: dict[int, int] = {}
    for _privacy, row in rows:
        day = int(datetime.fromisoformat(row["created_at"]).timestamp()) // DAY * DAY
        per_day[day] = per_day.get(day, 0) + 1
    newest = max(per_day)
    with stack.engine.connect() as conn:
        assert q.raw_earliest(conn, key_id, year) is None  # small keys: the whole period
        assert q.raw_earliest(conn, key_id, year, budget=per_day[newest]) == newest
        assert q.raw_earliest(conn, key_id, year, budget=0) == newest  # at least one day
    assert len(per_day) > 1, "the known rows must span several days"

    monkeypatch.setattr(q, "RAW_ROW_BUDGET", per_day[newest])
    filters = Filters(period="1y").with_click("location", "US")
    data = compute(stack.engine, key_id, filters, now)
    assert data.bounded
    assert data.window.since == newest
    check(data, Expected(rows, filters, newest, data.window.until), "budget")
