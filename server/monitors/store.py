"""A key's uptime monitors and their pings: made, listed, deleted (the API and the dashboard)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select

from server.db import as_utc, utcnow
from server.keys.caps import CapReached, ensure_room
from server.lake.retention import Budget
from server.models import monitors, pings
from server.monitors.uptime import UPTIME_WINDOWS, uptime_by_monitor

MAX_ID = 2**31 - 1  # monitors.id is a 32-bit INTEGER on both backends


# The key already has as many monitors as MONITOR_LIMIT allows (server.keys.caps).
MonitorLimitReached = CapReached


class DuplicateMonitor(Exception):
    """The key already monitors this URL with this method."""


def create_monitor(conn, key_id: int, url: str, method: str, limit: int) -> dict:
    """Insert a monitor for the key (call inside a transaction)."""
    # Two concurrent requests cannot pass the limit: the key row is held until commit.
    ensure_room(conn, key_id, monitors, limit, "monitors", "MONITOR_LIMIT")
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


# --- retention (server.upkeep) -----------------------------------------------------------------

# Pings deleted in one short transaction.
BATCH_SIZE = 5000


def delete_old_pings(
    engine, cutoff: datetime, batch_size: int = BATCH_SIZE, budget: Budget | None = None
) -> int:
    """Pings created before `cutoff`, monitor by monitor through the (monitor, created_at) index."""
    with engine.connect() as conn:
        monitor_ids = list(conn.execute(select(monitors.c.id).order_by(monitors.c.id)).scalars())
    return sum(
        _delete_batches(
            engine,
            pings,
            [pings.c.monitor_id == m, pings.c.created_at < cutoff],
            batch_size,
            budget=budget,
        )
        for m in monitor_ids
    )


def _delete_batches(engine, table, conditions: list, batch_size: int, budget=None) -> int:
    """Delete the matching rows a batch (one short transaction) at a time; returns how many.

    A spent `budget`, checked before each batch, stops it early.
    """
    deleted = 0
    while True:
        if budget is not None and not budget.left():
            # Out of time: the run is unfinished only if something here is still to go.
            budget.spent = budget.spent or _any(engine, table, conditions)
            return deleted
        batch = select(table.c.id).where(*conditions).limit(batch_size).scalar_subquery()
        with engine.begin() as conn:
            count = conn.execute(delete(table).where(table.c.id.in_(batch))).rowcount
        deleted += count
        if budget is not None and count:
            budget.progressed = True
        if count < batch_size:
            return deleted


def _any(engine, table, conditions: list) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(table.c.id).where(*conditions).limit(1)).first() is not None
