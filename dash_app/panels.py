"""A full overview refresh: every panel's data for one key, filters and period.

The overview page's callback and bench/dashboard.py both call `refresh`, so the
benchmark times exactly what a user waits for.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from dash_app import aggregations as agg
from dash_app import figures
from dash_app.countries import name_of
from server import stats
from server.stats import latency
from server.stats.filters import Filters, Window, window_for


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
    endpoints: pd.DataFrame  # [method, endpoint, status_class, n, rt_sum]
    versions: pd.DataFrame
    locations: pd.DataFrame
    browsers: pd.DataFrame
    systems: pd.DataFrame
    devices: pd.DataFrame
    top_users: pd.DataFrame
    user_ids: pd.DataFrame  # [user_id, n]: the busiest client-sent user ids
    hostnames: list[str]
    read: str = ""  # the state of the rows it was computed from (server.stats.cache)

    @property
    def empty(self) -> bool:
        return not self.summary["requests"]


def compute(key_id: int, filters: Filters, now: datetime | None = None) -> Overview:
    """Ask every panel's question over one snapshot (server.stats), then shape the answers.

    Every panel reads the same rows under the same WHERE clause, so they agree.
    """
    window = window_for(filters.period, now)
    a = stats.answer(key_id, filters, window)
    parts, clients = a.parts, a.clients
    return Overview(
        window=window,
        summary=agg.summary(parts.by_status, a.previous_total),
        users=a.users.distinct,
        percentiles=latency.percentiles(a.latency, agg.PERCENTILES),
        histogram=agg.histogram_bars(latency.display_histogram(a.latency)),
        status_codes=agg.status_codes(parts.by_status),
        activity=agg.activity(
            agg.buckets(parts.traffic, window.step),
            a.users.per_bucket,
            a.latency_buckets,
            window.since,
            window.shown_until,
            window.step,
        ),
        hours=agg.hour_of_day(parts.traffic),
        weekdays=agg.day_of_week(parts.traffic),
        endpoints=parts.endpoints,
        versions=agg.versions(parts.versions),
        locations=agg.ranked(parts.locations, "location"),
        browsers=agg.ranked(clients, "browser", 15),
        systems=agg.ranked(clients, "os", 15),
        devices=agg.ranked(clients, "device"),
        top_users=agg.top_users(a.users.top),
        user_ids=a.user_ids,
        hostnames=a.hostnames,
        read=a.read,
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
        "versions": figures.pie(data.versions, "version", unknown="No version"),
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
        "user_ids": [
            {"user_id": str(row.user_id), "n": int(row.n)} for row in data.user_ids.itertuples()
        ],
    }


def status_links(status_codes: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(text, anchor, id) of the errors page links the status codes panel offers: server
    errors lead to the error groups, 422s to the validation errors."""
    if status_codes.empty:
        return []
    codes = status_codes.groupby("status")["n"].sum()
    server_errors = int(codes[codes.index >= 500].sum())
    invalid = int(codes.get(422, 0))
    links = []
    if server_errors:
        links.append((f"{server_errors:,} server errors →", "", "ov-to-errors"))
    if invalid:
        links.append((f"{invalid:,} invalid (422) →", "#validation", "ov-to-validation"))
    return links


def refresh(key_id: int, filters: Filters, now: datetime | None = None):
    """One full overview refresh: queries, shaping and figures."""
    data = compute(key_id, filters, now)
    return data, render(data)


def remembered_refresh(key_id: int, filters: Filters, now: datetime | None = None):
    """`refresh`, answered from the shared answer cache when the key's rows are exactly
    as they were when the same view was last computed (server.stats.cache); the page's
    callback calls this, bench/dashboard.py times `refresh` itself."""
    window = window_for(filters.period, now)
    question = f"overview|{_code_version()}|{key_id}|{window!r}|{filters!r}"

    def computed():
        data = compute(key_id, filters, now)
        # Figures are plain dicts (dash_app.figures), what Dash sends anyway: unpickling
        # plotly Figures validated every property again, 0.14 s of a 0.26 s cache hit.
        return (data, render(data)), data.read

    return stats.remembered(key_id, question, computed)


@functools.cache
def _code_version() -> str:
    """The code that shapes an answer: a stored one from other code is not reused."""
    from server import stats as package

    digest = hashlib.sha256()
    here = Path(__file__).parent
    sources = [here / name for name in ("panels.py", "aggregations.py", "figures.py")]
    for path in sorted([*sources, *Path(package.__file__).parent.glob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
