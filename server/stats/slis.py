"""Service level indicators: how many of a scope's requests were good and bad over exact
windows, and per hour, from every stored row (files and hot rows, one snapshot).

What a scope and a bad request are is plain data here (server.slos says what an SLO
means by them). Windows are [since, until) in epoch microseconds, exact to the
microsecond; the hour column bounds each scan as well, so the engine skips the files' row
groups outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from server.lake.source import open_rows
from server.stats.conditions import Conditions, glob_pattern

HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Scope:
    """Which requests count: all, or those of a hostname, of endpoints (templates such as
    "GET /v1/users/{id}" or "/v1/users/{id}", or `*` patterns of either) and of a consumer
    group, together."""

    hostname: str | None = None
    endpoints: tuple[str, ...] = ()
    consumer_group: str | None = None


@dataclass(frozen=True)
class Indicator:
    """One SLI to measure: its scope, the SQL of a bad request (our own text, never a
    user's), the window of the SLO and the shorter windows ending with it."""

    scope: Scope
    bad: str
    since_us: int
    until_us: int
    windows: tuple[int, ...] = ()  # lengths in µs of windows ending at until_us
    hourly: bool = True


@dataclass
class Measured:
    requests: int
    bad: int
    # (requests, bad) of each of Indicator.windows, in its order.
    windows: list[tuple[int, int]]
    # [hour, requests, bad]: the SLO window's requests per epoch hour (empty: not asked).
    hourly: pd.DataFrame


def bad_sql(objective: str, *, include_4xx: bool = False, threshold_ms: int | None = None) -> str:
    """A bad request: availability, an error answer (5xx, or 4xx too); latency, slower
    than `threshold_ms`."""
    if objective == "latency":
        return f"response_time > {int(threshold_ms)}"
    return f"status >= {400 if include_4xx else 500}"


def scope_conditions(scope: Scope) -> Conditions:
    c = Conditions()
    if scope.hostname:
        c.add("hostname = ?", scope.hostname)
    if scope.consumer_group:
        c.add("consumer_group = ?", scope.consumer_group)
    if scope.endpoints:
        parts, params = [], []
        for pattern in scope.endpoints:
            glob = glob_pattern(pattern)
            parts.append("route GLOB ? OR endpoint GLOB ?")
            params += [glob, glob]
        c.add(" OR ".join(parts), *params)
    return c


def span_sql(since_us: int, until_us: int) -> str:
    """[since, until) on the rows' time, bounded by their hour column too."""
    since_us, until_us = int(since_us), int(until_us)
    return (
        f"hour >= {since_us // HOUR_US} AND hour <= {(until_us - 1) // HOUR_US} AND "
        f"epoch_us(created_at) >= {since_us} AND epoch_us(created_at) < {until_us}"
    )


def measure(key_id: int, indicators: list[Indicator]) -> list[Measured]:
    """Each indicator measured, all from one snapshot of the key's rows: per indicator,
    one scan for its hourly counts and one for its windows."""
    if not indicators:
        return []
    since = min(i.since_us for i in indicators)
    until = max(i.until_us for i in indicators)
    with open_rows(key_id, since, until) as rows:
        return [_measure(rows, i) for i in indicators]


def _measure(rows, indicator: Indicator) -> Measured:
    scope = scope_conditions(indicator.scope)
    bad = indicator.bad
    if indicator.hourly:
        hourly = rows.frame(
            f"SELECT hour, count(*) AS requests, count(*) FILTER (WHERE {bad}) AS bad "
            f"FROM {{rows}} WHERE {span_sql(indicator.since_us, indicator.until_us)} "
            f"AND {scope.sql} GROUP BY hour ORDER BY hour",
            list(scope.params),
        ).astype("int64")
        requests, bad_total = int(hourly["requests"].sum()), int(hourly["bad"].sum())
    else:
        hourly = pd.DataFrame({"hour": [], "requests": [], "bad": []}, dtype="int64")
        requests = bad_total = None
    until = indicator.until_us
    lengths = list(indicator.windows)
    if requests is None:
        lengths.append(until - indicator.since_us)
    windows: list[tuple[int, int]] = []
    if lengths:
        longest = max(lengths)
        parts = ", ".join(
            f"count(*) FILTER (WHERE epoch_us(created_at) >= {until - w}), "
            f"count(*) FILTER (WHERE epoch_us(created_at) >= {until - w} AND {bad})"
            for w in lengths
        )
        found = rows.query(
            f"SELECT {parts} FROM {{rows}} WHERE {span_sql(until - longest, until)} "
            f"AND {scope.sql}",
            list(scope.params),
        ).fetchone()
        windows = [(int(found[2 * i]), int(found[2 * i + 1])) for i in range(len(lengths))]
    if requests is None:
        requests, bad_total = windows.pop()
    return Measured(requests, bad_total, windows, hourly)
