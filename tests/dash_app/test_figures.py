"""Figures from small frames: what they draw, what a click hands back, and empty periods."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from dash_app import figures as made
from tests.dash_app.helpers import AsFigures

figures = AsFigures(made)


def _message(fig) -> str:
    return fig.layout.annotations[0].text


def test_bars_carry_filter_values_for_clicks():
    df = pd.DataFrame({"label": ["United States", "Germany"], "n": [5, 3]})
    fig = figures.bars(df, "label", filter_values=pd.Series(["US", "DE"]))
    (trace,) = fig.data
    assert list(trace.y) == ["United States", "Germany"]
    assert list(trace.x) == [5, 3]
    assert list(trace.customdata) == ["US", "DE"]


def test_empty_frames_say_so_without_axes():
    empty = pd.DataFrame({"label": [], "n": []})
    fig = figures.bars(empty, "label")
    assert not fig.data
    assert _message(fig) == "No requests in this period"
    assert fig.layout.xaxis.visible is False
    assert (
        _message(figures.activity(pd.DataFrame({"requests": []}))) == "No requests in this period"
    )
    zero = pd.DataFrame({"value": ["x"], "n": [0]})
    assert not figures.pie(zero).data


def test_status_codes_coloured_by_class():
    df = pd.DataFrame({"status": [200, 404, 500], "n": [9, 2, 1], "class": ["2xx", "4xx", "5xx"]})
    (trace,) = figures.status_codes(df).data
    assert list(trace.x) == ["200", "404", "500"]
    assert trace.marker.color[0] == figures.GOOD and trace.marker.color[2] == figures.BAD


def test_activity_has_requests_users_latency_and_success_rows():
    df = pd.DataFrame(
        {
            "time": [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)],
            "requests": [4, 0],
            "users": [2, 0],
            "success_rate": [75.0, np.nan],
            "p50": [2.0, None],
            "p95": [4.0, None],
        }
    )
    fig = figures.activity(df)
    names = [t.name for t in fig.data]
    assert names == ["requests", "users", "p50 ms", "p95 ms", "success %"]
    assert list(fig.data[0].y) == [4, 0]
    assert fig.data[4].y[1] is None  # a gap, not a zero


def test_world_map_uses_iso3_and_keeps_iso2_for_clicks():
    df = pd.DataFrame({"value": ["US", "GB", ""], "n": [100, 10, 5], "n_err": [0, 0, 0]})
    (trace,) = figures.world_map(df).data
    assert list(trace.locations) == ["USA", "GBR"]
    assert list(trace.customdata) == ["US", "GB"]
    assert _message(figures.world_map(df[df["value"] == ""])) == "No locations in this period"


def test_monitor_strip_colours_up_and_down():
    df = pd.DataFrame({"up": [True, False], "detail": ["a", "b"]})
    (trace,) = figures.monitor_strip(df).data
    assert list(trace.marker.color) == [figures.GOOD, figures.BAD]


def test_deploy_markers_cross_every_panel_of_the_activity_chart():
    times = [datetime(2026, 12, 1, h, tzinfo=UTC) for h in range(6)]
    df = pd.DataFrame({"time": times, "requests": [3] * 6, "users": [1] * 6, "p50": [10.0] * 6,
                       "p95": [20.0] * 6, "success_rate": [99.0] * 6})  # fmt: skip
    deploys = [{"time": times[2], "version": "1.2", "description": "orders rework"},
               {"time": times[4], "version": "1.3"}]  # fmt: skip
    fig = figures.deploy_markers(figures.activity(df), deploys)
    panels = {t.yaxis for t in fig.data}
    assert panels == {"y", "y2", "y3"}
    for deploy in deploys:
        at = deploy["time"].isoformat()
        lines = sorted(s.yref for s in fig.layout.shapes if s.x0 == at)
        assert lines == ["y domain", "y2 domain", "y3 domain"]  # one on each panel
    # One label a deploy, on the top panel, its description on hover.
    labels = [(a.text, a.yref, a.hovertext) for a in fig.layout.annotations]
    assert labels == [("1.2", "y domain", "orders rework"), ("1.3", "y domain", "1.3")]


def test_charts_are_the_plain_dicts_dash_sends_and_markers_copy():
    """No plotly Figure on the refresh's path (its copies cost more than the queries);
    every chart shares the one template, and deploy markers leave the chart they mark
    as it was (a cached answer's dict is marked for each view)."""
    import json

    df = pd.DataFrame({"label": ["a"], "n": [1]})
    one, two = made.bars(df, "label"), made.pie(df, "label")
    assert type(one) is dict and set(one) == {"data", "layout"}
    assert one["layout"]["template"] is two["layout"]["template"]
    json.dumps(one)
    chart = made.activity(pd.DataFrame({"time": [datetime(2026, 1, 1, tzinfo=UTC)],
                                        "requests": [1], "users": [1], "p50": [1.0],
                                        "p95": [2.0], "success_rate": [100.0]}))  # fmt: skip
    before = json.dumps(chart)
    marked = made.deploy_markers(chart, [{"time": datetime(2026, 1, 1, tzinfo=UTC),
                                          "version": "2.0"}])  # fmt: skip
    assert json.dumps(chart) == before
    assert [a["text"] for a in marked["layout"]["annotations"]] == ["2.0"]
