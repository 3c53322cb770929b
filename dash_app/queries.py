"""SQL -> DataFrame: each panel's numbers, grouped by the database.

Panels read the rollups (worker.rollups) whenever the filters only touch dimensions a
rollup table holds; otherwise they fall back to a raw-row query with the same output
shape. Raw queries always aggregate in SQL and are bounded by the key's index range
(the 24-hour activity chart, and click filters the rollups cannot answer exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Integer,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
)

from dash_app.filters import RAW_ROW_BUDGET, Filters, Window, bounded, status_class_range
from server.models import (
    HIST_COLUMNS,
    HOUR_COLUMNS,
    requests,
    rollup_clients,
    rollup_endpoints,
    rollup_locations,
    rollup_traffic,
    rollup_user_counts,
    rollup_users,
    user_agents,
)
from worker.rollups import (
    ANY_BOT,
    ANY_HOST,
    GRAIN_DAY,
    GRAIN_HOUR,
    GRAIN_MONTH,
    HIST_LOWER,
    api_version,
    month_start,
    rt_bucket,
)

RAW = "raw"
STATUS_DIMS = frozenset({"status", "status_class"})
# The click dimensions each rollup table can filter on exactly.
TABLE_DIMS = {
    rollup_traffic: STATUS_DIMS,
    rollup_endpoints: STATUS_DIMS | {"endpoint", "version"},
    rollup_locations: STATUS_DIMS | {"location"},
    rollup_clients: STATUS_DIMS | {"browser", "os", "device"},
}
TOP_USERS = 10


@dataclass
class Scope:
    """One key's data under one set of filters and one window."""

    conn: object
    key_id: int
    filters: Filters
    window: Window
    # Raw paths matching an endpoint/version click, looked up once per refresh.
    paths: dict | None = None

    @property
    def postgres(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    def at(self, window: Window) -> Scope:
        return Scope(self.conn, self.key_id, self.filters, window)


def raw_earliest(conn, key_id: int, window: Window, budget: int | None = None) -> int | None:
    """The earliest day from which the window's raw rows stay within `budget`.

    None when the whole window fits (small keys get exact answers for any period);
    otherwise the start of the oldest recent day that still fits, at least one day.
    Counted from the daily rollups, so it costs a few hundred rows at most.
    """
    if window.grain != GRAIN_DAY:
        return None
    budget = RAW_ROW_BUDGET if budget is None else budget
    t = rollup_traffic
    conds = [t.c.key_id == key_id, t.c.grain == GRAIN_DAY, t.c.bucket < window.until]
    if window.since is not None:
        conds.append(t.c.bucket >= window.since)
    days = conn.execute(
        select(t.c.bucket, func.sum(t.c.n))
        .where(*conds)
        .group_by(t.c.bucket)
        .order_by(t.c.bucket.desc())
    ).all()
    total, earliest = 0, None
    for bucket, n in days:
        total += int(n)
        if total > budget:
            return earliest if earliest is not None else int(bucket)
        earliest = int(bucket)
    return None


# --- endpoint labels -------------------------------------------------------------------------


def endpoint_path(path: str, keep_params: bool, keep_ids: bool) -> str:
    """The path an endpoint is shown as, under the two path options."""
    from worker.rollups import template_path

    bare, sep, query = path.partition("?")
    shown = bare if keep_ids else template_path(bare)
    return shown + sep + query if keep_params and sep else shown


def split_endpoint(value: str) -> tuple[str, str]:
    """'GET /users/{id}' -> ('GET', '/users/{id}')."""
    method, _, path = value.partition(" ")
    return method, path


# --- choosing a source -----------------------------------------------------------------------


def _clicks_need_raw_paths(filters: Filters) -> bool:
    return not filters.templates and bool({"endpoint", "version"} & set(filters.click))


def source_for(filters: Filters, window: Window, *, hist: bool) -> object:
    """The smallest rollup table that answers the filters exactly, or RAW."""
    dims = set(filters.click)
    if "user" in dims or _clicks_need_raw_paths(filters):
        return RAW
    for table, allowed in TABLE_DIMS.items():
        if dims <= allowed:
            # Only rollup_traffic keeps a histogram per hour.
            if hist and window.grain == GRAIN_HOUR and table is not rollup_traffic:
                return RAW
            return table
    return RAW


# --- conditions ------------------------------------------------------------------------------


def _window_conds(table, scope: Scope, grain: int) -> list:
    w = scope.window
    conds = [table.c.key_id == scope.key_id, table.c.grain == grain, table.c.bucket < w.until]
    if w.since is not None:
        conds.append(table.c.bucket >= w.since)
    return conds


def _span_conds(table, scope: Scope) -> list:
    """The window as whole months plus the days around them (whole-day windows only)."""
    spans = []
    for grain, low, high in period_spans(scope):
        span = [table.c.grain == grain, table.c.bucket < high]
        if low is not None:
            span.append(table.c.bucket >= low)
        spans.append(and_(*span))
    return [table.c.key_id == scope.key_id, or_(*spans)]


def period_spans(scope: Scope) -> list[tuple[int, int | None, int]]:
    """[(grain, from, to)]: monthly rows for whole months inside the window, daily around.

    A window ending today reads the current month whole when nothing is stored after
    today (the usual case), so "1 year" is about 13 monthly rows a group.
    """
    w = scope.window
    until = w.until
    if _nothing_after(scope, until):
        month_end = _month_after(month_start(until - 1))
        until = month_end if month_end > until else until
    months, edges = month_cover(w.since, until)
    spans = [(GRAIN_DAY, low, min(high, w.until)) for low, high in edges if low < w.until]
    if months is not None:
        spans.insert(0, (GRAIN_MONTH, *months))
    return spans or [(GRAIN_DAY, w.since, w.until)]


def _nothing_after(scope: Scope, moment: int) -> bool:
    t = rollup_traffic
    query = (
        select(t.c.bucket)
        .where(t.c.key_id == scope.key_id, t.c.grain == GRAIN_DAY, t.c.bucket >= moment)
        .limit(1)
    )
    return scope.conn.execute(query).first() is None


def rollup_conds(table, scope: Scope, grain: int | None = None, *, spans: bool = False) -> list:
    """Conditions on a rollup table; `spans` reads months and days (narrow, for totals)."""
    f = scope.filters
    if spans and scope.window.whole_days:
        conds = _span_conds(table, scope)
    else:
        conds = _window_conds(table, scope, grain or scope.window.grain)
    if f.hostname:
        conds.append(table.c.hostname == f.hostname)
    if f.exclude_bots:
        conds.append(table.c.bot == 0)
    if "status" in table.c and f.exclude_404:
        conds.append(table.c.status != 404)
    if table is rollup_users and f.exclude_404:
        conds.append(table.c.n > table.c.n_404)
    for dim, value in f.clicks:
        conds.append(_rollup_click(table, scope, dim, value))
    return conds


def _status_cond(column, dim: str, value: str):
    if dim == "status":
        return column == int(value) if value.isdigit() else false()
    bounds = status_class_range(value)
    return and_(column >= bounds[0], column < bounds[1]) if bounds else false()


def _rollup_click(table, scope: Scope, dim: str, value: str):
    c = table.c
    if dim in STATUS_DIMS:
        return _status_cond(c.status, dim, value)
    if dim == "endpoint":
        method, path = split_endpoint(value)
        return and_(c.method == method, c.endpoint == path)
    if dim == "version":
        return _in(c.endpoint, _endpoints_of_version(scope, value) if value else [])
    if dim == "user":
        return c.user_key == value
    return c[dim] == value


def _endpoints_of_version(scope: Scope, version: str) -> list[str]:
    t = rollup_endpoints
    found = scope.conn.execute(
        select(t.c.endpoint).where(*_window_conds(t, scope, scope.window.grain)).distinct()
    ).scalars()
    return [e for e in found if api_version(e) == version]


def _in(column, values: list):
    """column IN values; an empty list matches nothing."""
    return column.in_(values) if values else false()


# --- raw rows --------------------------------------------------------------------------------


def _epoch(scope: Scope):
    if scope.postgres:
        return cast(func.floor(func.extract("epoch", requests.c.created_at)), BigInteger)
    return cast(func.strftime("%s", requests.c.created_at), Integer)


def user_key_expr(postgres: bool):
    ip = func.host(requests.c.ip_address) if postgres else requests.c.ip_address
    return func.coalesce(ip, requests.c.user_id, "")


def _rt_bucket_expr(scope: Scope):
    if scope.postgres:
        thresholds = literal(list(HIST_LOWER[1:]), ARRAY(Integer))
        return func.width_bucket(requests.c.response_time, thresholds)
    # SQLite has no width_bucket: the same Python function the rollups use.
    scope.conn.connection.dbapi_connection.create_function(
        "rt_bucket", 1, rt_bucket, deterministic=True
    )
    return func.rt_bucket(requests.c.response_time)


def _as_datetime(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


RAW_FROM = requests.outerjoin(user_agents, requests.c.user_agent_id == user_agents.c.id)


def raw_conds(scope: Scope, *, with_clicks: bool = True) -> list:
    """Conditions on requests (joined with user_agents) equal to what the rollups apply."""
    f, w, r, u = scope.filters, scope.window, requests.c, user_agents.c
    conds = [r.key_id == scope.key_id, r.created_at < _as_datetime(w.until)]
    if w.since is not None:
        conds.append(r.created_at >= _as_datetime(w.since))
    if f.hostname:
        conds.append(r.hostname == f.hostname)
    if f.exclude_404:
        conds.append(r.status != 404)
    if f.exclude_bots:
        conds.append(func.coalesce(u.is_bot, False) == False)  # noqa: E712
    if not with_clicks:
        return conds
    for dim, value in f.clicks:
        if dim in STATUS_DIMS:
            conds.append(_status_cond(r.status, dim, value))
        elif dim == "endpoint":
            method, _path = split_endpoint(value)
            conds.append(r.method == method)
            conds.append(_in(r.path, matching_paths(scope)[dim]))
        elif dim == "version":
            conds.append(_in(r.path, matching_paths(scope)[dim]))
        elif dim == "location":
            conds.append(func.coalesce(r.location, "") == value)
        elif dim in ("browser", "os", "device"):
            conds.append(func.coalesce(u[dim], "") == value)
        elif dim == "user":
            conds.append(user_key_expr(scope.postgres) == value)
    return conds


def _label_of(filters: Filters, path: str, value: str) -> bool:
    _method, wanted = split_endpoint(value)
    return endpoint_path(path, filters.keep_params, filters.keep_ids) == wanted


def matching_paths(scope: Scope) -> dict[str, list[str]]:
    """{'endpoint'/'version': raw paths whose label matches the click}.

    Labels are computed in Python, so the key's distinct paths are read once (with the
    other filters) and kept on the scope for every raw query of the refresh.
    """
    if scope.paths is not None:
        return scope.paths
    f = scope.filters
    wanted = {d: v for d, v in f.clicks if d in ("endpoint", "version")}
    found: dict[str, list[str]] = {d: [] for d in wanted}
    if wanted:
        paths = scope.conn.execute(
            select(requests.c.path).where(*raw_conds(scope, with_clicks=False)).distinct()
        ).scalars()
        for path in paths:
            if "endpoint" in wanted and _label_of(f, path, wanted["endpoint"]):
                found["endpoint"].append(path)
            if "version" in wanted and api_version(path) == wanted["version"]:
                found["version"].append(path)
    scope.paths = found
    return found


def _frame(scope: Scope, query) -> pd.DataFrame:
    result = scope.conn.execute(query)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _hist_sums(table) -> list:
    return [func.coalesce(func.sum(table.c[h]), 0).label(h) for h in HIST_COLUMNS]


def _pivot_hist(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows (keys..., rb, n, ...) -> one row per key with h00..h63 columns."""
    hist = (
        df.pivot_table(index=keys, columns="rb", values="n", aggfunc="sum", fill_value=0)
        .reindex(columns=range(len(HIST_COLUMNS)), fill_value=0)
        .astype("int64")
    )
    hist.columns = list(HIST_COLUMNS)
    other = df.drop(columns=["rb"]).groupby(keys).sum()
    return other.join(hist).reset_index()


# --- core panels: totals, status codes, percentiles, activity --------------------------------


def by_status(scope: Scope) -> pd.DataFrame:
    """[status, n, rt_sum] for the window."""
    source = source_for(scope.filters, scope.window, hist=False)
    if source is RAW:
        r = requests.c
        query = (
            select(r.status, func.count().label("n"), func.sum(r.response_time).label("rt_sum"))
            .select_from(RAW_FROM)
            .where(*raw_conds(scope))
            .group_by(r.status)
        )
    else:
        t = source
        query = (
            select(t.c.status, func.sum(t.c.n).label("n"), func.sum(t.c.rt_sum).label("rt_sum"))
            .where(*rollup_conds(t, scope, spans=True))
            .group_by(t.c.status)
        )
    return _frame(scope, query)


def total_requests(scope: Scope) -> int:
    """The number of requests in the window (for the previous period's comparison)."""
    source = source_for(scope.filters, scope.window, hist=False)
    if source is RAW:
        query = select(func.count()).select_from(RAW_FROM).where(*raw_conds(scope))
    else:
        conds = rollup_conds(source, scope, spans=True)
        query = select(func.coalesce(func.sum(source.c.n), 0)).where(*conds)
    return int(scope.conn.execute(query).scalar() or 0)


def by_bucket(scope: Scope) -> pd.DataFrame:
    """[bucket, n, n_ok, h00..h63] per activity bucket (5 minutes reads raw rows)."""
    w = scope.window
    source = source_for(scope.filters, w, hist=True)
    if source is RAW or w.step < (3600 if w.grain == GRAIN_HOUR else 86400):
        r = requests.c
        ts = _epoch(scope)
        bucket = (ts - ts % w.step).label("bucket")
        rb = _rt_bucket_expr(scope).label("rb")
        query = (
            select(
                bucket,
                rb,
                func.count().label("n"),
                func.sum(case((r.status < 400, 1), else_=0)).label("n_ok"),
            )
            .select_from(RAW_FROM)
            .where(*raw_conds(scope))
            .group_by(bucket, rb)
        )
        df = _frame(scope, query)
        if df.empty:
            return _empty(["bucket", "n", "n_ok", *HIST_COLUMNS])
        return _pivot_hist(df, ["bucket"])
    t = source
    query = (
        select(
            t.c.bucket,
            func.sum(t.c.n).label("n"),
            func.sum(case((t.c.status < 400, t.c.n), else_=0)).label("n_ok"),
            *_hist_sums(t),
        )
        .where(*rollup_conds(t, scope))
        .group_by(t.c.bucket)
    )
    return _frame(scope, query)


def by_hour(scope: Scope) -> pd.DataFrame:
    """[hour, n]: requests per UTC hour of day (0-23) over the window."""
    source = source_for(scope.filters, scope.window, hist=False)
    if source is rollup_traffic and scope.window.whole_days:
        # Daily and monthly traffic rows count requests per hour of day in 24 columns.
        t = rollup_traffic
        sums = [func.coalesce(func.sum(t.c[h]), 0).label(h) for h in HOUR_COLUMNS]
        row = scope.conn.execute(select(*sums).where(*rollup_conds(t, scope, spans=True))).one()
        return pd.DataFrame({"hour": range(24), "n": [int(v) for v in row]})
    if source is RAW:
        ts = _epoch(scope)
        hour = (ts % 86400) // 3600
        query = (
            select(cast(hour, Integer).label("hour"), func.count().label("n"))
            .select_from(RAW_FROM)
            .where(*raw_conds(scope))
            .group_by(hour)
        )
    else:
        t = source
        hour = (t.c.bucket % 86400) // 3600
        query = (
            select(cast(hour, Integer).label("hour"), func.sum(t.c.n).label("n"))
            .where(*rollup_conds(t, scope, GRAIN_HOUR))
            .group_by(hour)
        )
    return _frame(scope, query)


# --- dimension panels ------------------------------------------------------------------------


def _rollup_answers(scope: Scope, table) -> bool:
    """True when `table` can answer this panel under the filters."""
    dims = set(scope.filters.click)
    if "user" in dims or _clicks_need_raw_paths(scope.filters):
        return False
    return dims <= TABLE_DIMS[table]


def endpoints(scope: Scope) -> pd.DataFrame:
    """[method, endpoint, status, n, rt_sum] with endpoint labelled under the path options.

    The rollups hold templated paths without query strings. When the user keeps query
    strings or ids, they answer only if no request in the window had either.
    """
    f = scope.filters
    t = rollup_endpoints
    if _rollup_answers(scope, t):
        query = (
            select(
                t.c.method,
                t.c.endpoint,
                t.c.status,
                func.sum(t.c.n).label("n"),
                func.sum(t.c.rt_sum).label("rt_sum"),
                func.sum(t.c.n_query).label("n_query"),
                func.sum(t.c.n_ids).label("n_ids"),
            )
            .where(*rollup_conds(t, scope, spans=True))
            .group_by(t.c.method, t.c.endpoint, t.c.status)
        )
        df = _frame(scope, query)
        exact = (not f.keep_params or df["n_query"].sum() == 0) and (
            not f.keep_ids or df["n_ids"].sum() == 0
        )
        if exact:
            return df.drop(columns=["n_query", "n_ids"])
    # Raw paths: at most RAW_ROW_BUDGET rows' worth of recent days (the page says so).
    raw_scope = scope.at(
        bounded(scope.window, raw_earliest(scope.conn, scope.key_id, scope.window))
    )
    raw_scope.paths = scope.paths
    r = requests.c
    query = (
        select(
            r.method,
            r.path,
            r.status,
            func.count().label("n"),
            func.sum(r.response_time).label("rt_sum"),
        )
        .select_from(RAW_FROM)
        .where(*raw_conds(raw_scope))
        .group_by(r.method, r.path, r.status)
    )
    df = _frame(scope, query)
    df["endpoint"] = [endpoint_path(p, f.keep_params, f.keep_ids) for p in df["path"]]
    cols = ["method", "endpoint", "status"]
    out = df.groupby(cols, as_index=False)[["n", "rt_sum"]].sum()
    out.attrs["bounded"] = raw_scope.window != scope.window
    return out


def _dimension(scope: Scope, table, columns: list[str]) -> pd.DataFrame:
    """[columns..., n, n_err, rt_sum] grouped by `columns` of `table` (or of raw rows)."""
    if _rollup_answers(scope, table):
        cols = [table.c[c] for c in columns]
        query = (
            select(
                *cols,
                func.sum(table.c.n).label("n"),
                func.sum(case((table.c.status >= 400, table.c.n), else_=0)).label("n_err"),
                func.sum(table.c.rt_sum).label("rt_sum"),
            )
            .where(*rollup_conds(table, scope, spans=True))
            .group_by(*cols)
        )
        return _frame(scope, query)
    r, u = requests.c, user_agents.c
    raw_cols = {
        "location": func.coalesce(r.location, ""),
        "browser": func.coalesce(u.browser, ""),
        "os": func.coalesce(u.os, ""),
        "device": func.coalesce(u.device, ""),
    }
    cols = [raw_cols[c].label(c) for c in columns]
    query = (
        select(
            *cols,
            func.count().label("n"),
            func.sum(case((r.status >= 400, 1), else_=0)).label("n_err"),
            func.sum(r.response_time).label("rt_sum"),
        )
        .select_from(RAW_FROM)
        .where(*raw_conds(scope))
        .group_by(*cols)
    )
    return _frame(scope, query)


def locations(scope: Scope) -> pd.DataFrame:
    return _dimension(scope, rollup_locations, ["location"])


def clients(scope: Scope) -> pd.DataFrame:
    return _dimension(scope, rollup_clients, ["browser", "os", "device"])


# --- users ---------------------------------------------------------------------------------
# Whole-day windows read rollup_users (full months from the monthly rows, the days at the
# edges from the daily rows) and the per-day counts from rollup_user_counts. The 24-hour
# window and hourly series read raw rows (at most 7 days of one key).


def users_from_rollups(scope: Scope) -> bool:
    return scope.window.whole_days and set(scope.filters.click) <= {"user"}


def _month_after(month: int) -> int:
    moment = datetime.fromtimestamp(month, UTC)
    year, next_month = divmod(moment.month, 12)
    return int(datetime(moment.year + year, next_month + 1, 1, tzinfo=UTC).timestamp())


def month_cover(since: int | None, until: int) -> tuple[tuple[int, int] | None, list]:
    """Split [since, until) into whole months and the day ranges around them.

    Returns ((first month, end of last month) or None, [(day from, day to), ...]).
    """
    first = month_start(since) if since is not None else None
    if first is not None and first < since:
        first = _month_after(first)
    end_month = month_start(until - 1)
    last_end = end_month if _month_after(end_month) > until else _month_after(end_month)
    if first is not None and first >= last_end:
        return None, [(since, until)]
    edges = []
    if since is not None and since < first:
        edges.append((since, first))
    if last_end < until:
        edges.append((last_end, until))
    return (first, last_end), edges


def _user_variant(t, filters: Filters) -> list:
    """Unfiltered: the one ('*', 2) row per user; else the users' own (hostname, bot) rows."""
    if not filters.hostname and not filters.exclude_bots:
        return [t.c.hostname == ANY_HOST, t.c.bot == ANY_BOT]
    conds = [t.c.hostname != ANY_HOST, t.c.bot != ANY_BOT]
    if filters.hostname:
        conds.append(t.c.hostname == filters.hostname)
    if filters.exclude_bots:
        conds.append(t.c.bot == 0)
    return conds


def _counts_exact(filters: Filters) -> bool:
    """rollup_user_counts holds one row per day for no filter, or hostname + exclude bots."""
    return bool(filters.hostname) == filters.exclude_bots


def _user_rows_where(scope: Scope) -> list:
    t, f = rollup_users, scope.filters
    conds = [*_span_conds(t, scope), *_user_variant(t, f)]
    if f.exclude_404:
        conds.append(t.c.n > t.c.n_404)
    if "user" in f.click:
        conds.append(t.c.user_key == f.click["user"])
    return conds


def _raw_users(scope: Scope, step: int):
    """(bucket, user_key, n, last_seen, location) of raw rows, users only."""
    ts = _epoch(scope)
    who = user_key_expr(scope.postgres)
    return (
        select(
            (ts - ts % step).label("bucket"),
            who.label("user_key"),
            literal(1).label("n"),
            ts.label("last_seen"),
            func.coalesce(requests.c.location, "").label("location"),
        )
        .select_from(RAW_FROM)
        .where(*raw_conds(scope), who != "")
        .subquery()
    )


def _users_rel(scope: Scope):
    if users_from_rollups(scope):
        t = rollup_users
        n = (t.c.n - t.c.n_404) if scope.filters.exclude_404 else t.c.n
        return (
            select(t.c.bucket, t.c.user_key, n.label("n"), t.c.last_seen, t.c.location)
            .where(*_user_rows_where(scope))
            .subquery()
        )
    return _raw_users(scope, 86400)


def distinct_users(scope: Scope) -> int:
    rel = _users_rel(scope)
    inner = select(rel.c.user_key).group_by(rel.c.user_key).subquery()
    return int(scope.conn.execute(select(func.count()).select_from(inner)).scalar() or 0)


def users_by_bucket(scope: Scope) -> pd.DataFrame:
    """[bucket, users]: distinct users per activity bucket."""
    w, f = scope.window, scope.filters
    if w.step >= 86400 and users_from_rollups(scope) and not f.click and _counts_exact(f):
        t = rollup_user_counts
        measure = t.c.users_ok if f.exclude_404 else t.c.users
        query = (
            select(t.c.bucket, measure.label("users"))
            .where(*_window_conds(t, scope, GRAIN_DAY), *_user_variant(t, f))
            .order_by(t.c.bucket)
        )
        return _frame(scope, query)
    if w.step >= 86400 and users_from_rollups(scope):
        t = rollup_users
        conds = [*_window_conds(t, scope, GRAIN_DAY), *_user_variant(t, f)]
        if f.exclude_404:
            conds.append(t.c.n > t.c.n_404)
        if "user" in f.click:
            conds.append(t.c.user_key == f.click["user"])
        inner = select(t.c.bucket, t.c.user_key).where(*conds).group_by(t.c.bucket, t.c.user_key)
        inner = inner.subquery()
        query = select(inner.c.bucket, func.count().label("users")).group_by(inner.c.bucket)
        return _frame(scope, query)
    rel = _raw_users(scope, w.step)
    inner = select(rel.c.bucket, rel.c.user_key).group_by(rel.c.bucket, rel.c.user_key).subquery()
    query = select(inner.c.bucket, func.count().label("users")).group_by(inner.c.bucket)
    return _frame(scope, query)


def top_users(scope: Scope, limit: int = TOP_USERS) -> pd.DataFrame:
    """[user_key, n, last_seen, location]: the busiest users, with their latest country.

    One pass: the max of "last_seen || location" (epoch seconds have 10 digits until
    2286) is the country of the latest request.
    """
    rel = _users_rel(scope)
    latest = func.max(cast(rel.c.last_seen, String) + rel.c.location)
    query = (
        select(
            rel.c.user_key,
            func.sum(rel.c.n).label("n"),
            func.max(rel.c.last_seen).label("last_seen"),
            latest.label("latest"),
        )
        .group_by(rel.c.user_key)
        .order_by(func.sum(rel.c.n).desc(), rel.c.user_key)
        .limit(limit)
    )
    top = _frame(scope, query)
    if top.empty:
        return _empty(["user_key", "n", "last_seen", "location"])
    top["location"] = top.pop("latest").str[10:]
    return top


# --- odds and ends ---------------------------------------------------------------------------


def hostnames(conn, key_id: int) -> list[str]:
    t = rollup_traffic
    query = (
        select(t.c.hostname)
        .where(t.c.key_id == key_id, t.c.grain == GRAIN_DAY, t.c.hostname != "")
        .distinct()
        .order_by(t.c.hostname)
    )
    return list(conn.execute(query).scalars())


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})


# --- raw rows: CSV export and the explorer ---------------------------------------------------

ROW_COLUMNS = (
    requests.c.hostname,
    requests.c.ip_address,
    requests.c.path,
    user_agents.c.user_agent,
    requests.c.method,
    requests.c.status,
    requests.c.response_time,
    requests.c.location,
    requests.c.user_id,
    requests.c.created_at,
    user_agents.c.browser,
    user_agents.c.os,
    user_agents.c.device,
    requests.c.framework,
)


def _row_values(row) -> tuple:
    from server.db import as_utc

    values = list(row)
    if values[1] is not None:
        values[1] = str(values[1])
    values[9] = as_utc(values[9]).isoformat()
    return tuple(values)


def export_rows(scope: Scope, limit: int):
    """The filtered raw rows (the data API's columns), newest first, streamed."""
    query = (
        select(*ROW_COLUMNS)
        .select_from(RAW_FROM)
        .where(*raw_conds(scope))
        .order_by(requests.c.created_at.desc(), requests.c.id.desc())
        .limit(limit)
    )
    result = scope.conn.execution_options(stream_results=True, yield_per=2000).execute(query)
    for row in result:
        yield _row_values(row)


@dataclass
class ExplorerFilters:
    """The explorer's own filters; None means "any"."""

    since: datetime | None = None
    until: datetime | None = None  # exclusive
    status_class: str | None = None
    method: str | None = None
    hostname: str | None = None
    path_contains: str | None = None
    rt_min: int | None = None
    rt_max: int | None = None

    def conditions(self, key_id: int) -> list:
        r = requests.c
        conds = [r.key_id == key_id]
        if self.since is not None:
            conds.append(r.created_at >= self.since)
        if self.until is not None:
            conds.append(r.created_at < self.until)
        if self.status_class:
            conds.append(_status_cond(r.status, "status_class", self.status_class))
        if self.method:
            conds.append(r.method == self.method)
        if self.hostname:
            conds.append(r.hostname == self.hostname)
        if self.path_contains:
            conds.append(r.path.contains(self.path_contains, autoescape=True))
        if self.rt_min is not None:
            conds.append(r.response_time >= self.rt_min)
        if self.rt_max is not None:
            conds.append(r.response_time <= self.rt_max)
        return conds


EXPLORER_COLUMNS = (
    "created_at",
    "method",
    "hostname",
    "path",
    "status",
    "response_time",
    "location",
    "ip_address",
    "user_id",
    "browser",
    "os",
    "device",
)


def explorer_page(
    conn, key_id: int, filters: ExplorerFilters, page: int, size: int = 50
) -> tuple[pd.DataFrame, bool]:
    """One page (0-based) of raw rows newest first, and whether another page follows."""
    r, u = requests.c, user_agents.c
    query = (
        select(
            r.created_at,
            r.method,
            r.hostname,
            r.path,
            r.status,
            r.response_time,
            r.location,
            r.ip_address,
            r.user_id,
            u.browser,
            u.os,
            u.device,
        )
        .select_from(RAW_FROM)
        .where(*filters.conditions(key_id))
        .order_by(r.created_at.desc(), r.id.desc())
        .offset(page * size)
        .limit(size + 1)
    )
    rows = conn.execute(query).all()
    from server.db import as_utc

    frame = pd.DataFrame(
        [
            (as_utc(row[0]).strftime("%Y-%m-%d %H:%M:%S"), *row[1:7], _text(row[7]), *row[8:])
            for row in rows[:size]
        ],
        columns=list(EXPLORER_COLUMNS),
    )
    return frame, len(rows) > size


def _text(value) -> str | None:
    return None if value is None else str(value)
