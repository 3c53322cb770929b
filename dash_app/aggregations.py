"""DataFrame -> DataFrame: shaping the grouped rows the queries return into panel data.

Plain functions with no I/O, so each is unit-tested on small frames with known answers.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from server.models import HIST_COLUMNS
from worker.rollups import EXACT_BUCKETS, HIST_LOWER, HIST_UPPER, api_version

PERCENTILES = (25, 50, 75, 95, 99)
TOP_ENDPOINTS = 50
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --- histograms and percentiles --------------------------------------------------------------


def histogram(df: pd.DataFrame) -> np.ndarray:
    """The summed 64-bucket response-time histogram of a frame with h00..h63 columns."""
    if df.empty:
        return np.zeros(len(HIST_COLUMNS), dtype=np.int64)
    return df[list(HIST_COLUMNS)].fillna(0).to_numpy(dtype=np.int64).sum(axis=0)


def percentile(hist: np.ndarray, p: float) -> float | None:
    """The p-th percentile (0-100) estimated from a histogram; None when it is empty.

    Buckets below 16 ms hold one value each, so they answer exactly; wider buckets
    interpolate linearly between their bounds (error below the bucket's ~33 % width).
    """
    total = int(hist.sum())
    if total == 0:
        return None
    rank = p / 100 * total
    cumulative = np.cumsum(hist)
    index = int(np.searchsorted(cumulative, rank, side="left"))
    index = min(index, len(hist) - 1)
    if index < EXACT_BUCKETS:
        return float(HIST_LOWER[index])
    before = cumulative[index - 1] if index else 0
    inside = hist[index]
    fraction = (rank - before) / inside if inside else 0.0
    low, high = HIST_LOWER[index], HIST_UPPER[index]
    return float(low + (high - low) * fraction)


def percentiles(hist: np.ndarray, ps=PERCENTILES) -> dict[int, float | None]:
    return {p: percentile(hist, p) for p in ps}


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
    since: int | None,
    until: int,
    step: int,
) -> pd.DataFrame:
    """[time, requests, users, success_rate, p50, p95]: every bucket of the window, gaps as 0."""
    columns = ["time", "requests", "users", "success_rate", "p50", "p95"]
    if by_bucket.empty:
        return pd.DataFrame(columns=columns)
    start = since if since is not None else int(by_bucket["bucket"].min())
    start -= start % step
    buckets = np.arange(start, until, step, dtype=np.int64)
    frame = by_bucket.set_index("bucket").reindex(buckets, fill_value=0)
    hist = frame[list(HIST_COLUMNS)].fillna(0).to_numpy(dtype=np.int64)
    n = frame["n"].to_numpy(dtype=np.int64)
    ok = frame["n_ok"].to_numpy(dtype=np.int64)
    user_counts = (
        users.set_index("bucket")["users"].reindex(buckets, fill_value=0)
        if not users.empty
        else pd.Series(0, index=buckets)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, ok / np.maximum(n, 1) * 100, np.nan)
    return pd.DataFrame(
        {
            "time": [datetime.fromtimestamp(int(b), UTC) for b in buckets],
            "requests": n,
            "users": user_counts.to_numpy(dtype=np.int64),
            "success_rate": rate,
            "p50": [percentile(h, 50) for h in hist],
            "p95": [percentile(h, 95) for h in hist],
        }
    )


def hour_of_day(by_hour: pd.DataFrame) -> pd.DataFrame:
    """[hour, n] for hours 0-23 (UTC), from [hour, n] rows."""
    hours = pd.DataFrame({"hour": range(24)})
    counts = by_hour.groupby("hour")["n"].sum() if not by_hour.empty else {}
    return hours.assign(n=hours["hour"].map(counts).fillna(0).astype("int64"))


def hours_from_buckets(by_bucket: pd.DataFrame) -> pd.DataFrame:
    """[hour, n] from activity buckets of an hour or less."""
    if by_bucket.empty:
        return pd.DataFrame({"hour": [], "n": []}, dtype="int64")
    return pd.DataFrame({"hour": by_bucket["bucket"] // 3600 % 24, "n": by_bucket["n"]})


def day_of_week(by_bucket: pd.DataFrame) -> pd.DataFrame:
    """[weekday, day, n] Monday first, from activity buckets of a day or less.

    1970-01-01 (epoch day 0) was a Thursday, weekday 3.
    """
    days = pd.DataFrame({"weekday": range(7), "day": WEEKDAYS})
    if by_bucket.empty:
        return days.assign(n=0)
    weekday = (by_bucket["bucket"] // 86400 + 3) % 7
    counts = by_bucket.assign(weekday=weekday).groupby("weekday")["n"].sum()
    return days.assign(n=days["weekday"].map(counts).fillna(0).astype("int64"))


# --- endpoints and versions ------------------------------------------------------------------


def hide_endpoints(df: pd.DataFrame, patterns) -> pd.DataFrame:
    """Drop endpoints whose path (or 'METHOD path') matches a `*` wildcard pattern."""
    patterns = [p for p in patterns if p]
    if df.empty or not patterns:
        return df

    def hidden(method: str, path: str) -> bool:
        label = f"{method} {path}"
        return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(label, p) for p in patterns)

    mask = [not hidden(m, e) for m, e in zip(df["method"], df["endpoint"], strict=True)]
    return df[mask]


def endpoint_table(df: pd.DataFrame, status_class: str | None = None) -> pd.DataFrame:
    """[endpoint, method, path, n, errors, error_rate, mean_rt] top 50 by requests.

    `status_class` ('2xx'...) keeps only that class's requests (the panel's tabs).
    """
    columns = ["endpoint", "method", "path", "n", "errors", "error_rate", "mean_rt"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    rows = df
    if status_class:
        low = int(status_class[0]) * 100
        rows = df[(df["status"] >= low) & (df["status"] < low + 100)]
    rows = rows.assign(errors=np.where(rows["status"] >= 400, rows["n"], 0))
    grouped = rows.groupby(["method", "endpoint"], as_index=False)[["n", "errors", "rt_sum"]].sum()
    grouped = grouped[grouped["n"] > 0]
    grouped["error_rate"] = grouped["errors"] / grouped["n"] * 100
    grouped["mean_rt"] = grouped["rt_sum"] / grouped["n"]
    grouped = grouped.rename(columns={"endpoint": "path"})
    grouped["endpoint"] = grouped["method"] + " " + grouped["path"]
    grouped = grouped.sort_values(["n", "endpoint"], ascending=[False, True]).head(TOP_ENDPOINTS)
    return grouped[columns].reset_index(drop=True)


def versions(df: pd.DataFrame) -> pd.DataFrame:
    """[version, n]: requests per API version parsed from the path ('' when none)."""
    if df.empty:
        return pd.DataFrame(columns=["version", "n"])
    version = df["endpoint"].map(api_version)
    out = df.assign(version=version).groupby("version", as_index=False)["n"].sum()
    out = out[out["version"] != ""]
    return out.sort_values(["n", "version"], ascending=[False, True]).reset_index(drop=True)


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
