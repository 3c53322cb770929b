"""Uptime data (SQL -> DataFrame and its shaping): monitors, their checks and uptime shares.

The monitors API and scheduler write `monitors` and `pings`; this module only reads them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import case, func, select

from server.db import as_utc, utcnow
from server.models import monitors, pings

UPTIME_WINDOWS = (
    ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
)
RECENT_CHECKS = 60


def is_up(status, error) -> bool:
    """A check is up when it got an answer below 400 and no error (timeout, refused, DNS)."""
    return error is None and status is not None and status < 400


def _up_expr():
    c = pings.c
    return case((c.error.is_(None) & c.status.is_not(None) & (c.status < 400), 1), else_=0)


def monitor_list(conn, key_id: int) -> pd.DataFrame:
    """[id, url, method, created_at] of the key's monitors, oldest first."""
    m = monitors.c
    result = conn.execute(
        select(m.id, m.url, m.method, m.created_at).where(m.key_id == key_id).order_by(m.id)
    )
    return pd.DataFrame(result.fetchall(), columns=["id", "url", "method", "created_at"])


def uptime_shares(conn, monitor_ids: list[int], now: datetime | None = None) -> pd.DataFrame:
    """[monitor_id, window, checks, up, uptime] for the 24 h / 7 d / 30 d windows."""
    now = now or utcnow()
    rows = []
    for name, length in UPTIME_WINDOWS:
        if not monitor_ids:
            break
        query = (
            select(
                pings.c.monitor_id,
                func.count().label("checks"),
                func.sum(_up_expr()).label("up"),
            )
            .where(pings.c.monitor_id.in_(monitor_ids), pings.c.created_at >= now - length)
            .group_by(pings.c.monitor_id)
        )
        for monitor_id, checks, up in conn.execute(query):
            rows.append((monitor_id, name, int(checks), int(up or 0)))
    frame = pd.DataFrame(rows, columns=["monitor_id", "window", "checks", "up"])
    frame["uptime"] = (frame["up"] / frame["checks"] * 100).astype(float)
    return frame


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
        is_up(None if pd.isna(s) else s, None if pd.isna(e) else e)
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
