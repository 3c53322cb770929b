"""Breakdowns in one pass: requests by status and endpoint, API version, country and
client (traffic over time is asked apart: server.stats.timeseries).

One GROUPING SETS query decodes each column once for every breakdown; each set groups by
one stored column where it can (`route`, `version`, `location`, `user_agent`), which the
engine aggregates several times faster than several text columns. Time, an integer with
a small range, is grouped apart: the engine's array-indexed (perfect hash) aggregation
only takes such keys (bench/README.md). The same scan can also count the response-time
distribution per activity bucket and the requests per user: under a filter the engine
must evaluate on every row (a country and a client at 100 M rows), one scan instead of
three took 2.4 s down to 1.5 s (bench/README.md). It counts the client-sent user ids'
requests too (the "User ID" panel), which took a scan of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from server.stats.planner import Plan
from server.stats.timeseries import N_OK

# Which grouping set a result row belongs to, by the columns it groups.
_ROUTE, _VERSION, _LOCATION, _AGENT, _LATENCY, _USERS, _USER_IDS, _GRAINS, _PAIRS = range(1, 10)


@dataclass
class Breakdowns:
    traffic: pd.DataFrame  # [t, n, n_ok] per hour (or five minutes)
    by_status: pd.DataFrame  # [status, n, rt_sum]
    endpoints: pd.DataFrame  # [method, endpoint, status_class, n, rt_sum]
    versions: pd.DataFrame  # [version, n]
    locations: pd.DataFrame  # [location, n, n_err]
    agents: pd.DataFrame  # [user_agent, n, n_err]


def sets_frame(
    rows, plan: Plan, *, latency: bool = False, per_user: bool = False, traffic: bool = False
):
    """[g, route (or method, label), status, version, location, user_agent, user_id, n,
    n_ok, rt_sum]: one row per group of each set, `g` naming the set; the requests per
    client-sent user id among them (user_ids_part). With `latency`, also the requests per
    activity bucket and whole millisecond (latency_part); with `per_user`, per user
    number, with its last hour (users_part); with `traffic`, the requests per grain and
    per activity bucket and user (traffic_part: server.stats.timeseries.traffic_and_users
    asks for them, and a later call with the same rows, plan and options is answered
    from that scan)."""
    noted = ("sets", rows.relation, plan.where, plan.params, latency, per_user)
    if not traffic and noted in rows.notes:
        return rows.notes[noted]
    endpoint_keys = _endpoint_keys(plan)
    sets = _sets(endpoint_keys)
    sets[_USER_IDS] = ("user_id",)
    if latency:
        sets[_LATENCY] = ("bucket", "rt")
    if per_user:
        sets[_USERS] = ("ux",)
    if traffic:
        sets[_GRAINS] = ("t",)
        sets[_PAIRS] = ("bucket", "ux")
    columns = list(dict.fromkeys(c for cols in sets.values() for c in cols))
    # GROUPING over every column has a bit set for each column a set does not group by
    # (the first column the highest): that mask names the set.
    masks = {
        i: sum(1 << (len(columns) - 1 - j) for j, c in enumerate(columns) if c not in cols)
        for i, cols in sets.items()
    }
    which = (
        f"CASE GROUPING({', '.join(columns)}) "
        + " ".join(f"WHEN {mask} THEN {i}" for i, mask in masks.items())
        + " END"
    )
    as_stored = {"label": f"{plan.label} AS label", "bucket": f"{plan.bucket} AS bucket",
                 "rt": "response_time AS rt", "t": f"{plan.grain} AS t"}  # fmt: skip
    inner = ", ".join(as_stored.get(c, c) for c in columns)
    grouping = ", ".join("(" + ", ".join(cols) + ")" for cols in sets.values())
    hour = per_user or traffic
    last_hour = ", max(hour) AS last_hour" if hour else ""
    frame = rows.frame(
        f"SELECT {which} AS g, {', '.join(columns)}, count(*) AS n, "
        f"{N_OK} AS n_ok, sum(response_time) AS rt_sum{last_hour} "
        f"FROM (SELECT {inner}, response_time{', hour' if hour else ''} FROM {{rows}} "
        f"WHERE {plan.where}) GROUP BY GROUPING SETS ({grouping})",
        list(plan.params),
    )
    note_user_ids(rows, plan, user_ids_part(frame))
    if traffic:
        rows.notes[noted] = frame
    return frame


def traffic_part(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """([t, n, n_ok], [bucket, users]) of a sets frame asked with `traffic`."""
    grains = frame[frame["g"] == _GRAINS][["t", "n", "n_ok"]].astype("int64")
    pairs = frame[frame["g"] == _PAIRS].dropna(subset=["bucket", "ux"])
    per_bucket = pairs.groupby("bucket", as_index=False).size().rename(columns={"size": "users"})
    per_bucket = per_bucket[["bucket", "users"]].astype("int64").sort_values("bucket")
    return grains.reset_index(drop=True), per_bucket.reset_index(drop=True)


def note_user_ids(rows, plan: Plan, counts: pd.DataFrame) -> None:
    """Remember [user_id, n] of every user id in `rows` under `plan`, for user_ids."""
    rows.notes[("user_ids", rows.relation, plan.where, plan.params)] = counts


def latency_part(frame: pd.DataFrame) -> pd.DataFrame:
    """[bucket, rt, n] of a sets frame asked with `latency`: the distribution of each
    activity bucket, whose exact percentiles server.stats.latency.per_bucket reads.
    Counting pairs keeps the engine's memory to the distinct (bucket, millisecond) pairs,
    where a percentile aggregate holds every value of a bucket (at 100 M rows that took
    the process past 800 MB, bench/README.md)."""
    part = frame[frame["g"] == _LATENCY].dropna(subset=["bucket", "rt"])
    return part[["bucket", "rt", "n"]].astype("int64").reset_index(drop=True)


def users_part(frame: pd.DataFrame) -> pd.DataFrame:
    """[ux, n, last_hour] of a sets frame asked with `per_user`: each user's requests."""
    part = frame[frame["g"] == _USERS].dropna(subset=["ux"])
    return part[["ux", "n", "last_hour"]].astype("int64").reset_index(drop=True)


def user_ids_part(frame: pd.DataFrame) -> pd.DataFrame:
    """[user_id, n] of a sets frame: the requests of each client-sent user id."""
    part = frame[frame["g"] == _USER_IDS].dropna(subset=["user_id"])
    return part[["user_id", "n"]].astype({"n": "int64"}).reset_index(drop=True)


def busiest_user_ids(counts: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """[user_id, n]: the `limit` user ids with the most requests, from [user_id, n] (parts
    from several sources sum), ties by id."""
    if counts.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "n": pd.Series(dtype="int64")})
    summed = counts.groupby("user_id", as_index=False)["n"].sum()
    summed = summed[summed["n"] != 0]
    ranked = summed.sort_values(["n", "user_id"], ascending=[False, True]).head(limit)
    return ranked.astype({"n": "int64"}).reset_index(drop=True)


def _endpoint_keys(plan: Plan) -> tuple[str, ...]:
    return ("route",) if plan.label == "endpoint" else ("method", "label")


def _sets(endpoint_keys) -> dict[int, tuple[str, ...]]:
    return {
        _ROUTE: (*endpoint_keys, "status"),
        _VERSION: ("version",),
        _LOCATION: ("location",),
        _AGENT: ("user_agent",),
    }


def shape(frame: pd.DataFrame, traffic_frame: pd.DataFrame, plan: Plan) -> Breakdowns:
    """The panels' frames from a sets frame (several may be concatenated: sums merge)."""
    default_label = plan.label == "endpoint"
    sets = _sets(_endpoint_keys(plan))  # the breakdowns' sets; any others are not read here
    part = {i: frame[frame["g"] == i] for i in sets}
    counts = ["n", "n_ok", "rt_sum"]
    for i in part:
        part[i] = part[i].assign(**{c: part[i][c].fillna(0).astype("int64") for c in counts})
    route = part[_ROUTE]
    if default_label:
        route = route.groupby(["route", "status"], as_index=False)[counts].sum()
        split = route["route"].str.split(" ", n=1, expand=True)
        route = route.assign(method=split[0], endpoint=split[1]) if len(route) else route
    else:
        route = route.rename(columns={"label": "endpoint"})
    # A straddled file's rows before the window are counted negatively (server.stats.
    # summaries.Outside): a group that sums to nothing had rows only there.
    route = route[route["n"] != 0]
    route = route.reindex(columns=["method", "endpoint", "status", "n", "rt_sum"]).astype(
        {"method": object, "endpoint": object, "status": "int64"}
    )
    status = route.groupby("status", as_index=False)[["n", "rt_sum"]].sum()
    endpoints = (
        route.assign(status_class=route["status"] // 100)
        .groupby(["method", "endpoint", "status_class"], as_index=False)[["n", "rt_sum"]]
        .sum()
    )

    def by(i: int, column: str) -> pd.DataFrame:
        found = part[i].assign(**{column: part[i][column].fillna(""), "n_err": 0})
        found["n_err"] = found["n"] - found["n_ok"]
        summed = found.groupby(column, as_index=False)[["n", "n_err"]].sum()
        return summed[summed["n"] != 0].reset_index(drop=True)

    return Breakdowns(
        traffic=traffic_frame.groupby("t", as_index=False)[["n", "n_ok"]].sum().astype("int64"),
        by_status=status.astype("int64"),
        endpoints=endpoints.astype({"status_class": "int64", "n": "int64", "rt_sum": "int64"}),
        versions=by(_VERSION, "version")[["version", "n"]],
        locations=by(_LOCATION, "location"),
        agents=by(_AGENT, "user_agent"),
    )


def clients(agents: pd.DataFrame, engine=None) -> pd.DataFrame:
    """[browser, os, device, n, n_err] from counts per user agent: each agent's browser, OS
    and device are what enrichment stored for it (the user_agents table, which every
    enriched row's values come from), so grouping by the agent alone is exact."""
    from server.lake.agents import describe

    if agents.empty:
        return pd.DataFrame(columns=["browser", "os", "device", "n", "n_err"])
    known = describe(set(agents["user_agent"]) - {""}, engine)
    parts = [known.get(ua, ("", "", "")) for ua in agents["user_agent"]]
    frame = agents.assign(
        browser=[p[0] for p in parts], os=[p[1] for p in parts], device=[p[2] for p in parts]
    )
    return frame.groupby(["browser", "os", "device"], as_index=False)[["n", "n_err"]].sum()


def hostnames(rows) -> list[str]:
    """Every hostname the key has logged (the hostname menu ignores the filters): the
    catalog's list for each file, and the hot rows' own."""
    names = {h for f in rows.snapshot.files for h in f.hostnames}
    hot = rows.cursor.execute(
        f"SELECT DISTINCT hostname FROM {rows.hot_table} WHERE hostname <> ''"
    ).fetchall()
    return sorted(names | {r[0] for r in hot})


TOP_USER_IDS = 10


def user_ids(rows, plan: Plan, limit: int = TOP_USER_IDS) -> pd.DataFrame:
    """[user_id, n]: the client-sent user ids with the most requests (the hosted original's
    "User ID" panel; a click filters by one: `user_id=` in the URL), in a scan of its own
    (a refresh counts them in its sets frame: user_ids_part)."""
    noted = rows.notes.get(("user_ids", rows.relation, plan.where, plan.params))
    if noted is not None:
        return busiest_user_ids(noted, limit)
    return rows.frame(
        f"SELECT user_id, count(*) AS n FROM {{rows}} WHERE {plan.where} AND user_id IS NOT NULL "
        f"GROUP BY user_id ORDER BY n DESC, user_id LIMIT {int(limit)}",
        list(plan.params),
    )
