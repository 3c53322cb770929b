"""Raw rows for the dashboard: the request explorer's pages and the overview's CSV export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from dash_app.filters import Filters, window_for
from dash_app.stats.conditions import filter_conditions
from dash_app.stats.planner import clicked_users, plan
from server.db import get_engine
from server.lake.rows import COLUMNS, ISO_UTC, Where, hour_range, page_rows, stream_rows
from server.lake.source import open_rows

EXPLORER_COLUMNS = (
    "created_at",
    "method",
    "hostname",
    "path",
    "status",
    "response_time",
    "location",
    "ip_address",
    "user_id",
    "browser",
    "os",
    "device",
)
_EXPLORER_SQL = [
    "strftime(created_at, '%Y-%m-%d %H:%M:%S')" if c == "created_at" else c
    for c in EXPLORER_COLUMNS
]


@dataclass
class ExplorerFilters:
    """The explorer's own filters; None means "any"."""

    since: datetime | None = None
    until: datetime | None = None  # exclusive
    status_class: str | None = None
    method: str | None = None
    hostname: str | None = None
    path_contains: str | None = None
    rt_min: int | None = None
    rt_max: int | None = None
    # A share link's restrictions (dash_app.filters.Filters.fixed).
    fixed: tuple[tuple[str, str], ...] = ()

    def where(self) -> Where:
        since = int(self.since.timestamp()) if self.since else None
        until = int(self.until.timestamp()) if self.until else None
        where = Where(hour_range(since, until))
        if self.status_class and self.status_class[0] in "12345":
            low = int(self.status_class[0]) * 100
            where = where.and_("status >= ? AND status < ?", low, low + 100)
        if self.method:
            where = where.and_("method = ?", self.method)
        if self.hostname:
            where = where.and_("hostname = ?", self.hostname)
        if self.path_contains:
            where = where.and_("contains(path, ?)", self.path_contains)
        if self.rt_min is not None:
            where = where.and_("response_time >= ?", self.rt_min)
        if self.rt_max is not None:
            where = where.and_("response_time <= ?", self.rt_max)
        if self.fixed:
            fixed = filter_conditions(Filters(fixed=self.fixed), "endpoint")
            where = where.and_(fixed.sql, *fixed.params)
        return where


def explorer_page(key_id: int, filters: ExplorerFilters, page: int, size: int = 50):
    """One page (0-based) of raw rows newest first, and whether another page follows."""
    with open_rows(key_id) as rows:
        found = page_rows(rows, filters.where(), _EXPLORER_SQL, page * size, size + 1)
    frame = pd.DataFrame(found[:size], columns=list(EXPLORER_COLUMNS))
    return frame, len(found) > size


def export_rows(key_id: int, filters: Filters, now: datetime | None = None):
    """The overview's filtered rows (the data API's columns), newest first, streamed."""
    with get_engine().connect() as conn:
        users = clicked_users(conn, key_id, filters)
    p = plan(key_id, filters, window_for(filters.period, now), users)
    columns = [ISO_UTC if c == "created_at" else c for c in COLUMNS]
    with open_rows(key_id) as rows:
        yield from stream_rows(rows, Where(p.where, p.params), columns)


def hostnames(key_id: int) -> list[str]:
    from dash_app.stats.breakdowns import hostnames as distinct_hostnames

    with open_rows(key_id) as rows:
        return distinct_hostnames(rows)
