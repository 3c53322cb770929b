"""Before and after a moment (a deploy): every endpoint's requests, server errors and
response-time percentiles over two equal windows, with the ranks that bound each
percentile's confidence interval, exact from the stored rows (one snapshot, one scan).

The interval of a percentile is distribution-free: the q-quantile of n requests lies,
with confidence about 99 %, between the order statistics of ranks
n q -/+ z sqrt(n q (1 - q)) (the binomial's normal approximation, z = 2.576).
"""

from __future__ import annotations

import pandas as pd

from server.lake.source import open_rows
from server.stats.conditions import Conditions
from server.stats.slis import span_sql

Z = 2.576
QUANTILES = {"p50": 0.5, "p95": 0.95}


def _bounds(q: float) -> str:
    """The SQL of the low and high ranks (1-based) bounding the q-quantile of n rows."""
    spread = f"{Z} * sqrt(n * {q} * {1 - q})"
    low = f"greatest(1, floor(n * {q} - {spread}))::BIGINT"
    high = f"least(n, ceil(n * {q} + {spread}) + 1)::BIGINT"
    return low, high


def before_after(
    key_id: int, moment_us: int, length_us: int, hostname: str | None = None
) -> pd.DataFrame:
    """[route, after, n, errors, p50, p50_low, p50_high, p95, p95_low, p95_high]: per
    route, the window [moment - length, moment) (after False) and [moment, moment +
    length) (after True); errors are 5xx answers; percentiles linear between ranks, their
    bounds the order statistics above."""
    since, until = moment_us - length_us, moment_us + length_us
    c = Conditions()
    if hostname:
        c.add("(hostname = ?)", hostname)
    picks = []
    for name, q in QUANTILES.items():
        low, high = _bounds(q)
        picks += [
            f"quantile_cont(response_time, {q}) AS {name}",
            f"min(response_time) FILTER (WHERE rank = {low}) AS {name}_low",
            f"min(response_time) FILTER (WHERE rank = {high}) AS {name}_high",
        ]
    sql = (
        "WITH ranked AS (SELECT route, status, response_time, after, "
        "row_number() OVER (PARTITION BY route, after ORDER BY response_time) AS rank, "
        "count(*) OVER (PARTITION BY route, after) AS n FROM ("
        f"SELECT route, status, response_time, epoch_us(created_at) >= {int(moment_us)} AS after "
        f"FROM {{rows}} WHERE {span_sql(since, until)} AND {c.sql})) "
        "SELECT route, after, count(*) AS n, count(*) FILTER (WHERE status >= 500) AS errors, "
        + ", ".join(picks)
        + " FROM ranked GROUP BY route, after ORDER BY route, after"
    )
    with open_rows(key_id, since, until) as rows:
        return rows.frame(sql, list(c.params))
