"""Uptime: whether a check counts as up (defined here once, for the API, the dashboard
and the monitor_down alert), each monitor's share of good checks over 24 hours, 7 and 30
days, and its recent checks for the dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import and_, case, func, select

from server.db import as_utc, utcnow
from server.models import monitors, pings

# Windows of the uptime figures, by the name the API answers them under.
UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
RECENT_CHECKS = 60


def is_up(status_column):
    """A check counts as up when the server answered 2xx or 3xx; no answer (a timeout,
    refused, DNS, TLS: the error is recorded, the status empty) and 1xx/4xx/5xx are down."""
    return and_(status_column.is_not(None), status_column >= 200, status_column < 400)


def check_is_up(status, error) -> bool:
    """is_up of one check's values."""
    return error is None and status is not None and 200 <= status < 400


def uptime_counts(conn, monitor_ids: list[int], now: datetime) -> dict[int, dict]:
    """{monitor id: {"24h": (checks, up), ...}} in one scan of the last 30 days of pings;
    a window without checks is left out."""
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
            name: (int(row[f"n_{name}"] or 0), int(row[f"up_{name}"] or 0))
            for name in UPTIME_WINDOWS
            if row[f"n_{name}"]
        }
    return result


def uptime_by_monitor(conn, monitor_ids: list[int], now: datetime) -> dict[int, dict]:
    """{monitor id: {"24h": percent or None, ...}} (the API's figures, two decimals)."""
    counts = uptime_counts(conn, monitor_ids, now)
    return {
        monitor_id: {
            name: round(100.0 * found[name][1] / found[name][0], 2) if name in found else None
            for name in UPTIME_WINDOWS
        }
        for monitor_id, found in counts.items()
    }


def uptime_shares(conn, monitor_ids: list[int], now: datetime | None = None) -> pd.DataFrame:
    """[monitor_id, window, checks, up, uptime] for the 24 h / 7 d / 30 d windows."""
    counts = uptime_counts(conn, monitor_ids, now or utcnow())
    rows = [
        (monitor_id, name, checks, up)
        for monitor_id, found in counts.items()
        for name, (checks, up) in found.items()
    ]
    frame = pd.DataFrame(rows, columns=["monitor_id", "window", "checks", "up"])
    frame["uptime"] = (frame["up"] / frame["checks"] * 100).astype(float)
    return frame


def monitor_list(conn, key_id: int) -> pd.DataFrame:
    """[id, url, method, created_at] of the key's monitors, oldest first."""
    m = monitors.c
    result = conn.execute(
        select(m.id, m.url, m.method, m.created_at).where(m.key_id == key_id).order_by(m.id)
    )
    return pd.DataFrame(result.fetchall(), columns=["id", "url", "method", "created_at"])


def recent_checks(conn, monitor_id: int, limit: int = RECENT_CHECKS) -> pd.DataFrame:
    """[created_at, status, response_time, error, up, detail] oldest first, the last `limit`."""
    c = pings.c
    result = conn.execute(
        select(c.created_at, c.status, c.response_time, c.error)
        .where(c.monitor_id == monitor_id)
        .order_by(c.created_at.desc())
        .limit(limit)
    )
    frame = pd.DataFrame(
        result.fetchall(), columns=["created_at", "status", "response_time", "error"]
    )
    return shape_checks(frame.iloc[::-1].reset_index(drop=True))


def shape_checks(frame: pd.DataFrame) -> pd.DataFrame:
    """Add `up` and a hover `detail` to raw checks."""
    if frame.empty:
        return frame.assign(up=pd.Series(dtype=bool), detail=pd.Series(dtype=str))
    frame = frame.copy()
    frame["created_at"] = [as_utc(t) for t in frame["created_at"]]
    frame["up"] = [
        check_is_up(None if pd.isna(s) else s, None if pd.isna(e) else e)
        for s, e in zip(frame["status"], frame["error"], strict=True)
    ]
    frame["detail"] = [
        _detail(t, s, rt, e)
        for t, s, rt, e in zip(
            frame["created_at"],
            frame["status"],
            frame["response_time"],
            frame["error"],
            strict=True,
        )
    ]
    return frame


def _detail(moment, status, response_time, error) -> str:
    when = f"{moment:%Y-%m-%d %H:%M} UTC"
    if isinstance(error, str) and error:
        return f"{when} · {error}"
    if pd.isna(status):
        return f"{when} · no answer"
    took = "" if pd.isna(response_time) else f" in {int(response_time)} ms"
    return f"{when} · {int(status)}{took}"
