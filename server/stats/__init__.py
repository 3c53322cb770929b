"""The questions asked of a key's requests, answered by the engine over every stored row,
UI-free: the one place the dashboard, the data API, the explorer, CSV exports, share
links and alerts get their numbers from.

`answer` runs one overview refresh's questions over one snapshot of a key's rows (its
files and hot rows, server.lake.source): the planner turns the filters into one WHERE
clause, and each module asks one kind of question with it. Raw rows (explorer pages,
CSV, the data API) are server.stats.raw's; a recent window's error rate and latency
(alerts) server.stats.recent's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from server.db import get_engine
from server.lake.fair import EngineBusy
from server.lake.source import open_rows
from server.stats import breakdowns, cache, latency, summaries, timeseries, users
from server.stats.cache import remembered
from server.stats.filters import Filters, Window, window_for
from server.stats.planner import Plan, clicked_users, plan
from server.stats.raw import (
    EXPLORER_COLUMNS,
    ExplorerFilters,
    RequestFilter,
    data_page_json,
    explorer_page,
    export_rows,
    hostnames,
    services,
)

__all__ = [
    "EXPLORER_COLUMNS",
    "Answers",
    "EngineBusy",
    "ExplorerFilters",
    "Filters",
    "Plan",
    "RequestFilter",
    "Window",
    "answer",
    "data_page_json",
    "explorer_page",
    "export_rows",
    "hostnames",
    "plan",
    "read_state",
    "remembered",
    "services",
    "window_for",
]


@dataclass
class Answers:
    plan: Plan
    parts: breakdowns.Breakdowns  # traffic, status, endpoints, versions, places, agents
    clients: pd.DataFrame  # [browser, os, device, n, n_err]
    previous_total: int | None
    latency: pd.DataFrame  # [rt, n]
    latency_buckets: pd.DataFrame  # [bucket, p50, p95]
    users: users.Users
    hostnames: list[str]
    user_ids: pd.DataFrame  # [user_id, n]: the busiest client-sent user ids
    read: str = ""  # the state of the rows these answers come from (server.stats.cache)


def answer(key_id: int, filters: Filters, window: Window) -> Answers:
    """Every panel's numbers for one refresh, from one snapshot: from the rows, or, for
    a long period with no filter or clicks a summary family answers, from closed months'
    summaries and the other rows (server.stats.summaries; the same numbers)."""
    with get_engine().connect() as conn:
        p = plan(key_id, filters, window, clicked_users(conn, key_id, filters))
    summarised = summaries.usable(filters, window)
    with open_rows(key_id) as rows:
        files = summaries.covered(rows.snapshot.files, window) if summarised else []
        partly = summaries.straddling(rows.snapshot.files, window) if summarised else []
        if files or partly:
            raw = rows.without(files + partly)
            found = summaries.Summaries(rows, files + partly, p)
            outside = summaries.Outside(rows, partly, p) if partly else None
            frame = breakdowns.sets_frame(raw, p, latency=True)
            parts = summaries.breakdowns_from(raw, frame, found, p, outside)
            distribution, buckets = summaries.latency_from(breakdowns.latency_part(frame), found)
            who = summaries.users_from(rows, raw, found, p, outside=outside)
        else:
            span = users.span_of(key_id)
            if users.bitmaps_fit(rows, p, span, step=p.grain_step):
                # One scan counts the traffic and each bucket's users.
                traffic, seen = timeseries.traffic_and_users(rows, p, span)
            else:
                traffic, seen = timeseries.traffic(rows, p), None
            # One scan: the breakdowns, the response times and (with few enough users)
            # each user's requests.
            per_user = users.counted_in_scan(span)
            frame = breakdowns.sets_frame(rows, p, latency=True, per_user=per_user)
            parts = breakdowns.shape(frame, traffic, p)
            per_bucket = breakdowns.latency_part(frame)
            distribution, buckets = (
                latency.overall_frame(per_bucket),
                latency.per_bucket(per_bucket),
            )
            counted = breakdowns.users_part(frame) if per_user else None
            who = users.users(rows, p, span, per_bucket=seen, per_user=counted)
        previous = p.previous
        if previous is None:
            previous_total = None
        elif summarised:
            previous_total = summaries.total_from(rows, previous)
        else:
            previous_total = timeseries.total(rows, previous)
        return Answers(
            plan=p,
            parts=parts,
            clients=breakdowns.clients(parts.agents),
            previous_total=previous_total,
            latency=distribution,
            latency_buckets=buckets,
            users=who,
            hostnames=breakdowns.hostnames(rows),
            user_ids=breakdowns.user_ids(rows, p),
            read=read_state(rows),
        )


def read_state(rows) -> str:
    """The fingerprint of the rows a reader opened (server.stats.cache.fingerprint_of)."""
    newest = rows.query(f"SELECT max(id) FROM {rows.hot_table}").fetchone()[0]
    return cache.fingerprint_of(rows.snapshot, rows.hot_rows, newest)
