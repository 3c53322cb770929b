"""Filters as engine SQL: the window, hostname, toggles, hidden patterns and every click.

Values from the user travel as bind parameters (`?`); only our own column names and
integers are written into the SQL text.
"""

from __future__ import annotations

from server.stats.filters import Filters, Window, status_class_range

# The endpoint's label under the two path options (server.rules.endpoint_label in SQL).
_BARE = "split_part(path, '?', 1)"
_QUERY = "CASE WHEN contains(path, '?') THEN '?' || substr(path, strpos(path, '?') + 1) ELSE '' END"


def label_sql(filters: Filters) -> str:
    """SQL for how an endpoint is shown: its template, or the raw path without/with query."""
    if filters.keep_ids and filters.keep_params:
        return "path"
    if filters.keep_ids:
        return _BARE
    if filters.keep_params:
        return f"endpoint || {_QUERY}"
    return "endpoint"


def window_sql(window: Window) -> str:
    """[since, until) on the hour column (every window starts and ends on an hour)."""
    conds = [f"hour < {window.until // 3600}"]
    if window.since is not None:
        conds.append(f"hour >= {window.since // 3600}")
    return " AND ".join(conds)


def glob_pattern(pattern: str) -> str:
    """An fnmatch pattern as a GLOB pattern: the engine's GLOB reads `*`, `?`, `[...]` and
    `[!...]` as fnmatch does (tests hold the two to each other)."""
    return pattern


class Conditions:
    """An accumulating WHERE clause with its parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list = []

    def add(self, sql: str, *params) -> None:
        self.parts.append(sql)
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return " AND ".join(f"({p})" for p in self.parts) if self.parts else "true"


def filter_conditions(filters: Filters, label: str, users: dict | None = None) -> Conditions:
    """Everything but the window: hostname, toggles, hidden endpoints, clicks.

    `users` maps a clicked user's name to its number (server.lake.users).
    """
    c = Conditions()
    if filters.hostname:
        c.add("hostname = ?", filters.hostname)
    if filters.exclude_404:
        c.add("status <> 404")
    if filters.exclude_bots:
        c.add("NOT coalesce(bot, false)")
    for pattern in filters.hidden:
        glob = glob_pattern(pattern)
        c.add(f"NOT ({label} GLOB ? OR (method || ' ' || {label}) GLOB ?)", glob, glob)
    for dim, value in filters.clicks:
        _click(c, dim, value, label, users)
    for dim, value in filters.fixed:
        # A fixed endpoint is a template: its stored column, whatever the view shows.
        _click(c, dim, value, "endpoint", users)
    return c


def _click(c: Conditions, dim: str, value: str, label: str, users: dict | None) -> None:
    if dim == "hostname":
        c.add("hostname = ?", value)
    elif dim == "status":
        if value.isdigit():
            c.add("status = ?", int(value))
        else:
            c.add("false")
    elif dim == "status_class":
        bounds = status_class_range(value)
        if bounds:
            c.add("status >= ? AND status < ?", *bounds)
        else:
            c.add("false")
    elif dim == "endpoint":
        if label == "endpoint":  # the default view: one stored column says it all
            c.add("route = ?", value)
        else:
            method, _, path = value.partition(" ")
            c.add(f"method = ? AND {label} = ?", method, path)
    elif dim == "version":
        c.add("version = ?", value)
    elif dim in ("location", "browser", "os", "device"):
        # '' is the panels' "Unknown": rows without a value.
        if value:
            c.add(f"{dim} = ?", value)
        else:
            c.add(f"({dim} IS NULL OR {dim} = '')")
    elif dim in ("user_id", "consumer", "consumer_group", "service", "release"):
        c.add(f"{dim} = ?", value)
    elif dim == "error_group":
        if value.isdigit():
            c.add("error_group = ?", int(value))
        else:
            c.add("false")
    elif dim == "user":
        number = users.get(value) if users else None
        if number is None:  # nobody of that name: no rows
            c.add("false")
        else:
            c.add("ux = ?", number)
    else:  # an unknown dimension selects nothing rather than everything
        c.add("false")
