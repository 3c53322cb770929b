"""Usage counts: one key's requests (and 5xx answers) in a span, per consumer, route or
status class, exact from every stored row, optionally only the rows up to (or past) a
row id, so a frozen answer and the rows that arrived after it can be told apart."""

from __future__ import annotations

import pandas as pd

from server.lake.source import open_rows
from server.stats.slis import span_sql

GROUPS = {
    "consumer": "consumer",
    "route": "route",
    "status_class": "CAST(status // 100 AS VARCHAR) || 'xx'",
}


def usage_counts(
    key_id: int,
    since_us: int,
    until_us: int,
    group_by: str,
    *,
    up_to_id: int | None = None,
    past_id: int | None = None,
) -> pd.DataFrame:
    """[name, requests, errors] in [since, until), the busiest first (then by name; a
    row without a consumer has name None)."""
    name = GROUPS[group_by]
    where = span_sql(since_us, until_us)
    if up_to_id is not None:
        where += f" AND id <= {int(up_to_id)}"
    if past_id is not None:
        where += f" AND id > {int(past_id)}"
    with open_rows(key_id, since_us, until_us) as rows:
        found = rows.frame(
            f"SELECT {name} AS name, count(*) AS requests, "
            f"count(*) FILTER (WHERE status >= 500) AS errors FROM {{rows}} WHERE {where} "
            "GROUP BY 1 ORDER BY requests DESC, name NULLS LAST"
        )
    found["requests"] = found["requests"].astype("int64")
    found["errors"] = found["errors"].astype("int64")
    return found
