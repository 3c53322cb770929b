"""Reading and deleting a key's raw request rows (the data API, the explorer, CSV export)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, delete, select, tuple_

from server.db import as_utc
from server.models import api_keys, key_tables, requests, user_agents

PAGE_SIZE = 50_000
COLUMNS = (
    "hostname",
    "ip_address",
    "path",
    "user_agent",
    "method",
    "status",
    "response_time",
    "location",
    "user_id",
    "created_at",
    "browser",
    "os",
    "device",
    "framework",
)
_SELECT = (
    requests.c.hostname,
    requests.c.ip_address,
    requests.c.path,
    user_agents.c.user_agent,
    requests.c.method,
    requests.c.status,
    requests.c.response_time,
    requests.c.location,
    requests.c.user_id,
    requests.c.created_at,
    user_agents.c.browser,
    user_agents.c.os,
    user_agents.c.device,
    requests.c.framework,
)


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
        since = until = None
        if args.get("date"):
            since, until = day_start(args["date"]), day_start(args["date"] + timedelta(days=1))
        if args.get("dateFrom"):
            since = max(filter(None, (since, day_start(args["dateFrom"]))))
        if args.get("dateTo"):
            end = day_start(args["dateTo"] + timedelta(days=1))
            until = min(filter(None, (until, end)))
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

    def conditions(self) -> list:
        c = requests.c
        conds = [c.key_id == self.key_id]
        if self.since is not None:
            conds.append(c.created_at >= self.since)
        if self.until is not None:
            conds.append(c.created_at < self.until)
        for column, value in (
            (c.hostname, self.hostname),
            (c.ip_address, self.ip_address),
            (c.status, self.status),
            (c.location, self.location),
            (c.user_id, self.user_id),
        ):
            if value is not None:
                conds.append(column == value)
        return conds


def fetch_page(conn, filters: RequestFilter, page: int, page_size: int = PAGE_SIZE) -> list[tuple]:
    """One page of rows, oldest first.

    The page start is found by walking the (key_id, created_at, id) index only,
    then the page itself is a keyset range, so deep pages never sort or fetch
    the rows they skip.
    """
    conds = filters.conditions()
    order = (requests.c.created_at, requests.c.id)
    start = None
    if page > 1:
        start = conn.execute(
            select(*order).where(*conds).order_by(*order).offset((page - 1) * page_size).limit(1)
        ).first()
        if start is None:
            return []
        conds.append(tuple_(*order) >= tuple_(start.created_at, start.id))
    query = (
        select(*_SELECT)
        .select_from(requests.outerjoin(user_agents, requests.c.user_agent_id == user_agents.c.id))
        .where(and_(*conds))
        .order_by(*order)
        .limit(page_size)
    )
    return [_format(row) for row in conn.execute(query)]


def _format(row) -> tuple:
    values = list(row)
    if values[1] is not None:
        values[1] = str(values[1])
    values[9] = as_utc(values[9]).isoformat()
    return tuple(values)


def delete_key_data(conn, key_id: int) -> None:
    """Remove every row a key owns, then the key itself (call inside one transaction)."""
    for table in key_tables():
        conn.execute(delete(table).where(table.c.key_id == key_id))
    conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
