"""Raw rows: the data API's pages, the request explorer's and the overview's CSV export,
each under its own filters, all read from one snapshot of the store (server.lake.pages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd

from server.db import get_engine
from server.lake.pages import (
    COLUMNS,
    ISO_UTC,
    Where,
    hour_range,
    page_json,
    page_rows,
    stream_rows,
)
from server.lake.source import open_rows
from server.rules import normalise_ip
from server.stats.breakdowns import hostnames as distinct_hostnames
from server.stats.conditions import filter_conditions
from server.stats.filters import Filters, window_for
from server.stats.planner import clicked_users, plan

PAGE_SIZE = 50_000

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
    "consumer",
    # The id of the row's details and captures (stats.errors.capture), for its view.
    "detail",
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
    # A share link's restrictions (server.stats.filters.Filters.fixed).
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
    # dtype object: a column of 64-bit detail ids with some None would otherwise become
    # floats, and an id past 2^53 would no longer name its details.
    frame = pd.DataFrame(found[:size], columns=list(EXPLORER_COLUMNS), dtype=object)
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
    """Every hostname the key has logged (the hostname menus)."""
    with open_rows(key_id) as rows:
        return distinct_hostnames(rows)


SERVICES_LIMIT = 500  # menu entries (a service name is the exporter's to choose)


def services(key_id: int) -> list[dict]:
    """[{service, release}]: every service and release the key's OpenTelemetry spans named
    (the overview's service and release menus), newest release first within a service.
    One scan of two columns, remembered by the rows' fingerprint (server.stats.cache): a
    page asks it again for free until a row arrives or a file changes."""
    from server.stats import cache

    def computed():
        with open_rows(key_id) as rows:
            found = rows.frame(
                "SELECT service, release, max(created_at) AS last FROM {rows} "
                "WHERE service IS NOT NULL GROUP BY service, release "
                f"ORDER BY service, last DESC, release LIMIT {SERVICES_LIMIT}"
            )
            newest = rows.query(f"SELECT max(id) FROM {rows.hot_table}").fetchone()[0]
            read = cache.fingerprint_of(rows.snapshot, rows.hot_rows, newest)
        pairs = [{"service": s, "release": r}
                 for s, r in zip(found["service"], found["release"], strict=True)]  # fmt: skip
        return [{k: (None if pd.isna(v) else str(v)) for k, v in p.items()} for p in pairs], read

    return cache.remembered(key_id, "services", computed)


# --- the data API ----------------------------------------------------------------------


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass
class RequestFilter:
    """Conditions on a key's rows; None means "any"."""

    key_id: int
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    hostname: str | None = None
    ip_address: str | None = None
    status: int | None = None
    location: str | None = None
    user_id: str | None = None
    consumer: str | None = None
    consumer_group: str | None = None
    service: str | None = None
    release: str | None = None

    @classmethod
    def from_args(cls, key_id: int, args: dict) -> RequestFilter:
        """The data API's parameters (date, dateFrom, dateTo inclusive, ...)."""

        def day_after(day: date) -> datetime | None:
            # The calendar's last day has no day after it: no upper bound then.
            return None if day == date.max else day_start(day + timedelta(days=1))

        since = until = None
        if args.get("date"):
            since, until = day_start(args["date"]), day_after(args["date"])
        if args.get("dateFrom"):
            since = max(filter(None, (since, day_start(args["dateFrom"]))))
        if args.get("dateTo"):
            end = day_after(args["dateTo"])
            until = min(filter(None, (until, end)), default=None)
        location = args.get("location")
        return cls(
            key_id=key_id,
            since=since,
            until=until,
            hostname=args.get("hostname"),
            ip_address=args.get("ipAddress"),
            status=args.get("status"),
            location=location.upper() if location else None,
            user_id=args.get("user_id"),
            consumer=args.get("consumer"),
            consumer_group=args.get("consumer_group"),
            service=args.get("service"),
            release=args.get("release"),
        )

    def where(self) -> Where:
        """The filters as engine SQL (dates are whole UTC days, so hour bounds)."""
        since = int(self.since.timestamp()) if self.since is not None else None
        until = int(self.until.timestamp()) if self.until is not None else None
        where = Where(hour_range(since, until))
        if self.hostname is not None:
            where = where.and_("hostname = ?", self.hostname)
        if self.ip_address is not None:
            # Stored addresses are canonical (server.ingest.fields.normalise_ip); so is this one.
            where = where.and_("ip_address = ?", normalise_ip(self.ip_address) or "")
        if self.status is not None:
            where = where.and_("status = ?", self.status)
        if self.location is not None:
            where = where.and_("location = ?", self.location)
        if self.user_id is not None:
            where = where.and_("user_id = ?", self.user_id)
        if self.consumer is not None:
            where = where.and_("consumer = ?", self.consumer)
        if self.consumer_group is not None:
            where = where.and_("consumer_group = ?", self.consumer_group)
        if self.service is not None:
            where = where.and_("service = ?", self.service)
        if self.release is not None:
            where = where.and_("release = ?", self.release)
        return where


def data_page_json(
    filters: RequestFilter, page: int, page_size: int = PAGE_SIZE, compact: bool = False
) -> tuple[str, int]:
    """One page (1-based) oldest first as a JSON array text, and its row count."""
    with open_rows(filters.key_id) as rows:
        return page_json(rows, filters.where(), page, page_size, compact)
