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


def apply_trigger(current: Filters, trigger, values: dict) -> Filters:
    """The new filters after the control `trigger` changed."""
    if isinstance(trigger, dict):  # a chip's pattern-matching id
        return (
            current.without_click(trigger["dim"]) if trigger.get("type") == "ov-chip" else current
        )
    if trigger == "ov-period" and values["period"] in PERIODS:
        return replace(current, period=values["period"])
    if trigger == "ov-hostname":
        return replace(current, hostname=values["hostname"] or None)
    if trigger == "ov-toggles":
        return current.with_toggles(values["toggles"])
    if trigger == "ov-hidden":
        patterns = [p.strip() for p in (values["hidden"] or "").split(",") if p.strip()]
        return replace(current, hidden=tuple(dict.fromkeys(patterns)))
    if trigger in CLICK_GRAPHS:
        value = clicked_value(values["clicks"].get(trigger))
        return current if value is None else current.with_click(CLICK_GRAPHS[trigger], value)
    if trigger == "ov-endpoints":
        row = table_row(values["endpoint_cell"], values["endpoint_rows"])
        return current.with_click("endpoint", row["endpoint"]) if row else current
    if trigger == "ov-users":
        row = table_row(values["user_cell"], values["user_rows"])
        return current.with_click("user", row["user"]) if row else current
    return current


def table_row(cell, rows):
    if not cell or not rows:
        return None
    index = cell.get("row")
    return rows[index] if index is not None and 0 <= index < len(rows) else None
