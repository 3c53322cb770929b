"""For whom: each named consumer's and each consumer group's requests, error rate, p95
latency, last request and top endpoints, exact under the dashboard's filters and period."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sqlalchemy import select

from server.db import get_engine
from server.lake.source import open_rows
from server.models import consumers
from server.stats.filters import Filters, Window
from server.stats.planner import clicked_users, plan

# An error, in every table of the dashboard (the endpoints panel's too): 4xx and 5xx.
ERROR_SQL = "status >= 400"
TOP_ENDPOINTS = 3


BY = ("consumer", "consumer_group")


def table(
    key_id: int,
    filters: Filters,
    window: Window,
    by: str = "consumer",
    limit: int | None = None,
) -> pd.DataFrame:
    """[name, requests, errors, error_rate, p95, last_us, top_endpoints, total] per consumer
    (`by` "consumer", with [display_name, group]) or per consumer group ("consumer_group"),
    busiest first, the `limit` busiest only if given (`total` says how many there are).
    Requests without one are left out."""
    column = "consumer_group" if by == "consumer_group" else "consumer"
    return tables(key_id, filters, window, (column,), limit)[column]


def tables(
    key_id: int,
    filters: Filters,
    window: Window,
    by: tuple[str, ...] = BY,
    limit: int | None = None,
) -> dict[str, pd.DataFrame]:
    """`table` for each of `by` at once (the Consumers page shows both): one pass over
    the rows for the counts of every column of `by` (GROUPING SETS), then one per column
    for the p95 and top endpoints of the values shown only. Per table, one after the
    other, with 10,000 consumers, took 1.28 s for a year at 10 M rows
    (bench/dashboard.py --errors)."""
    with get_engine().connect() as conn:
        p = plan(key_id, filters, window, clicked_users(conn, key_id, filters))
    sets = ", ".join(f"({column})" for column in by)
    some = " OR ".join(f"{column} IS NOT NULL" for column in by)
    with open_rows(key_id) as rows:
        counted = rows.frame(
            f"SELECT {', '.join(by)}, {', '.join(f'grouping({c}) AS g_{c}' for c in by)}, "
            f"count(*) AS requests, count(*) FILTER (WHERE {ERROR_SQL}) AS errors, "
            f"epoch_us(max(created_at)) AS last_us FROM {{rows}} "
            f"WHERE {p.where} AND ({some}) GROUP BY GROUPING SETS ({sets})",
            list(p.params),
        )
        found = {}
        for column in by:
            mine = counted[(counted[f"g_{column}"] == 0) & counted[column].notna()]
            mine = mine.rename(columns={column: "name"})[["name", "requests", "errors", "last_us"]]
            mine = mine.sort_values(["requests", "name"], ascending=[False, True])
            mine["total"] = len(mine)
            found[column] = (mine.head(limit) if limit else mine).reset_index(drop=True)
        # One more pass per column: its shown values' rows counted by response time (the
        # exact p95 follows from the counts) and by route (the top endpoints). Where every
        # value is shown (a handful of groups) no join is needed; otherwise a hash join with
        # the shown values (list_contains on every row took twice as long). One pass for
        # both columns, joined with either's shown values, kept every grouped row (8 M of
        # a year's 10 M) and took 0.78 s where these two take 0.37 s
        # (bench/dashboard.py --errors, all time).
        counts = {}
        for column in by:
            shown = found[column]
            counted_all = limit is None or len(shown) == 0 or shown["total"].iloc[0] <= limit
            if counted_all:
                source, params = f"{{rows}} WHERE {column} IS NOT NULL AND {p.where}", []
            else:
                source = (
                    f"{{rows}} r JOIN (SELECT unnest(?::VARCHAR[]) AS v) s ON r.{column} = s.v "
                    f"WHERE {p.where}"
                )
                params = [list(shown["name"])]
            counts[column] = rows.frame(
                f"SELECT {column}, response_time, route, grouping(response_time) AS "
                f"g_response_time, grouping(route) AS g_route, count(*) AS n FROM {source} "
                f"GROUP BY GROUPING SETS (({column}, response_time), ({column}, route))",
                [*params, *p.params],
            )
    out = {}
    for column in by:
        frame = found[column]
        mine = counts[column]
        by_time = mine[(mine["g_response_time"] == 0) & mine["response_time"].notna()]
        frame["p95"] = frame["name"].map(_quantiles(by_time, column, 0.95))
        by_route = mine[mine["g_route"] == 0].sort_values(
            [column, "n", "route"], ascending=[True, False, True]
        )
        routes = by_route.groupby(column, sort=False)["route"].agg(
            lambda found: list(found[:TOP_ENDPOINTS])
        )
        frame["top_endpoints"] = [list(routes.get(name, [])) for name in frame["name"]]
        frame["error_rate"] = (frame["errors"] / frame["requests"] * 100).astype(float)
        columns = ["name", "requests", "errors", "error_rate", "p95", "last_us",
                   "top_endpoints", "total"]  # fmt: skip
        if column == "consumer":
            frame = frame.merge(_names(key_id, list(frame["name"])), how="left",
                                left_on="name", right_on="consumer_id")  # fmt: skip
            columns += ["display_name", "group"]
        frame = frame.reindex(columns=columns).reset_index(drop=True)
        out[column] = frame.astype(object).where(frame.notna(), None)
    return out


def _quantiles(counts: pd.DataFrame, column: str, q: float) -> dict:
    """{value of `column`: the q-quantile of its response times}, from [column,
    response_time, n] counts: exactly quantile_cont's (numpy's linear) interpolation
    between the ranks around q * (n - 1)."""
    out = {}
    for name, found in counts.groupby(column, sort=False):
        found = found.sort_values("response_time")
        times = found["response_time"].to_numpy(dtype=float)
        ends = np.cumsum(found["n"].to_numpy())  # the rank after each time's last
        position = q * (ends[-1] - 1)
        low, high = math.floor(position), math.ceil(position)
        at_low = times[np.searchsorted(ends, low, side="right")]
        at_high = times[np.searchsorted(ends, high, side="right")]
        out[name] = at_low + (position - low) * (at_high - at_low)
    return out


def _names(key_id: int, ids: list[str]) -> pd.DataFrame:
    c = consumers.c
    with get_engine().connect() as conn:
        found = conn.execute(
            select(c.consumer_id, c.name, c.consumer_group).where(
                c.key_id == key_id, c.consumer_id.in_(ids)
            )
        ).all()
    return pd.DataFrame(found, columns=["consumer_id", "display_name", "group"])


def known(key_id: int) -> list[dict]:
    """Every consumer the key has seen: id, name, group, first and last seen (µs)."""
    c = consumers.c
    with get_engine().connect() as conn:
        rows = conn.execute(
            select(c.consumer_id, c.name, c.consumer_group, c.first_seen, c.last_seen)
            .where(c.key_id == key_id)
            .order_by(c.last_seen.desc(), c.consumer_id)
        ).all()
    return [
        {"id": r[0], "name": r[1], "group": r[2], "first_seen_us": r[3], "last_seen_us": r[4]}
        for r in rows
    ]
