"""The errors, error group and consumers pages' data: server.stats' answers (errors,
consumers) shaped into table rows and trends. Plain functions, tested without a browser."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sqlalchemy import update

from dash_app.aggregations import trend_series
from dash_app.pages.common import moment
from server.db import get_engine, utcnow
from server.models import error_groups
from server.rules import DAY, HOUR, epoch_micros
from server.stats import consumers as consumer_stats
from server.stats import errors as error_stats
from server.stats.filters import Filters, Window, window_for

STATES = ("open", "resolved", "ignored")
SORTS = ("count", "users", "consumers", "last_seen")
# A page of groups: each row draws a sparkline, and nobody reads the 51st group.
SHOWN_GROUPS = 50
# Postgres' BIGINT: a longer id in a URL is no group, not an error.
MAX_ID = 2**63 - 1


def trend_window(window: Window) -> tuple[Window, str]:
    """The window with the trends' buckets: hours for a day's period, days for longer."""
    if window.since is not None and window.until - window.since <= DAY:
        return replace(window, step=HOUR), "hour"
    return replace(window, step=DAY), "day"


def parse_id(text) -> int | None:
    """A group or detail id from a URL or a table row: ASCII digits only, within BIGINT."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        return None
    text = str(text)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ID:
        return None
    return int(text)


def detail_text(value) -> str | None:
    """A request's detail id as text for the browser (a 64-bit id is no JavaScript number);
    only an exact integer names one (a float has lost the id's low bits)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        return None
    return str(int(value))


def _series(trend: pd.DataFrame, window: Window) -> pd.DataFrame:
    return trend_series(trend[["t", "n"]], window.since, window.until, window.step)


# --- the errors page ---------------------------------------------------------------------


@dataclass
class GroupList:
    """The groups of one state under the filters (the first SHOWN_GROUPS of them)."""

    rows: list[dict]
    total: int  # groups in that state
    occurrences: int  # their occurrences together
    trends: dict[int, pd.DataFrame]  # id -> [time, n]
    unit: str


def group_list(key_id: int, filters: Filters, state: str = "open", sort: str = "count"):
    window, unit = trend_window(window_for(filters.period))
    found = error_stats.groups(key_id, filters, window, sort if sort in SORTS else "count")
    table = found.table if state not in STATES else found.table[found.table["state"] == state]
    shown = table.head(SHOWN_GROUPS)
    trends = {
        int(gid): _series(found.trend[found.trend["id"] == gid], window) for gid in shown["id"]
    }
    return GroupList(
        rows=[_group_row(r) for r in shown.to_dict("records")],
        total=len(table),
        occurrences=int(table["n"].sum()) if len(table) else 0,
        trends=trends,
        unit=unit,
    )


def _group_row(row: dict) -> dict:
    return {
        "id": int(row["id"]),
        "type": row["type"],
        "message": row["message"] or "",
        "frame": row["frame"] or "",
        "route": row["route"] or "",
        "state": row["state"],
        # A frame's column with one regression holds NaN for the others, not None.
        "regressed": bool(pd.notna(row["regressed_at"])) and row["state"] == "open",
        "n": int(row["n"]),
        "users": int(row["users"]),
        "consumers": int(row["consumers"]),
        "last_seen": moment(row["last_us"]),
        "statuses": [int(s) for s in row["statuses"]],
        "versions": [str(v) for v in row["versions"]],
    }


def validation_rows(key_id: int, filters: Filters) -> list[dict]:
    """[route, location, type, n] per endpoint and field, most frequent first."""
    found = error_stats.validation(key_id, filters, window_for(filters.period))
    return [
        {"route": r.route, "location": r.location, "type": r.type, "n": int(r.n)}
        for r in found.itertuples(index=False)
    ]


# --- one group ---------------------------------------------------------------------------


def visible(key_id: int, group_id: int, filters: Filters) -> bool:
    """Whether the viewer may see the group: a share link only those with an occurrence
    under its fixed restrictions (ever), so a guessed id shows nothing else."""
    if not filters.fixed:
        return True
    scope = Filters(period="all", fixed=filters.fixed).with_click("error_group", str(group_id))
    return not error_stats.groups(key_id, scope, window_for("all")).table.empty


def group_detail(key_id: int, group_id: int, filters: Filters) -> dict | None:
    """The stored group, its numbers, trend and latest occurrences under the filters; None
    when the key has no such group (or the viewer may not see it)."""
    stored = error_stats.group(key_id, group_id)
    if stored is None or not visible(key_id, group_id, filters):
        return None
    window, unit = trend_window(window_for(filters.period))
    only = filters.with_click("error_group", str(group_id))
    found = error_stats.groups(key_id, only, window)
    counted = _group_row(found.table.iloc[0].to_dict()) if len(found.table) else None
    return {
        "id": group_id,
        "type": stored["type"],
        "message": stored["message"] or "",
        "frame": stored["frame"] or "",
        "route": stored["route"] or "",
        "state": stored["state"],
        "first_seen": moment(stored["first_seen"]),
        "last_seen": moment(stored["last_seen"]),
        "regressed_at": moment(stored["regressed_at"]) if stored["regressed_at"] else None,
        "regressions": stored.get("regressions") or 0,
        "period": counted or {"n": 0, "users": 0, "consumers": 0, "statuses": [], "versions": []},
        "trend": _series(found.trend, window),
        "unit": unit,
        "occurrences": error_stats.occurrences(key_id, group_id, only, window),
    }


def occurrence_rows(occurrences: list[dict]) -> list[dict]:
    """The occurrences table: the detail id as text (a 64-bit id is no JavaScript number)."""
    return [
        {
            "time": moment(o["at_us"]),
            "method": o["method"],
            "path": o["path"],
            "status": o["status"],
            "consumer": o["consumer"] or "",
            "user_id": o["user_id"] or "",
            "detail": detail_text(o["detail"]),
        }
        for o in occurrences
    ]


def occurrence(key_id: int, group_id: int, filters: Filters, detail_id: int) -> dict | None:
    """The occurrence with this detail id among the group's latest under the filters."""
    found = error_stats.occurrences(key_id, group_id, filters, window_for(filters.period))
    return next((o for o in found if o["detail"] == detail_id), None)


def set_state(key_id: int, group_id: int, state: str) -> bool:
    """Open, resolve or ignore a group of the key (PATCH /api/errors/<id> does the same);
    False when there is no such group."""
    if state not in STATES:
        raise ValueError(f"'state' must be one of {', '.join(STATES)}, not {state!r}.")
    values = {"state": state}
    if state == "resolved":
        values["resolved_at"] = epoch_micros(utcnow())
    with get_engine().begin() as conn:
        return bool(
            conn.execute(
                update(error_groups)
                .where(error_groups.c.key_id == key_id, error_groups.c.id == group_id)
                .values(**values)
            ).rowcount
        )


# --- consumers ---------------------------------------------------------------------------


# The busiest consumers the page lists (each row's `total` says how many there are): a
# page of 10,000 rows took seconds to draw (bench/dashboard.py --errors).
SHOWN_CONSUMERS = 100


def consumer_tables(key_id: int, filters: Filters) -> dict[str, list[dict]]:
    """`consumer_rows` per consumer and per consumer group, computed together."""
    found = consumer_stats.tables(
        key_id, filters, window_for(filters.period), limit=SHOWN_CONSUMERS
    )
    return {by: _consumer_rows(frame, by) for by, frame in found.items()}


def consumer_rows(key_id: int, filters: Filters, by: str = "consumer") -> list[dict]:
    """Per consumer (or consumer group), the SHOWN_CONSUMERS busiest: requests, error rate,
    p95, last seen, top endpoints, and `total`, how many had requests."""
    found = consumer_stats.table(
        key_id, filters, window_for(filters.period), by, limit=SHOWN_CONSUMERS
    )
    return _consumer_rows(found, by)


def _consumer_rows(found, by: str) -> list[dict]:
    rows = []
    for r in found.to_dict("records"):
        row = {
            "total": int(r["total"]),
            "id": r["name"],
            "requests": int(r["requests"]),
            "error_rate": float(r["error_rate"]),
            "p95": None if r["p95"] is None else float(r["p95"]),
            "last_seen": moment(r["last_us"]),
            "top_endpoints": list(r["top_endpoints"]),
        }
        if by == "consumer":
            row.update(name=r.get("display_name") or "", group=r.get("group") or "")
        rows.append(row)
    return rows
