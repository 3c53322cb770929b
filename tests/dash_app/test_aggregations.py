"""Every aggregation on small frames whose answers are computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from dash_app import aggregations as agg
from server.models import HIST_COLUMNS
from worker.rollups import HIST_LOWER, HIST_UPPER, rt_bucket


def hist_of(*values: int) -> np.ndarray:
    hist = np.zeros(64, dtype=np.int64)
    for v in values:
        hist[rt_bucket(v)] += 1
    return hist


def frame(rows: list[dict], hist_rows: list[np.ndarray]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    hist = pd.DataFrame(np.array(hist_rows), columns=list(HIST_COLUMNS))
    return pd.concat([df, hist], axis=1)


def test_histogram_sums_columns():
    df = frame([{"status": 200}, {"status": 500}], [hist_of(1, 2), hist_of(2, 100)])
    hist = agg.histogram(df)
    assert hist[1] == 1 and hist[2] == 2 and hist[rt_bucket(100)] == 1 and hist.sum() == 4
    assert agg.histogram(df.iloc[0:0]).sum() == 0


def test_percentiles_exact_below_16_ms():
    # 1..10 ms, one each: p50 is the 5th value, p25 the 3rd (rank 2.5 -> bucket 3).
    hist = hist_of(*range(1, 11))
    assert agg.percentile(hist, 50) == 5.0
    assert agg.percentile(hist, 25) == 3.0
    assert agg.percentile(hist, 100) == 10.0
    assert agg.percentile(np.zeros(64, dtype=np.int64), 50) is None


def test_percentile_interpolates_inside_a_wide_bucket():
    # Four requests in the bucket holding 100 ms; p50 is halfway through it.
    bucket = rt_bucket(100)
    hist = np.zeros(64, dtype=np.int64)
    hist[bucket] = 4
    low, high = HIST_LOWER[bucket], HIST_UPPER[bucket]
    assert agg.percentile(hist, 50) == pytest.approx(low + (high - low) * 0.5)
    assert low <= 100 < high


def test_histogram_bars_trim_to_used_range():
    bars = agg.histogram_bars(hist_of(3, 3, 5))
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


def test_activity_fills_gaps_and_computes_rates():
    day = 86400
    start = 19_000 * day
    by_bucket = frame(
        [
            {"bucket": start, "n": 4, "n_ok": 3},
            {"bucket": start + 2 * day, "n": 2, "n_ok": 2},
        ],
        [hist_of(1, 2, 3, 4), hist_of(10, 10)],
    )
    users = pd.DataFrame({"bucket": [start, start + 2 * day], "users": [2, 1]})
    out = agg.activity(by_bucket, users, start, start + 3 * day, day)
    assert list(out["requests"]) == [4, 0, 2]
    assert list(out["users"]) == [2, 0, 1]
    assert out["success_rate"].iloc[0] == pytest.approx(75.0)
    assert np.isnan(out["success_rate"].iloc[1])
    p50 = list(out["p50"])
    assert p50[0] == 2.0 and np.isnan(p50[1]) and p50[2] == 10.0
    assert out["time"].iloc[1] == datetime.fromtimestamp(start + day, UTC)


def test_hour_of_day_and_day_of_week():
    hours = agg.hour_of_day(pd.DataFrame({"hour": [0, 13, 0, 23], "n": [1, 3, 2, 4]}))
    assert len(hours) == 24
    assert hours.loc[0, "n"] == 3 and hours.loc[13, "n"] == 3 and hours.loc[23, "n"] == 4
    assert hours["n"].sum() == 10
    # Epoch day 0 was a Thursday; day 4 a Monday; 3600 s into day 4 is 01:00.
    buckets = pd.DataFrame({"bucket": [0, 4 * 86400 + 3600, 4 * 86400 + 7200], "n": [5, 1, 2]})
    days = agg.day_of_week(buckets)
    assert list(days["day"]) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert list(days["n"]) == [3, 0, 0, 5, 0, 0, 0]
    from_buckets = agg.hour_of_day(agg.hours_from_buckets(buckets))
    assert from_buckets.loc[0, "n"] == 5 and from_buckets.loc[1, "n"] == 1
    assert from_buckets.loc[2, "n"] == 2


ENDPOINTS = pd.DataFrame(
    {
        "method": ["GET", "GET", "POST", "GET", "GET"],
        "endpoint": ["/v1/users/{id}", "/v1/users/{id}", "/v1/users", "/v2/items", "/admin/x"],
        "status": [200, 404, 201, 500, 200],
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


def test_hide_endpoints_by_wildcard_on_path_or_label():
    kept = agg.hide_endpoints(ENDPOINTS, ["/admin/*", "POST *"])
    assert sorted(set(kept["endpoint"])) == ["/v1/users/{id}", "/v2/items"]
    assert len(agg.hide_endpoints(ENDPOINTS, [])) == 5


def test_versions_from_paths():
    out = agg.versions(ENDPOINTS)
    assert out.values.tolist() == [["v1", 13], ["v2", 1]]


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
