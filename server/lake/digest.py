"""A file's digest: its rows' exact partial answers to the overview's unfiltered questions.

Written beside a finished file (a closed month's, once compaction has merged it): counts
per hour, per endpoint and status, per version, country and user agent; how many
requests took each millisecond, per day; which users were active each day; and per user
their requests and last one. Every part merges with another file's, or with the same
part computed from raw rows, by plain sums and unions, so an unfiltered overview over
months of data reads a few small digests instead of every row, with the same numbers
(tests hold the two ways to each other).
"""

from __future__ import annotations

# Kinds of digest rows; `k` holds the text key where there is one.
HOUR, ROUTE, VERSION, LOCATION, AGENT, DAY_RT, DAY_USER, USER = (
    "hour",
    "route",
    "version",
    "location",
    "agent",
    "day_rt",
    "day_user",
    "user",
)
COLUMNS = "kind, t, k, status, rt, ux, n, n_ok, rt_sum, last_us, last_loc"
_NULLS = {
    "t": "NULL::BIGINT",
    "k": "NULL::VARCHAR",
    "status": "NULL::SMALLINT",
    "rt": "NULL::INTEGER",
    "ux": "NULL::BIGINT",
    "n": "NULL::BIGINT",
    "n_ok": "NULL::BIGINT",
    "rt_sum": "NULL::BIGINT",
    "last_us": "NULL::BIGINT",
    "last_loc": "NULL::VARCHAR",
}
_OK = "count(*) FILTER (WHERE status < 400)"


def _part(kind: str, source: str, group: str, **values: str) -> str:
    cols = {**_NULLS, **values}
    select = ", ".join(f"{v} AS {k}" for k, v in cols.items())
    return f"SELECT '{kind}' AS kind, {select} FROM {source} GROUP BY {group}"


def digest_sql(source: str) -> str:
    """The digest of the rows `source` (SQL usable after FROM) names."""
    day = "hour // 24 * 86400"
    parts = [
        _part(HOUR, source, "hour", t="hour * 3600", n="count(*)", n_ok=_OK),
        _part(
            ROUTE,
            source,
            "route, status",
            k="route",
            status="status",
            n="count(*)",
            n_ok=_OK,
            rt_sum="sum(response_time)",
        ),  # fmt: skip
        _part(VERSION, source, "version", k="version", n="count(*)"),
        _part(LOCATION, source, "location", k="location", n="count(*)", n_ok=_OK),
        _part(AGENT, source, "user_agent", k="user_agent", n="count(*)", n_ok=_OK),
        _part(DAY_RT, source, f"{day}, response_time", t=day, rt="response_time", n="count(*)"),
        _part(
            DAY_USER, f"{source} WHERE ux IS NOT NULL", f"{day}, ux", t=day, ux="ux", n="count(*)"
        ),  # fmt: skip
        _part(
            USER,
            f"{source} WHERE ux IS NOT NULL",
            "ux",
            ux="ux",
            n="count(*)",
            last_us="epoch_us(max(created_at))",
            last_loc="arg_max(coalesce(location, ''), created_at)",
        ),  # fmt: skip
    ]
    return "\nUNION ALL\n".join(f"({p})" for p in parts)


def digest_name(file_name: str) -> str:
    """Where a file's digest is stored: beside it."""
    return file_name.removesuffix(".parquet") + ".digest.parquet"
