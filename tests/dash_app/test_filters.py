"""Filters survive the URL, periods resolve to the right windows, months split correctly."""

from __future__ import annotations

from datetime import UTC, datetime

from dash_app.filters import Filters, status_class_range, window_for
from dash_app.queries import endpoint_path, month_cover
from worker.rollups import DAY, GRAIN_DAY, GRAIN_HOUR, HOUR

NOW = datetime(2026, 3, 15, 10, 30, tzinfo=UTC)


def ts(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def test_filters_round_trip_through_the_query_string():
    filters = (
        Filters(
            period="1y",
            hostname="api.example.com",
            exclude_404=True,
            exclude_bots=True,
            keep_params=True,
            hidden=("/admin/*", "*.php"),
        )
        .with_click("location", "US")
        .with_click("endpoint", "GET /v1/users/{id}")
    )
    query = filters.to_query()
    assert "api_key" not in query
    assert Filters.from_query(query) == filters
    assert Filters().to_query() == ""
    assert Filters.from_query("?period=bogus&evil=1&status=").period == "30d"


def test_toggles_map_to_flags():
    filters = Filters().with_toggles(["no404", "templates"])
    assert filters.exclude_404 and not filters.exclude_bots
    assert filters.keep_params and not filters.keep_ids
    assert filters.toggles == ["no404", "templates"]
    assert Filters().toggles == ["ignore_params", "templates"]


def test_clicks_add_replace_and_remove():
    f = Filters().with_click("status", "404").with_click("status", "500")
    assert f.click == {"status": "500"}
    assert f.without_click("status").clicks == ()
    assert Filters().with_click("nonsense", "x") == Filters()


def test_windows():
    day = window_for("24h", NOW)
    assert (day.since, day.until, day.grain, day.step) == (
        ts(2026, 3, 14, 11),
        ts(2026, 3, 15, 11),
        GRAIN_HOUR,
        300,
    )
    week = window_for("7d", NOW)
    assert (week.since, week.until, week.step) == (ts(2026, 3, 9), ts(2026, 3, 16), HOUR)
    assert week.shown_until == ts(2026, 3, 15, 11) and week.whole_days
    month = window_for("30d", NOW)
    assert (month.since, month.until, month.grain) == (ts(2026, 2, 14), ts(2026, 3, 16), GRAIN_DAY)
    assert month.previous.since == ts(2026, 1, 15) and month.previous.until == month.since
    everything = window_for("all", NOW)
    assert everything.since is None and everything.previous is None
    assert everything.step == DAY


def test_month_cover_splits_whole_months_and_edge_days():
    months, edges = month_cover(ts(2026, 1, 20), ts(2026, 4, 3))
    assert months == (ts(2026, 2, 1), ts(2026, 4, 1))
    assert edges == [(ts(2026, 1, 20), ts(2026, 2, 1)), (ts(2026, 4, 1), ts(2026, 4, 3))]
    months, edges = month_cover(ts(2026, 3, 2), ts(2026, 3, 20))
    assert months is None and edges == [(ts(2026, 3, 2), ts(2026, 3, 20))]
    months, edges = month_cover(None, ts(2026, 3, 16))
    assert months == (None, ts(2026, 3, 1)) and edges == [(ts(2026, 3, 1), ts(2026, 3, 16))]
    months, edges = month_cover(ts(2025, 12, 1), ts(2026, 1, 1))
    assert months == (ts(2025, 12, 1), ts(2026, 1, 1)) and edges == []


def test_endpoint_path_options():
    assert endpoint_path("/v1/users/42?x=1", False, False) == "/v1/users/{id}"
    assert endpoint_path("/v1/users/42?x=1", True, False) == "/v1/users/{id}?x=1"
    assert endpoint_path("/v1/users/42?x=1", False, True) == "/v1/users/42"
    assert endpoint_path("/v1/users/42?x=1", True, True) == "/v1/users/42?x=1"


def test_status_class_range():
    assert status_class_range("4xx") == (400, 500)
    assert status_class_range("4x") is None


def test_raw_filters_cut_long_windows_to_recent_days():
    from dash_app.filters import bounded

    year = window_for("1y", NOW)
    short = bounded(year, year.until - 3 * DAY)
    assert (short.until, short.until - short.since) == (year.until, 3 * DAY)
    assert bounded(window_for("all", NOW), year.until - DAY).since == year.until - DAY
    assert bounded(year, None) == year  # everything fits the budget
    assert bounded(year, year.since - DAY) == year  # never widened
    assert bounded(window_for("24h", NOW), NOW.timestamp()) == window_for("24h", NOW)
    assert Filters().with_click("location", "US").needs_raw
    assert not Filters().with_click("status_class", "5xx").needs_raw
