"""The data API's reading: a key's logged requests, filtered and paged, from the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from server.ingest import normalise_ip
from server.lake.rows import COLUMNS, Where, hour_range, page_json
from server.lake.source import open_rows

PAGE_SIZE = 50_000
__all__ = ["COLUMNS", "PAGE_SIZE", "RequestFilter", "fetch_page_json"]


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
        )

    def where(self) -> Where:
        """The filters as engine SQL (dates are whole UTC days, so hour bounds)."""
        since = int(self.since.timestamp()) if self.since is not None else None
        until = int(self.until.timestamp()) if self.until is not None else None
        where = Where(hour_range(since, until))
        if self.hostname is not None:
            where = where.and_("hostname = ?", self.hostname)
        if self.ip_address is not None:
            # Stored addresses are canonical (server.ingest.normalise_ip); so is this one.
            where = where.and_("ip_address = ?", normalise_ip(self.ip_address) or "")
        if self.status is not None:
            where = where.and_("status = ?", self.status)
        if self.location is not None:
            where = where.and_("location = ?", self.location)
        if self.user_id is not None:
            where = where.and_("user_id = ?", self.user_id)
        return where


def fetch_page_json(
    filters: RequestFilter, page: int, page_size: int = PAGE_SIZE, compact: bool = False
) -> tuple[str, int]:
    """One page (1-based) oldest first as a JSON array text, and its row count."""
    with open_rows(filters.key_id) as rows:
        return page_json(rows, filters.where(), page, page_size, compact)
