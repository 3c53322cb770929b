"""Breakdowns in one pass: requests by status and endpoint, API version, country and
client (traffic over time is asked apart: dash_app.stats.timeseries).

One GROUPING SETS query decodes each column once for every breakdown; each set groups by
one stored column where it can (`route`, `version`, `location`, `user_agent`), which the
engine aggregates several times faster than several text columns. Time, an integer with
a small range, is grouped apart: the engine's array-indexed (perfect hash) aggregation
only takes such keys (bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dash_app.stats.planner import Plan
from dash_app.stats.timeseries import N_OK

# Which grouping set a result row belongs to, by the columns it groups.
_ROUTE, _VERSION, _LOCATION, _AGENT = range(1, 5)


@dataclass
class Breakdowns:
    traffic: pd.DataFrame  # [t, n, n_ok] per hour (or five minutes)
    by_status: pd.DataFrame  # [status, n, rt_sum]
    endpoints: pd.DataFrame  # [method, endpoint, status_class, n, rt_sum]
    versions: pd.DataFrame  # [version, n]
    locations: pd.DataFrame  # [location, n, n_err]
    agents: pd.DataFrame  # [user_agent, n, n_err]


def breakdowns(rows, plan: Plan, traffic: pd.DataFrame) -> Breakdowns:
    """The breakdowns of the rows, with the traffic counts asked apart (timeseries)."""
    return shape(sets_frame(rows, plan), traffic, plan)


def sets_frame(rows, plan: Plan) -> pd.DataFrame:
    """[g, route (or method, label), status, version, location, user_agent, n, n_ok,
    rt_sum]: one row per group of each set, `g` naming the set."""
    endpoint_keys = _endpoint_keys(plan)
    sets = _sets(endpoint_keys)
    which = " + ".join(
        f"(CASE WHEN GROUPING({', '.join(cols)}) = 0 THEN {i} ELSE 0 END)"
        for i, cols in sets.items()
    )
    columns = [*endpoint_keys, "status", "version", "location", "user_agent"]
    inner = ", ".join(f"{plan.label} AS label" if c == "label" else c for c in columns)
    grouping = ", ".join("(" + ", ".join(cols) + ")" for cols in sets.values())
    return rows.frame(
        f"SELECT {which} AS g, {', '.join(columns)}, count(*) AS n, "
        f"{N_OK} AS n_ok, sum(response_time) AS rt_sum "
        f"FROM (SELECT {inner}, response_time FROM {{rows}} WHERE {plan.where}) "
        f"GROUP BY GROUPING SETS ({grouping})",
        list(plan.params),
    )


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
    sets = _sets(_endpoint_keys(plan))
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
        return found.groupby(column, as_index=False)[["n", "n_err"]].sum()

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
    from server.useragents import describe

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
