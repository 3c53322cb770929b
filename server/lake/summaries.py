"""A file's summary: its rows' exact partial answers to the overview's questions.

Written beside a finished file (a closed month's, once compaction has merged it): counts
per hour, per endpoint and status, per version, country and user agent; how many
requests took each millisecond, per day; which users were active each day; and per user
their requests and last one. Every part merges with another file's, or with the same
part computed from raw rows, by plain sums and unions, so an overview over months of
data reads a few small summaries instead of every row, with the same numbers (tests hold
the two ways to each other).

Each part is written once per family: the unsliced family answers the overview with no
filter; a sliced family groups every part by its columns too (the status family by
status and version, ...), so a click on those columns, or on several of one family,
selects summary rows with the same conditions it selects raw rows with (those columns
keep their names here). Clicks on other columns (user, hostname, ...), or on columns of
two families (endpoint and version, country and status), are answered from the rows.
The families were chosen by measurement: a sliced family costs about as many summary
rows as distinct values it groups by times days; the country and client family
("place"), the slowest click people make together from the rows (2.3 s at 100 M rows),
costs a third of a closed month's rows in its response-time part, so its rows are
sorted by its columns and a click reads only their row groups (bench/README.md). The
endpoint family ("ep": one endpoint template, alone or with a status or status class,
2.0-2.3 s from 9.4 M rows at 100 M) is the dearest: every user is active on many
endpoints a day, so its daily-users part holds about half a month's rows; a click
reads its endpoint's share of them only.
"""

from __future__ import annotations

# Kinds of summary rows; `k` holds the text key where there is one.
HOUR, ROUTE, VERSION, LOCATION, AGENT, DAY_RT, DAY_USER, USER, USER_ID = (
    "hour",
    "route",
    "version",
    "location",
    "agent",
    "day_rt",
    "day_user",
    "user",
    "user_id",
)
# Family name -> the columns its parts are also grouped by.
FAMILIES: dict[str, tuple[str, ...]] = {
    "": (),
    "sv": ("status", "version"),
    "loc": ("location",),
    "ua": ("browser", "os", "device"),
    "place": ("location", "browser", "os", "device"),
    "ep": ("route", "status"),
}
# A summary file's rows go in this order: each family's together, each kind of row within
# it together (readers skip the others by the row groups' statistics: every question asks
# for a kind), and within one, by the family's columns, so a click on them reads the row
# groups of its values only. Kind after the columns made a version click 1.4x dearer.
# Then by user and day: sorted so, a closed month's summary at 100 M rows took 13.3 MB
# instead of 18.0 MB (the endpoint family's users per day, mostly; bench/README.md).
ORDER = "fam, kind, route, location, browser, os, device, status, version, ux, t, rt, k"
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
    "version": "NULL::VARCHAR",
    "route": "NULL::VARCHAR",
    "location": "NULL::VARCHAR",
    "browser": "NULL::VARCHAR",
    "os": "NULL::VARCHAR",
    "device": "NULL::VARCHAR",
}
COLUMNS = "fam, kind, " + ", ".join(_NULLS)
_OK = "sum((status < 400)::INTEGER)"
_DAY = "hour // 24 * 86400"
# kind -> (what it groups by, its values, whether only rows with a user count)
_KINDS: dict[str, tuple[tuple[str, ...], dict[str, str], bool]] = {
    HOUR: (("hour",), {"t": "hour * 3600", "n": "count(*)", "n_ok": _OK}, False),
    ROUTE: (
        ("route", "status"),
        {
            "k": "route",
            "status": "status",
            "n": "count(*)",
            "n_ok": _OK,
            "rt_sum": "sum(response_time)",
        },
        False,
    ),  # fmt: skip
    VERSION: (("version",), {"k": "version", "n": "count(*)"}, False),
    LOCATION: (("location",), {"k": "location", "n": "count(*)", "n_ok": _OK}, False),
    AGENT: (("user_agent",), {"k": "user_agent", "n": "count(*)", "n_ok": _OK}, False),
    DAY_RT: ((_DAY, "response_time"), {"t": _DAY, "rt": "response_time", "n": "count(*)"}, False),
    DAY_USER: ((_DAY, "ux"), {"t": _DAY, "ux": "ux", "n": "count(*)"}, True),
    USER: (
        ("ux",),
        {
            "ux": "ux",
            "n": "count(*)",
            "last_us": "epoch_us(max(created_at))",
            "last_loc": "arg_max(coalesce(location, ''), created_at)",
        },
        True,
    ),  # fmt: skip
    # The "User ID" panel: the client-sent user ids' requests.
    USER_ID: (("user_id",), {"k": "user_id", "n": "count(*)"}, False),
}
# The name of a closed month's summary also says how its file is laid out, so compaction
# knows which files to rewrite (server.lake.compaction.compact). Summaries were called
# digests when these names were chosen; files already stored keep them, and each older
# one's file is rewritten (rows sorted again, today's summary beside them):
# - ".digest.parquet": before the families; answers nothing;
# - ".digest2.parquet": the families, rows in time order; answers nothing;
# - ".digest3.parquet": the same parts as v2, rows in week and route order; answers
#   nothing;
# - ".digest4.parquet": v3's parts, the client-sent user ids and the country and client
#   family, its rows in ORDER; answers nothing;
# - ".digest5.parquet": v4's and the endpoint family, its rows in ORDER, its file's in
#   week and route order; answers;
# - ".digest6.parquet" (today's): v5's parts, its file's rows in week, user and route
#   order (server.lake.layout.CLOSED_ORDER).
SUFFIX = ".digest6.parquet"
_SAME_PARTS = (".digest5.parquet", SUFFIX)


def _part(family: str, kind: str, source: str) -> str:
    group, values, users_only = _KINDS[kind]
    sliced = FAMILIES[family]
    cols = {**_NULLS, **values, **{c: c for c in sliced}}
    select = ", ".join(f"{v} AS {k}" for k, v in cols.items())
    by = ", ".join(dict.fromkeys((*group, *sliced)))
    where = " WHERE ux IS NOT NULL" if users_only else ""
    if kind == USER_ID:
        where = " WHERE user_id IS NOT NULL"
    return (
        f"SELECT '{family}' AS fam, '{kind}' AS kind, {select} FROM {source}{where} GROUP BY {by}"
    )


def summary_sql(source: str) -> str:
    """The summary of the rows `source` (SQL usable after FROM) names: every family's parts,
    each family's rows together (readers skip the others by the files' statistics), not
    yet in ORDER (server.lake.compaction.write_summary sorts them apart)."""
    parts = [_part(family, kind, source) for family in FAMILIES for kind in _KINDS]
    return "\nUNION ALL\n".join(f"({p})" for p in parts)


def summary_name(file_name: str) -> str:
    """Where a file's summary is stored: beside it."""
    return file_name.removesuffix(".parquet") + SUFFIX


def is_current(name: str | None) -> bool:
    """Whether a summary has today's parts (and so may answer)."""
    return bool(name) and name.endswith(_SAME_PARTS)


def is_final(name: str | None) -> bool:
    """Whether a summary and its file have today's layout (nothing to rewrite)."""
    return bool(name) and name.endswith(SUFFIX)
