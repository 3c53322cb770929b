"""Reading and writing a key's uptime monitors and their pings (the API and the dashboard)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, func, insert, select

from server.db import as_utc, is_postgres, utcnow
from server.models import api_keys, monitors, pings

MAX_ID = 2**31 - 1  # monitors.id is a 32-bit INTEGER on both backends

# Windows of the uptime figures, by the name the API answers them under.
UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


class MonitorLimitReached(Exception):
    """The key already has as many monitors as MONITOR_LIMIT allows."""


class DuplicateMonitor(Exception):
    """The key already monitors this URL with this method."""


def is_up(status_column):
    """A check counts as up when the server answered 2xx or 3xx; errors and 4xx/5xx are down."""
    return and_(status_column.is_not(None), status_column >= 200, status_column < 400)


def create_monitor(conn, key_id: int, url: str, method: str, limit: int) -> dict:
    """Insert a monitor for the key (call inside a transaction)."""
    if is_postgres(conn):
        # Serialise creations per key so two concurrent requests cannot pass the limit.
        conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id).with_for_update())
    owned = conn.execute(
        select(func.count()).select_from(monitors).where(monitors.c.key_id == key_id)
    ).scalar_one()
    if owned >= limit:
        raise MonitorLimitReached(limit)
    duplicate = conn.execute(
        select(monitors.c.id).where(
            monitors.c.key_id == key_id, monitors.c.url == url, monitors.c.method == method
        )
    ).first()
    if duplicate is not None:
        raise DuplicateMonitor(duplicate.id)
    now = utcnow()
    monitor_id = conn.execute(
        insert(monitors)
        .values(key_id=key_id, url=url, method=method, created_at=now)
        .returning(monitors.c.id)
    ).scalar_one()
    return {
        "id": monitor_id,
        "url": url,
        "method": method,
        "created_at": now,
        "latest": None,
        "uptime": dict.fromkeys(UPTIME_WINDOWS),
    }


def list_monitors(conn, key_id: int, now: datetime | None = None) -> list[dict]:
    """The key's monitors, oldest first, each with its latest check and uptime percentages."""
    now = now or utcnow()
    rows = conn.execute(
        select(monitors.c.id, monitors.c.url, monitors.c.method, monitors.c.created_at)
        .where(monitors.c.key_id == key_id)
        .order_by(monitors.c.id)
    ).all()
    ids = [row.id for row in rows]
    uptime = uptime_by_monitor(conn, ids, now)
    return [
        {
            "id": row.id,
            "url": row.url,
            "method": row.method,
            "created_at": as_utc(row.created_at),
            "latest": latest_ping(conn, row.id),
            "uptime": uptime.get(row.id, dict.fromkeys(UPTIME_WINDOWS)),
        }
        for row in rows
    ]


def uptime_by_monitor(conn, monitor_ids: list[int], now: datetime) -> dict[int, dict]:
    """{monitor id: {"24h": percent or None, ...}} in one scan of the last 30 days of pings."""
    if not monitor_ids:
        return {}
    up = is_up(pings.c.status)
    columns = [pings.c.monitor_id]
    for name, span in UPTIME_WINDOWS.items():
        inside = pings.c.created_at >= now - span
        columns.append(func.sum(case((inside, 1), else_=0)).label(f"n_{name}"))
        columns.append(func.sum(case((and_(inside, up), 1), else_=0)).label(f"up_{name}"))
    oldest = now - max(UPTIME_WINDOWS.values())
    query = (
        select(*columns)
        .where(pings.c.monitor_id.in_(monitor_ids), pings.c.created_at >= oldest)
        .group_by(pings.c.monitor_id)
    )
    result = {}
    for row in conn.execute(query).mappings():
        result[row["monitor_id"]] = {
            name: _percent(row[f"up_{name}"], row[f"n_{name}"]) for name in UPTIME_WINDOWS
        }
    return result


def _percent(up: int | None, total: int | None) -> float | None:
    if not total:
        return None
    return round(100.0 * (up or 0) / total, 2)


def latest_ping(conn, monitor_id: int) -> dict | None:
    row = conn.execute(
        _ping_select()
        .where(pings.c.monitor_id == monitor_id)
        .order_by(pings.c.created_at.desc(), pings.c.id.desc())
        .limit(1)
    ).first()
    return _ping_dict(row) if row else None


def owned_monitor(conn, key_id: int, monitor_id: int):
    """The monitor's row if the key owns it, else None (someone else's is "not found" too)."""
    if not 0 < monitor_id <= MAX_ID:
        return None  # no such id can exist, and the database would refuse to compare it
    return conn.execute(
        select(monitors).where(monitors.c.id == monitor_id, monitors.c.key_id == key_id)
    ).first()


def delete_monitor(conn, key_id: int, monitor_id: int) -> bool:
    """Delete the key's monitor and its pings; False when the key has no such monitor."""
    if owned_monitor(conn, key_id, monitor_id) is None:
        return False
    conn.execute(delete(pings).where(pings.c.monitor_id == monitor_id))
    conn.execute(delete(monitors).where(monitors.c.id == monitor_id))
    return True


def list_pings(
    conn,
    monitor_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[dict]:
    """A monitor's checks between `since` and `until` (both inclusive), newest first."""
    query = _ping_select().where(pings.c.monitor_id == monitor_id)
    if since is not None:
        query = query.where(pings.c.created_at >= since)
    if until is not None:
        query = query.where(pings.c.created_at <= until)
    query = query.order_by(pings.c.created_at.desc(), pings.c.id.desc()).limit(limit)
    return [_ping_dict(row) for row in conn.execute(query)]


def _ping_select():
    return select(pings.c.created_at, pings.c.status, pings.c.response_time, pings.c.error)


def _ping_dict(row) -> dict:
    return {
        "created_at": as_utc(row.created_at),
        "status": row.status,
        "response_time": row.response_time,
        "error": row.error,
    }
