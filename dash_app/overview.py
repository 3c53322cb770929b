"""A full overview refresh: every panel's data for one key, filters and period.

The overview page's callback and bench/dashboard.py both call `refresh`, so the
benchmark times exactly what a user waits for.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from dash_app import aggregations as agg
from dash_app import figures
from dash_app import queries as q
from dash_app.countries import name_of
from dash_app.filters import Filters, Window, bounded, window_for


@dataclass
class Overview:
    """The panel data (DataFrames and numbers) for one refresh."""

    window: Window
    summary: dict
    users: int
    percentiles: dict
    histogram: pd.DataFrame
    status_codes: pd.DataFrame
    activity: pd.DataFrame
    hours: pd.DataFrame
    weekdays: pd.DataFrame
    endpoints: pd.DataFrame  # [method, endpoint, status, n, rt_sum] after hiding
    versions: pd.DataFrame
    locations: pd.DataFrame
    browsers: pd.DataFrame
    systems: pd.DataFrame
    devices: pd.DataFrame
    top_users: pd.DataFrame
    hostnames: list[str]
    # True when a click filter made the refresh read raw rows from part of the period.
    bounded: bool = False
    # True when the endpoints (keeping ids or query strings) come from part of the period.
    endpoints_bounded: bool = False

    @property
    def empty(self) -> bool:
        return not self.summary["requests"]


# Panels' queries run side by side on their own connections (psycopg releases the GIL
# while PostgreSQL works); one small pool per process bounds the connections they take.
PARALLEL_QUERIES = 4
_pool = ThreadPoolExecutor(max_workers=PARALLEL_QUERIES, thread_name_prefix="panels")


def _queries(key_id: int, window: Window) -> dict:
    previous = window.previous
    return {
        "by_status": q.by_status,
        "previous": (lambda s: q.total_requests(s.at(previous))) if previous else None,
        "by_bucket": q.by_bucket,
        "users_by_bucket": q.users_by_bucket,
        # Buckets of an hour or less already give the hours of day.
        "by_hour": q.by_hour if window.step == 86400 else None,
        "endpoints": q.endpoints,
        "locations": q.locations,
        "clients": q.clients,
        "users": q.distinct_users,
        "top_users": q.top_users,
        "hostnames": lambda s: q.hostnames(s.conn, key_id),
    }


def compute(engine, key_id: int, filters: Filters, now: datetime | None = None) -> Overview:
    """Run every panel's query (in parallel) and shape the results.

    A click on anything but a status needs raw rows for some panels (users, and the
    breakdowns by the other dimensions); when the period holds more than RAW_ROW_BUDGET
    requests, such a view covers its most recent days that fit, for every panel alike,
    and says so.
    """
    full = window_for(filters.period, now)
    window = full
    if filters.needs_raw:
        with engine.connect() as conn:
            window = bounded(full, q.raw_earliest(conn, key_id, full))
    paths = None
    if {"endpoint", "version"} & set(filters.click):
        with engine.connect() as conn:
            paths = q.matching_paths(q.Scope(conn, key_id, filters, window))

    def run(query):
        if query is None:
            return None
        with engine.connect() as conn:
            return query(q.Scope(conn, key_id, filters, window, paths))

    tasks = _queries(key_id, window)
    r = dict(zip(tasks, _pool.map(run, tasks.values()), strict=True))
    # The activity buckets tile the window, so their histograms sum to the period's.
    hist = agg.histogram(r["by_bucket"])
    endpoints = agg.hide_endpoints(r["endpoints"], filters.hidden)
    clients = r["clients"]
    return Overview(
        window=window,
        summary=agg.summary(r["by_status"], r["previous"]),
        users=r["users"],
        percentiles=agg.percentiles(hist),
        histogram=agg.histogram_bars(hist),
        status_codes=agg.status_codes(r["by_status"]),
        activity=agg.activity(
            r["by_bucket"], r["users_by_bucket"], window.since, window.shown_until, window.step
        ),
        hours=agg.hour_of_day(
            r["by_hour"] if r["by_hour"] is not None else agg.hours_from_buckets(r["by_bucket"])
        ),
        weekdays=agg.day_of_week(r["by_bucket"]),
        endpoints=endpoints,
        versions=agg.versions(endpoints),
        locations=agg.ranked(r["locations"], "location"),
        browsers=agg.ranked(clients, "browser", 15),
        systems=agg.ranked(clients, "os", 15),
        devices=agg.ranked(clients, "device"),
        top_users=agg.top_users(r["top_users"]),
        hostnames=r["hostnames"],
        bounded=window != full,
        endpoints_bounded=bool(r["endpoints"].attrs.get("bounded")),
    )


def unknown(value: str) -> str:
    return value or "Unknown"


def render(data: Overview) -> dict:
    """Figures and table rows for the page (what the callback sends to the browser)."""
    countries = data.locations.head(15)
    return {
        "activity": figures.activity(data.activity),
        "histogram": figures.response_histogram(data.histogram),
        "status_codes": figures.status_codes(data.status_codes),
        "versions": figures.pie(data.versions, "version"),
        "map": figures.world_map(data.locations),
        "countries": figures.bars(
            countries.assign(label=countries["value"].map(name_of)),
            "label",
            filter_values=countries["value"],
        ),
        "browsers": figures.bars(
            data.browsers.assign(label=data.browsers["value"].map(unknown)),
            "label",
            filter_values=data.browsers["value"],
        ),
        "systems": figures.bars(
            data.systems.assign(label=data.systems["value"].map(unknown)),
            "label",
            filter_values=data.systems["value"],
        ),
        "devices": figures.pie(data.devices),
        "hours": figures.bars(
            data.hours.assign(label=data.hours["hour"].map(lambda h: f"{h:02d}:00")),
            "label",
            horizontal=False,
        ),
        "weekdays": figures.bars(data.weekdays, "day", horizontal=False),
        "endpoints": agg.endpoint_table(data.endpoints).to_dict("records"),
        "top_users": [
            {
                "user": row.user,
                "requests": int(row.requests),
                "last_seen": row.last_seen.strftime("%Y-%m-%d %H:%M UTC"),
                "location": name_of(row.location) if row.location else "Unknown",
            }
            for row in data.top_users.itertuples()
        ],
    }


def refresh(engine, key_id: int, filters: Filters, now: datetime | None = None):
    """One full overview refresh: queries, shaping and figures."""
    data = compute(engine, key_id, filters, now)
    return data, render(data)
