"""Every shaping function on small frames whose answers are computed by hand, and the
exact percentiles against numpy's on the expanded values."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from dash_app import aggregations as agg
from server.rules import HIST_LOWER, rt_bucket
from server.stats import latency


def dist(pairs: dict[int, dict[int, int]]) -> pd.DataFrame:
    """{bucket: {rt: n}} -> the latency question's [bucket, rt, n] frame."""
    rows = [(b, rt, n) for b, values in pairs.items() for rt, n in values.items()]
    return pd.DataFrame(rows, columns=["bucket", "rt", "n"])


def test_percentiles_are_numpys_on_the_expanded_values():
    rng = random.Random(5)
    values = [int(rng.lognormvariate(4, 1)) for _ in range(997)]
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    frame = dist({0: counts})
    got = latency.percentiles(frame, (0, 1, 25, 50, 75, 95, 99, 100))
    for p, value in got.items():
        assert value == pytest.approx(np.percentile(values, p)), p
    assert latency.percentiles(frame.iloc[0:0], (50,)) == {50: None}


def test_display_histogram_counts_every_request_in_its_bucket():
    frame = dist({0: {3: 2, 5: 1, 100: 4}, 3600: {100: 1, 20_000: 1}})
    hist = latency.display_histogram(frame)
    assert hist.sum() == 9
    assert hist[3] == 2 and hist[5] == 1 and hist[rt_bucket(100)] == 5
    assert hist[rt_bucket(20_000)] == 1
    assert HIST_LOWER[rt_bucket(100)] <= 100


def test_histogram_bars_trim_to_used_range():
    hist = np.zeros(64, dtype=np.int64)
    hist[3], hist[5] = 2, 1
    bars = agg.histogram_bars(hist)
    assert list(bars["n"]) == [2, 0, 1]
    assert list(bars["label"]) == ["3 ms", "4 ms", "5 ms"]
    assert agg.histogram_bars(np.zeros(64, dtype=np.int64)).empty


def test_summary_success_rate_and_change():
    by_status = pd.DataFrame(
        {"status": [200, 301, 404, 500], "n": [6, 1, 2, 1], "rt_sum": [60, 10, 20, 110]}
    )
    s = agg.summary(by_status, previous_total=8)
    assert s["requests"] == 10
    assert s["success"] == 7
    assert s["success_rate"] == pytest.approx(70.0)
    assert s["mean_rt"] == pytest.approx(20.0)
    assert s["change"] == pytest.approx(25.0)
    empty = agg.summary(by_status.iloc[0:0], previous_total=None)
    assert empty["requests"] == 0 and empty["success_rate"] is None and empty["change"] is None


def test_status_codes_grouped_and_classed():
    df = pd.DataFrame({"status": [404, 200, 200], "n": [1, 2, 3]})
    out = agg.status_codes(df)
    assert out.to_dict("list") == {"status": [200, 404], "n": [5, 1], "class": ["2xx", "4xx"]}


def test_buckets_sum_hours_into_days():
    day = 86400
    traffic = pd.DataFrame(
        {"t": [0, 3600, day + 7200, 2 * day], "n": [1, 2, 3, 4], "n_ok": [1, 1, 3, 0]}
    )
    out = agg.buckets(traffic, day)
    assert out.values.tolist() == [[0, 3, 2], [day, 3, 3], [2 * day, 4, 0]]
    assert agg.buckets(traffic, 3600)["bucket"].tolist() == [0, 3600, day + 7200, 2 * day]


def test_activity_fills_gaps_and_computes_rates():
    day = 86400
    start = 19_000 * day
    by_bucket = pd.DataFrame({"bucket": [start, start + 2 * day], "n": [4, 2], "n_ok": [3, 2]})
    users = pd.DataFrame({"bucket": [start, start + 2 * day], "users": [2, 1]})
    percentiles = pd.DataFrame(
        {"bucket": [start, start + 2 * day], "p50": [2.5, 10.0], "p95": [3.85, 10.0]}
    )
    out = agg.activity(by_bucket, users, percentiles, start, start + 3 * day, day)
    assert list(out["requests"]) == [4, 0, 2]
    assert list(out["users"]) == [2, 0, 1]
    assert out["success_rate"].iloc[0] == pytest.approx(75.0)
    assert np.isnan(out["success_rate"].iloc[1])
    p50 = list(out["p50"])
    assert p50[0] == 2.5 and np.isnan(p50[1]) and p50[2] == 10.0
    assert out["time"].iloc[1] == datetime.fromtimestamp(start + day, UTC)


def test_hour_of_day_and_day_of_week():
    # Epoch day 0 was a Thursday; day 4 a Monday; 3600 s into day 4 is 01:00.
    traffic = pd.DataFrame(
        {"t": [0, 13 * 3600, 4 * 86400 + 3600, 4 * 86400 + 7200], "n": [5, 1, 2, 3]}
    )
    hours = agg.hour_of_day(traffic)
    assert len(hours) == 24
    assert hours.loc[0, "n"] == 5 and hours.loc[13, "n"] == 1
    assert hours.loc[1, "n"] == 2 and hours.loc[2, "n"] == 3 and hours["n"].sum() == 11
    days = agg.day_of_week(traffic)
    assert list(days["day"]) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert list(days["n"]) == [5, 0, 0, 6, 0, 0, 0]


ENDPOINTS = pd.DataFrame(
    {
        "method": ["GET", "GET", "POST", "GET", "GET"],
        "endpoint": ["/v1/users/{id}", "/v1/users/{id}", "/v1/users", "/v2/items", "/admin/x"],
        "status_class": [2, 4, 2, 5, 2],
        "n": [8, 2, 3, 1, 5],
        "rt_sum": [80, 10, 90, 100, 5],
    }
)


def test_endpoint_table_counts_errors_and_tabs():
    table = agg.endpoint_table(ENDPOINTS)
    first = table.iloc[0].to_dict()
    assert first["endpoint"] == "GET /v1/users/{id}"
    assert (first["n"], first["errors"]) == (10, 2)
    assert first["error_rate"] == pytest.approx(20.0)
    assert first["mean_rt"] == pytest.approx(9.0)
    assert list(table["endpoint"]) == [
        "GET /v1/users/{id}",
        "GET /admin/x",
        "POST /v1/users",
        "GET /v2/items",
    ]
    four = agg.endpoint_table(ENDPOINTS, "4xx")
    assert four[["endpoint", "n"]].values.tolist() == [["GET /v1/users/{id}", 2]]
    assert agg.endpoint_table(ENDPOINTS, "3xx").empty


def test_versions_busiest_first_and_unversioned_kept():
    out = agg.versions(pd.DataFrame({"version": ["v2", "", "v1"], "n": [1, 454, 3]}))
    assert out.values.tolist() == [["", 454], ["v1", 3], ["v2", 1]]


def test_ranked_groups_and_orders():
    df = pd.DataFrame(
        {"browser": ["Chrome", "", "Chrome", "Safari"], "n": [3, 2, 1, 4], "n_err": [1, 0, 0, 2]}
    )
    out = agg.ranked(df, "browser")
    assert out.values.tolist() == [["Chrome", 4, 1], ["Safari", 4, 2], ["", 2, 0]]
    assert len(agg.ranked(df, "browser", limit=1)) == 1


def test_top_users_shapes_rows():
    df = pd.DataFrame(
        {
            "user_key": ["1.2.3.4", "u7"],
            "n": [5, 2],
            "last_seen": [86400, 0],
            "location": ["GB", ""],
        }
    )
    out = agg.top_users(df)
    assert list(out["user"]) == ["1.2.3.4", "u7"]
    assert out["last_seen"].iloc[0] == datetime(1970, 1, 2, tzinfo=UTC)
    assert list(out["requests"]) == [5, 2]
