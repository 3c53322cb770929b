"""How a click on a panel, a chip or a control of the overview becomes new filters: pure
functions of the clicked data, tested without a browser."""

from __future__ import annotations

from dataclasses import replace

from server.stats.filters import PERIODS, Filters

# Which filter a click on each graph sets.
CLICK_GRAPHS = {
    "ov-status": "status",
    "ov-versions": "version",
    "ov-map": "location",
    "ov-countries": "location",
    "ov-browsers": "browser",
    "ov-os": "os",
    "ov-devices": "device",
}

# Which filter a click on each table's row sets: the row's column of that name (its active
# cell and rows are "<dim>_cell" and "<dim>_rows" in apply_trigger's values).
CLICK_TABLES = {"ov-endpoints": "endpoint", "ov-users": "user", "ov-user-ids": "user_id"}


def clicked_value(click_data) -> str | None:
    try:
        point = click_data["points"][0]
    except (TypeError, KeyError, IndexError):
        return None
    value = point.get("customdata")
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        value = point.get("label")
    return None if value is None else str(value)


MENU_DIMS = {"ov-service": "service", "ov-release": "release"}


def apply_trigger(current: Filters, trigger, values: dict) -> Filters:
    """The new filters after the control `trigger` changed, read back through the URL's
    own parsing (Filters.from_query), the one check of what filters may hold: a forged
    value of the wrong type or size changes nothing, or is cut as a URL's would be."""
    return Filters.from_query(_applied(current, trigger, values).to_query())


def _applied(current: Filters, trigger, values: dict) -> Filters:
    if isinstance(trigger, dict):  # a chip's pattern-matching id
        dim = trigger.get("dim")
        if trigger.get("type") == "ov-chip" and isinstance(dim, str):
            return current.without_click(dim)
        return current
    if trigger == "ov-period" and isinstance(values["period"], str) and values["period"] in PERIODS:
        return replace(current, period=values["period"])
    if trigger == "ov-hostname":
        hostname = values["hostname"]
        return replace(current, hostname=hostname if isinstance(hostname, str) else None)
    if trigger in MENU_DIMS:  # the service and release menus: a click, or none
        dim, value = MENU_DIMS[trigger], values[MENU_DIMS[trigger]]
        if isinstance(value, str) and value:
            return current.with_click(dim, value)
        return current.without_click(dim)
    if trigger == "ov-toggles":
        toggles = values["toggles"]
        if isinstance(toggles, list) and all(isinstance(t, str) for t in toggles):
            return current.with_toggles(toggles)
        return current
    if trigger == "ov-hidden":
        hidden = values["hidden"] if isinstance(values["hidden"], str) else ""
        patterns = [p.strip() for p in hidden.split(",") if p.strip()]
        return replace(current, hidden=tuple(dict.fromkeys(patterns)))
    if trigger in CLICK_GRAPHS:
        value = clicked_value(values["clicks"].get(trigger))
        return current if value is None else current.with_click(CLICK_GRAPHS[trigger], value)
    if trigger in CLICK_TABLES:
        dim = CLICK_TABLES[trigger]
        row = table_row(values[f"{dim}_cell"], values[f"{dim}_rows"]) or {}
        value = row.get(dim)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return current.with_click(dim, value)
    return current


def table_row(cell, rows):
    """The row a table's active cell is on, or None (also for forged cells and rows)."""
    if not isinstance(cell, dict) or not isinstance(rows, list):
        return None
    index = cell.get("row")
    if not isinstance(index, int) or not 0 <= index < len(rows):
        return None
    return rows[index] if isinstance(rows[index], dict) else None
