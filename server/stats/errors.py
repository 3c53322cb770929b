"""Why it failed: error groups with their counts, affected consumers and users, trends,
status codes and versions, exact under the dashboard's filters and period; a group's
occurrences with their stacks and captured request and response; validation errors per
endpoint and field.

Counts come from the request rows (each carries its error group), so every filter and
click of the overview applies to them; the stacks, messages and captures come from the
details and payloads datasets (server.lake.layout), joined by the rows' `detail` id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select

from server.db import get_engine
from server.lake.layout import DETAILS, PAYLOADS
from server.lake.source import open_rows
from server.models import error_groups
from server.stats.filters import Filters, Window
from server.stats.planner import Plan, clicked_users, plan

SORTS = {"count": "n DESC", "users": "users DESC", "consumers": "consumers DESC",
         "last_seen": "last_us DESC"}  # fmt: skip
OCCURRENCES = 50


def _plan(key_id: int, filters: Filters, window: Window) -> Plan:
    with get_engine().connect() as conn:
        return plan(key_id, filters, window, clicked_users(conn, key_id, filters))


@dataclass
class Groups:
    """[id, type, message, frame, route, state, first_seen, regressed_at, n, users,
    consumers, last_us, statuses, versions, regressions, resolved_at] and each group's
    daily counts [id, day, n]."""

    table: pd.DataFrame
    trend: pd.DataFrame


def groups(key_id: int, filters: Filters, window: Window, sort: str = "count") -> Groups:
    """Every error group with an occurrence under the filters, busiest (or `sort`) first."""
    p = _plan(key_id, filters, window)
    order = SORTS.get(sort, SORTS["count"])
    with open_rows(key_id) as rows:
        counted = rows.frame(
            "SELECT error_group AS id, count(*) AS n, count(DISTINCT ux) AS users, "
            "count(DISTINCT consumer) AS consumers, epoch_us(max(created_at)) AS last_us, "
            "list_sort(list(DISTINCT status)) AS statuses, "
            "coalesce(list_sort(list(DISTINCT version) FILTER (WHERE version <> '')), []) "
            "AS versions "
            f"FROM {{rows}} WHERE {p.where} AND error_group IS NOT NULL "
            f"GROUP BY error_group ORDER BY {order}, id",
            list(p.params),
        )
        trend = rows.frame(
            f"SELECT error_group AS id, {p.bucket} AS t, count(*) AS n FROM {{rows}} "
            f"WHERE {p.where} AND error_group IS NOT NULL GROUP BY ALL ORDER BY ALL",
            list(p.params),
        )
    known = _known(key_id, [int(i) for i in counted["id"]])
    table = counted.merge(known, on="id", how="inner") if len(counted) else counted
    columns = ["id", "type", "message", "frame", "route", "state", "first_seen", "regressed_at",
               "n", "users", "consumers", "last_us", "statuses", "versions", "regressions",
               "resolved_at"]  # fmt: skip
    return Groups(table.reindex(columns=columns), trend)


def _known(key_id: int, ids: list[int]) -> pd.DataFrame:
    g = error_groups.c
    columns = [g.id, g.type, g.message, g.frame, g.route, g.state, g.first_seen, g.regressed_at,
               g.regressions, g.resolved_at]  # fmt: skip
    if not ids:
        return pd.DataFrame(columns=[c.name for c in columns])
    with get_engine().connect() as conn:
        found = conn.execute(select(*columns).where(g.key_id == key_id, g.id.in_(ids))).all()
    return pd.DataFrame(found, columns=[c.name for c in columns])


def group(key_id: int, group_id: int) -> dict | None:
    """One group as stored (its state and first/last occurrence), or None."""
    with get_engine().connect() as conn:
        row = conn.execute(
            select(error_groups).where(
                error_groups.c.key_id == key_id, error_groups.c.id == group_id
            )
        ).first()
    return None if row is None else dict(row._mapping)


def occurrences(
    key_id: int, group_id: int, filters: Filters, window: Window, limit: int = OCCURRENCES
) -> list[dict]:
    """A group's latest occurrences under the filters, newest first: each request's row,
    its exception (message and stack) and, where captured, its request and response."""
    p = _plan(key_id, filters, window)
    with open_rows(key_id) as rows:
        found = rows.query(
            "SELECT detail, epoch_us(created_at), method, path, status, response_time, "
            "consumer, user_id, version, hostname "
            f"FROM {{rows}} WHERE {p.where} AND error_group = ? "
            f"ORDER BY created_at DESC, id DESC LIMIT {int(limit)}",
            [*p.params, group_id],
        ).fetchall()
    details = {d["detail"]: d for d in _by_detail(key_id, DETAILS, [r[0] for r in found])}
    captures = {d["detail"]: d for d in _by_detail(key_id, PAYLOADS, [r[0] for r in found])}
    out = []
    for detail, at, method, path, status, rt, consumer, user_id, version, host in found:
        d, c = details.get(detail, {}), captures.get(detail, {})
        out.append({
            "detail": detail, "at_us": at, "method": method, "path": path, "status": status,
            "response_time": rt, "consumer": consumer, "user_id": user_id, "version": version,
            "hostname": host, "type": d.get("exception_type"),
            "message": d.get("exception_message"), "stack": _loads(d.get("stack")) or [],
            "request": _loads(c.get("request")), "response": _loads(c.get("response")),
        })  # fmt: skip
    return out


def _by_detail(key_id: int, dataset, details: list) -> list[dict]:
    ids = [int(d) for d in details if d is not None]
    if not ids:
        return []
    with open_rows(key_id, dataset=dataset) as rows:
        frame = rows.frame(
            f"SELECT * EXCLUDE (created_at) FROM {{rows}} WHERE detail IN "
            f"({', '.join(str(i) for i in ids)})"
        )
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _loads(text):
    return None if text is None else json.loads(text)


def capture(key_id: int, detail: int) -> dict:
    """A request's details and captures by its `detail` id (the explorer's row view)."""
    d = _by_detail(key_id, DETAILS, [detail])
    c = _by_detail(key_id, PAYLOADS, [detail])
    d, c = (d[0] if d else {}), (c[0] if c else {})
    return {
        "type": d.get("exception_type"),
        "message": d.get("exception_message"),
        "stack": _loads(d.get("stack")) or [],
        "validation": _loads(d.get("validation")) or [],
        "request": _loads(c.get("request")),
        "response": _loads(c.get("response")),
    }


def validation(key_id: int, filters: Filters, window: Window) -> pd.DataFrame:
    """[route, location, type, n]: validation errors per endpoint and field under the
    filters, most frequent first (an error is counted once per request it came in)."""
    p = _plan(key_id, filters, window)
    with open_rows(key_id, also=(DETAILS,)) as rows:
        return rows.frame(
            "SELECT route, v[1] AS location, v[2] AS type, count(*) AS n FROM "
            "(SELECT d.route, unnest(from_json(d.validation, '[[\"VARCHAR\"]]')) AS v "
            "FROM {details} d WHERE d.validation IS NOT NULL AND d.detail IN "
            f"(SELECT detail FROM {{rows}} WHERE {p.where} AND detail IS NOT NULL)) "
            "GROUP BY ALL ORDER BY n DESC, route, location",
            list(p.params),
        )
