"""DataFrame -> DataFrame: shaping the grouped rows the queries return into panel data.

Plain functions with no I/O, so each is unit-tested on small frames with known answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from server.rules import HIST_LOWER, HIST_UPPER

PERCENTILES = (25, 50, 75, 95, 99)
TOP_ENDPOINTS = 50
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --- histograms ------------------------------------------------------------------------------


def histogram_bars(hist: np.ndarray) -> pd.DataFrame:
    """[low, high, label, n] for the buckets between the first and last non-empty one."""
    nonzero = np.flatnonzero(hist)
    if not len(nonzero):
        return pd.DataFrame(columns=["low", "high", "label", "n"])
    first, last = int(nonzero[0]), int(nonzero[-1])
    rows = []
    for i in range(first, last + 1):
        low, high = HIST_LOWER[i], HIST_UPPER[i]
        label = f"{low} ms" if high - low == 1 else f"{_ms(low)}–{_ms(high)}"
        rows.append((low, high, label, int(hist[i])))
    return pd.DataFrame(rows, columns=["low", "high", "label", "n"])


def _ms(value: int) -> str:
    return f"{value / 1000:.3g} s" if value >= 1000 else f"{value} ms"


# --- traffic ---------------------------------------------------------------------------------


def buckets(traffic: pd.DataFrame, step: int) -> pd.DataFrame:
    """[bucket, n, n_ok] per activity bucket (traffic comes per hour or five minutes)."""
    if traffic.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in ("bucket", "n", "n_ok")})
    frame = traffic.assign(bucket=traffic["t"] - traffic["t"] % step)
    return frame.groupby("bucket", as_index=False)[["n", "n_ok"]].sum()


# --- summary ---------------------------------------------------------------------------------


def summary(by_status: pd.DataFrame, previous_total: int | None) -> dict:
    """Requests, success rate (2xx + 3xx), mean response time and change vs the previous period."""
    n = int(by_status["n"].sum()) if not by_status.empty else 0
    ok = int(by_status.loc[by_status["status"] < 400, "n"].sum()) if n else 0
    rt_sum = int(by_status["rt_sum"].sum()) if n else 0
    change = None
    if previous_total:
        change = (n - previous_total) / previous_total * 100
    return {
        "requests": n,
        "success": ok,
        "success_rate": ok / n * 100 if n else None,
        "mean_rt": rt_sum / n if n else None,
        "previous": previous_total,
        "change": change,
    }


def status_codes(by_status: pd.DataFrame) -> pd.DataFrame:
    """[status, n, class] sorted by status code."""
    if by_status.empty:
        return pd.DataFrame(columns=["status", "n", "class"])
    out = by_status.groupby("status", as_index=False)["n"].sum().sort_values("status")
    out["n"] = out["n"].astype("int64")
    out["class"] = out["status"].map(lambda s: f"{int(s) // 100}xx")
    return out.reset_index(drop=True)


# --- activity --------------------------------------------------------------------------------


def activity(
    by_bucket: pd.DataFrame,
    users: pd.DataFrame,
    latency: pd.DataFrame,
    since: int | None,
    until: int,
    step: int,
) -> pd.DataFrame:
    """[time, requests, users, success_rate, p50, p95]: every bucket of the window, gaps as 0.

    `by_bucket` is [bucket, n, n_ok], `users` [bucket, users], `latency` [bucket, p50, p95].
    """
    columns = ["time", "requests", "users", "success_rate", "p50", "p95"]
    if by_bucket.empty:
        return pd.DataFrame(columns=columns)
    index = _bucket_index(since, until, step, int(by_bucket["bucket"].min()))
    frame = by_bucket.set_index("bucket").reindex(index, fill_value=0)
    n = frame["n"].to_numpy(dtype=np.int64)
    ok = frame["n_ok"].to_numpy(dtype=np.int64)

    def series(df: pd.DataFrame, column: str, fill):
        if df.empty:
            return pd.Series(fill, index=index)
        return df.set_index("bucket")[column].reindex(index, fill_value=fill)

    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, ok / np.maximum(n, 1) * 100, np.nan)
    return pd.DataFrame(
        {
            "time": [datetime.fromtimestamp(int(b), UTC) for b in index],
            "requests": n,
            "users": series(users, "users", 0).to_numpy(dtype=np.int64),
            "success_rate": rate,
            "p50": series(latency, "p50", np.nan).to_numpy(dtype=float),
            "p95": series(latency, "p95", np.nan).to_numpy(dtype=float),
        }
    )


def _bucket_index(since: int | None, until: int, step: int, first: int) -> np.ndarray:
    """Every bucket start of the window (from the first data's bucket when all time)."""
    start = since if since is not None else first
    start -= start % step
    return np.arange(start, until, step, dtype=np.int64)


def trend_series(trend: pd.DataFrame, since: int | None, until: int, step: int) -> pd.DataFrame:
    """[time, n]: `trend` ([t, n] per bucket start) over every bucket of the window, gaps 0."""
    if trend.empty:
        return pd.DataFrame({"time": pd.Series(dtype=object), "n": pd.Series(dtype="int64")})
    index = _bucket_index(since, until, step, int(trend["t"].min()))
    counts = trend.groupby("t")["n"].sum().reindex(index, fill_value=0)
    return pd.DataFrame(
        {
            "time": [datetime.fromtimestamp(int(b), UTC) for b in index],
            "n": counts.to_numpy(dtype=np.int64),
        }
    )


def hour_of_day(traffic: pd.DataFrame) -> pd.DataFrame:
    """[hour, n] for hours 0-23 (UTC)."""
    hours = pd.DataFrame({"hour": range(24)})
    if traffic.empty:
        return hours.assign(n=0)
    counts = traffic.assign(hour=traffic["t"] // 3600 % 24).groupby("hour")["n"].sum()
    return hours.assign(n=hours["hour"].map(counts).fillna(0).astype("int64"))


def day_of_week(traffic: pd.DataFrame) -> pd.DataFrame:
    """[weekday, day, n] Monday first. 1970-01-01 (epoch day 0) was a Thursday, weekday 3."""
    days = pd.DataFrame({"weekday": range(7), "day": WEEKDAYS})
    if traffic.empty:
        return days.assign(n=0)
    counts = traffic.assign(weekday=(traffic["t"] // 86400 + 3) % 7).groupby("weekday")["n"].sum()
    return days.assign(n=days["weekday"].map(counts).fillna(0).astype("int64"))


# --- endpoints and versions ------------------------------------------------------------------


def endpoint_table(df: pd.DataFrame, status_class: str | None = None) -> pd.DataFrame:
    """[endpoint, method, path, n, errors, error_rate, mean_rt] top 50 by requests.

    `df` is [method, endpoint, status_class (1-5), n, rt_sum]; `status_class` ('2xx'...)
    keeps only that class's requests (the panel's tabs).
    """
    columns = ["endpoint", "method", "path", "n", "errors", "error_rate", "mean_rt"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    rows = df
    if status_class:
        rows = df[df["status_class"] == int(status_class[0])]
    rows = rows.assign(errors=np.where(rows["status_class"] >= 4, rows["n"], 0))
    grouped = rows.groupby(["method", "endpoint"], as_index=False)[["n", "errors", "rt_sum"]].sum()
    grouped = grouped[grouped["n"] > 0]
    grouped["error_rate"] = grouped["errors"] / grouped["n"] * 100
    grouped["mean_rt"] = grouped["rt_sum"] / grouped["n"]
    grouped = grouped.rename(columns={"endpoint": "path"})
    grouped["endpoint"] = grouped["method"] + " " + grouped["path"]
    grouped = grouped.sort_values(["n", "endpoint"], ascending=[False, True]).head(TOP_ENDPOINTS)
    return grouped[columns].reset_index(drop=True)


def versions(df: pd.DataFrame) -> pd.DataFrame:
    """[version, n] busiest first; requests without a version are the '' row."""
    if df.empty:
        return pd.DataFrame(columns=["version", "n"])
    out = df[df["n"] > 0].sort_values(["n", "version"], ascending=[False, True])
    return out[["version", "n"]].reset_index(drop=True)


# --- dimensions ------------------------------------------------------------------------------


def ranked(df: pd.DataFrame, column: str, limit: int | None = None) -> pd.DataFrame:
    """[value, n, n_err] grouped by `column`, busiest first ('' is shown as Unknown)."""
    if df.empty:
        return pd.DataFrame(columns=["value", "n", "n_err"])
    out = df.groupby(column, as_index=False)[["n", "n_err"]].sum().rename(columns={column: "value"})
    out = out[out["n"] > 0]
    out = out.sort_values(["n", "value"], ascending=[False, True]).reset_index(drop=True)
    return out.head(limit) if limit else out


def top_users(df: pd.DataFrame) -> pd.DataFrame:
    """[user, requests, last_seen (datetime), location] in the order the query ranked them."""
    if df.empty:
        return pd.DataFrame(columns=["user", "requests", "last_seen", "location"])
    return pd.DataFrame(
        {
            "user": df["user_key"],
            "requests": df["n"].astype("int64"),
            "last_seen": [datetime.fromtimestamp(int(t), UTC) for t in df["last_seen"]],
            "location": df["location"],
        }
    )
