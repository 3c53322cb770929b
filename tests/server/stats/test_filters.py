"""Filters survive the URL, periods resolve to the right windows, labels follow the options."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from server.rules import DAY, HOUR, endpoint_label
from server.stats.conditions import glob_pattern, label_sql
from server.stats.filters import Filters, status_class_range, window_for

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
    assert (day.since, day.until, day.step) == (ts(2026, 3, 14, 11), ts(2026, 3, 15, 11), 300)
    week = window_for("7d", NOW)
    assert (week.since, week.until, week.step) == (ts(2026, 3, 9), ts(2026, 3, 16), HOUR)
    assert week.shown_until == ts(2026, 3, 15, 11) and week.whole_days
    month = window_for("30d", NOW)
    assert (month.since, month.until, month.step) == (ts(2026, 2, 14), ts(2026, 3, 16), DAY)
    assert month.previous.since == ts(2026, 1, 15) and month.previous.until == month.since
    everything = window_for("all", NOW)
    assert everything.since is None and everything.previous is None
    assert everything.step == DAY


def test_endpoint_label_options():
    assert endpoint_label("/v1/users/42?x=1", False, False) == "/v1/users/{id}"
    assert endpoint_label("/v1/users/42?x=1", True, False) == "/v1/users/{id}?x=1"
    assert endpoint_label("/v1/users/42?x=1", False, True) == "/v1/users/42"
    assert endpoint_label("/v1/users/42?x=1", True, True) == "/v1/users/42?x=1"


PATHS = [
    "/v1/users/42?x=1",
    "/v1/users/42",
    "/a?x=1?y=2",
    "?q",
    "/b?",
    "/é/7?ü=1#frag",
    "/orders/0123456789abcdef0123?expand=items",
    "/x#y?z",
]


@pytest.mark.parametrize("keep_params", [False, True])
@pytest.mark.parametrize("keep_ids", [False, True])
def test_the_engine_labels_paths_as_the_rule_does(keep_params, keep_ids):
    """The planner's SQL label and server.rules.endpoint_label agree on awkward paths."""
    from server.rules import template_path

    sql = label_sql(Filters(keep_params=keep_params, keep_ids=keep_ids))
    engine = duckdb.connect()
    for path in PATHS:
        got = engine.execute(
            f"SELECT {sql} FROM (SELECT ? AS path, ? AS endpoint)", [path, template_path(path)]
        ).fetchone()[0]
        assert got == endpoint_label(path, keep_params, keep_ids), path


def test_hidden_patterns_match_like_fnmatch():
    import fnmatch

    engine = duckdb.connect()
    for pattern, text in [("/admin/*", "/admin/x/y"), ("*.php", "/a.php"), ("/v[!2]/*", "/v1/a"),
                          ("/v[!2]/*", "/v2/a"), ("GET /a?", "GET /ab")]:  # fmt: skip
        got = engine.execute("SELECT ? GLOB ?", [text, glob_pattern(pattern)]).fetchone()[0]
        assert got == fnmatch.fnmatchcase(text, pattern), (pattern, text)


def test_status_class_range():
    assert status_class_range("4xx") == (400, 500)
    assert status_class_range("4x") is None
