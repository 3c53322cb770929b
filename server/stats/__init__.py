"""The dashboard's questions, answered by the engine over every stored row.

`answer` runs one refresh's questions over one snapshot of a key's rows (its files and
hot rows, server.lake.source): the planner turns the filters into one WHERE clause, and
each module asks one kind of question with it. Pages only call this package.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dash_app.filters import Filters, Window
from dash_app.stats import breakdowns, digests, latency, timeseries, users
from dash_app.stats.planner import Plan, clicked_users, plan
from server.db import get_engine
from server.lake.source import open_rows

__all__ = ["Answers", "Plan", "answer", "plan"]


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


def answer(key_id: int, filters: Filters, window: Window) -> Answers:
    """Every panel's numbers for one refresh, from one snapshot: from the rows, or, for
    a long period with no filter or clicks a digest family answers, from closed months'
    digests and the other rows (dash_app.stats.digests; the same numbers)."""
    with get_engine().connect() as conn:
        p = plan(key_id, filters, window, clicked_users(conn, key_id, filters))
    summarised = digests.usable(filters, window)
    with open_rows(key_id) as rows:
        files = digests.covered(rows.snapshot.files, window) if summarised else []
        if files:
            raw, found = rows.without(files), digests.Digests(rows, files, p)
            frame = breakdowns.sets_frame(raw, p, latency=True)
            parts = digests.breakdowns_from(raw, frame, found, p)
            distribution, buckets = digests.latency_from(breakdowns.latency_part(frame), found)
            who = digests.users_from(rows, raw, found, p)
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
            previous_total = digests.total_from(rows, previous)
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
        )
