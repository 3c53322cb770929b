"""Long periods from closed months' summaries (server.lake.summaries), the rest (the
current month, late rows, hot rows) from the rows themselves.

Every question here merges two parts by sums and unions: the summaries' rows for the files
wholly inside the period (server.lake.summaries) and the same question asked of the other
rows. The numbers are the same as asking every row (tests compare the two ways); only
the work is smaller: a few summaries instead of months of rows. With no filter the
unsliced family answers; a click on columns of one sliced family (status and version,
country, browser / OS / device, or country with browser / OS / device) selects that
family's rows with the very conditions the rows are selected with.
"""

from __future__ import annotations

import pandas as pd

from server.db import get_engine
from server.lake import summaries as d
from server.lake.engine import sql_str
from server.lake.users import names_of
from server.rules import DAY
from server.stats import breakdowns, latency, timeseries, users
from server.stats.breakdowns import _AGENT, _LOCATION, _ROUTE, _VERSION
from server.stats.conditions import filter_conditions
from server.stats.filters import Filters, Window
from server.stats.planner import Plan

# Which sets-frame group each kind of summary row feeds, and into which column.
_SETS = {d.ROUTE: (_ROUTE, "route"), d.VERSION: (_VERSION, "version"),
         d.LOCATION: (_LOCATION, "location"), d.AGENT: (_AGENT, "user_agent")}  # fmt: skip
# The columns a click's condition reads (server.stats.conditions), for the clicks a
# summary family can answer.
_READS = {"status": {"status"}, "status_class": {"status"}, "version": {"version"},
          "location": {"location"}, "browser": {"browser"}, "os": {"os"},
          "device": {"device"}}  # fmt: skip


def family(filters: Filters, window: Window) -> str | None:
    """The summary family that answers these filters over daily buckets, or None: the
    conditions may read only that family's columns, endpoints must show as templates."""
    if window.step != DAY:
        return None
    if filters.hostname or filters.exclude_bots or filters.hidden:
        return None
    if filters.keep_ids or filters.keep_params:
        return None
    reads = {"status"} if filters.exclude_404 else set()
    for dim, _value in (*filters.clicks, *filters.fixed):
        if dim not in _READS:
            return None
        reads |= _READS[dim]
    return next((name for name, cols in d.FAMILIES.items() if reads <= set(cols)), None)


def usable(filters: Filters, window: Window) -> bool:
    return family(filters, window) is not None


def covered(files, window: Window) -> list:
    """Files with a summary of today's layout and every row inside the window."""
    since_us = None if window.since is None else window.since * 1_000_000
    until_us = window.until * 1_000_000
    return [
        f
        for f in files
        if d.is_current(f.summary)
        and (since_us is None or f.min_us >= since_us)
        and f.max_us < until_us
    ]


class Summaries:
    """The rows of some files' summaries that answer a plan: its family's, selected by its
    filters' conditions (bind parameters in `params`), as SQL."""

    def __init__(self, rows, files, plan: Plan) -> None:
        self.rows = rows
        urls = ", ".join(sql_str(rows.url(f.summary)) for f in files)
        name = family(plan.filters, plan.window)
        if name is None:
            raise ValueError("no summary family answers these filters")
        conditions = filter_conditions(plan.filters, plan.label, plan.users)
        self.relation = (
            f"(SELECT * FROM read_parquet([{urls}]) "
            f"WHERE fam = {sql_str(name)} AND {conditions.sql})"
        )
        self.params = list(conditions.params)

    def frame(self, sql: str) -> pd.DataFrame:
        return self.rows.cursor.execute(sql.replace("{summaries}", self.relation), self.params).df()


def breakdowns_from(raw, frame, summaries: Summaries, plan: Plan) -> breakdowns.Breakdowns:
    """`frame`: the other rows' sets frame (server.stats.breakdowns.sets_frame)."""
    parts = [frame]
    found = summaries.frame(
        "SELECT kind, k, status, n, n_ok, rt_sum FROM {summaries} "
        f"WHERE kind IN ({', '.join(sql_str(k) for k in (*_SETS, d.USER_ID))})"
    )
    ids = found[found["kind"] == d.USER_ID]
    counts = pd.DataFrame({"user_id": ids["k"].to_numpy(), "n": ids["n"].to_numpy()})
    breakdowns.note_user_ids(
        summaries.rows, plan, pd.concat([breakdowns.user_ids_part(frame), counts])
    )
    for kind, (group, column) in _SETS.items():
        part = found[found["kind"] == kind]
        if part.empty:
            continue
        shaped = pd.DataFrame({"g": group, column: part["k"].to_numpy()})
        for name in ("status", "n", "n_ok", "rt_sum"):
            shaped[name] = part[name].to_numpy()
        parts.append(shaped)
    traffic = pd.concat(
        [
            timeseries.traffic(raw, plan),
            summaries.frame(
                f"SELECT t, n, n_ok FROM {{summaries}} WHERE kind = {sql_str(d.HOUR)}"
            ).astype("int64"),
        ],
        ignore_index=True,
    )
    frame = pd.concat(parts, ignore_index=True).reindex(columns=frame.columns)
    return breakdowns.shape(frame, traffic, plan)


def latency_from(
    raw_latency: pd.DataFrame, summaries: Summaries
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """([rt, n], [bucket, p50, p95]) over the summaries' days and the other rows'
    [bucket, rt, n] (server.stats.breakdowns.latency_part)."""
    per_day = pd.concat(
        [
            raw_latency,
            summaries.frame(
                f"SELECT t AS bucket, rt, n FROM {{summaries}} WHERE kind = {sql_str(d.DAY_RT)}"
            ),
        ],
        ignore_index=True,
    )
    return latency.overall_frame(per_day), latency.per_bucket(per_day)


def users_from(rows, raw, summaries: Summaries, plan: Plan, limit: int = users.TOP_USERS):
    span = users.span_of(plan.key_id)
    if span is None:
        return users.Users(0, pd.DataFrame({"bucket": [], "users": []}), users._top(raw, plan, []))
    low, high = span
    pairs = (
        f"SELECT t, ux FROM {summaries.relation} WHERE kind = {sql_str(d.DAY_USER)} "
        f"UNION ALL SELECT {plan.bucket} AS t, ux FROM {raw.relation} "
        f"WHERE {plan.where} AND ux IS NOT NULL"
    )
    buckets = users.bitmaps_fit(rows, plan, span)
    distinct = f"bit_count(bitstring_agg(ux, {low}, {high}))" if buckets else "count(DISTINCT ux)"
    params = [*summaries.params, *plan.params]  # in the order the SQL names them
    per_bucket = rows.cursor.execute(
        f"SELECT t AS bucket, {distinct} AS users FROM ({pairs}) GROUP BY t ORDER BY t", params
    ).df()
    each = (
        f"SELECT ux, n, last_us, last_loc FROM {summaries.relation} "
        f"WHERE kind = {sql_str(d.USER)} "
        f"UNION ALL SELECT ux, count(*), epoch_us(max(created_at)), "
        f"arg_max(coalesce(location, ''), created_at) FROM {raw.relation} "
        f"WHERE {plan.where} AND ux IS NOT NULL GROUP BY ux"
    )
    busiest = rows.cursor.execute(
        f"SELECT ux, sum(n) AS n, max(last_us), arg_max(last_loc, last_us), count(*) OVER () "
        f"FROM ({each}) GROUP BY ux ORDER BY n DESC, ux LIMIT {int(limit)}",
        params,
    ).fetchall()
    with get_engine().connect() as conn:
        names = names_of(conn, [row[0] for row in busiest])
    top = pd.DataFrame(
        [(names[ux], int(n), int(last) // 1_000_000, loc) for ux, n, last, loc, _c in busiest],
        columns=["user_key", "n", "last_seen", "location"],
    )
    top = top.sort_values(["n", "user_key"], ascending=[False, True]).reset_index(drop=True)
    return users.Users(int(busiest[0][4]) if busiest else 0, per_bucket, top)


def total_from(rows, plan: Plan) -> int:
    """The requests of a period, from the summaries of its files and the other rows."""
    files = covered(rows.snapshot.files, plan.window)
    raw = rows.without(files)
    count = raw.query(f"SELECT count(*) FROM {{rows}} WHERE {plan.where}", list(plan.params))
    total = int(count.fetchone()[0])
    if files:
        summed = Summaries(rows, files, plan).frame(
            f"SELECT coalesce(sum(n), 0) AS n FROM {{summaries}} WHERE kind = {sql_str(d.HOUR)}"
        )
        total += int(summed["n"].iloc[0])
    return total
