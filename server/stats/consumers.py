"""For whom: each named consumer's and each consumer group's requests, error rate, p95
latency, last request and top endpoints, exact under the dashboard's filters and period."""

from __future__ import annotations

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


def table(
    key_id: int,
    filters: Filters,
    window: Window,
    by: str = "consumer",
    limit: int | None = None,
) -> pd.DataFrame:
    """[name, requests, errors, error_rate, p95, last_us, top_endpoints] per consumer
    (`by` "consumer", with [display_name, group]) or per consumer group ("consumer_group"),
    busiest first, the `limit` busiest only if given (`total` says how many there are).
    Requests without one are left out.

    The p95 and the top endpoints are computed for the rows shown only: with 10,000
    consumers, computing them for all took most of the Consumers page's time
    (bench/dashboard.py --errors)."""
    column = "consumer_group" if by == "consumer_group" else "consumer"
    with get_engine().connect() as conn:
        p = plan(key_id, filters, window, clicked_users(conn, key_id, filters))
    where = f"{p.where} AND {column} IS NOT NULL"
    cut = f"LIMIT {int(limit)}" if limit else ""
    with open_rows(key_id) as rows:
        found = rows.frame(
            f"SELECT {column} AS name, count(*) AS requests, "
            f"count(*) FILTER (WHERE {ERROR_SQL}) AS errors, "
            "epoch_us(max(created_at)) AS last_us, count(*) OVER () AS total "
            f"FROM {{rows}} WHERE {where} GROUP BY ALL ORDER BY requests DESC, name {cut}",
            list(p.params),
        )
        names = list(found["name"])
        shown = f"{column} IN (SELECT unnest(?::VARCHAR[]))"
        p95 = rows.frame(
            f"SELECT {column} AS name, quantile_cont(response_time, 0.95) AS p95 FROM {{rows}} "
            f"WHERE {where} AND {shown} GROUP BY ALL",
            [*p.params, names],
        )
        top = rows.frame(
            f"SELECT name, list(route ORDER BY n DESC, route)[1:{TOP_ENDPOINTS}] AS routes FROM "
            f"(SELECT {column} AS name, route, count(*) AS n FROM {{rows}} "
            f"WHERE {where} AND {shown} GROUP BY ALL) GROUP BY name",
            [*p.params, names],
        )
    found["error_rate"] = (found["errors"] / found["requests"] * 100).astype(float)
    found["p95"] = found["name"].map(dict(zip(p95["name"], p95["p95"], strict=True)))
    routes = dict(zip(top["name"], top["routes"], strict=True))
    found["top_endpoints"] = [list(routes.get(name, [])) for name in found["name"]]
    if column == "consumer":
        found = found.merge(_names(key_id, names), how="left", left_on="name",
                            right_on="consumer_id")  # fmt: skip
        found = found.drop(columns=["consumer_id"])
    found = found.reset_index(drop=True)
    columns = ["name", "requests", "errors", "error_rate", "p95", "last_us", "top_endpoints",
               "total", *(["display_name", "group"] if column == "consumer" else [])]  # fmt: skip
    found = found.reindex(columns=columns)
    return found.astype(object).where(found.notna(), None)


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
