"""The planner: Filters and a Window become one WHERE clause, the label and the bucket SQL
that every question of a refresh shares, so no two panels can disagree."""

from __future__ import annotations

from dataclasses import dataclass

from server.rules import DAY, HOUR
from server.stats.conditions import filter_conditions, label_sql, window_sql
from server.stats.filters import FIVE_MINUTES, Filters, Window


@dataclass(frozen=True)
class Plan:
    key_id: int
    filters: Filters
    window: Window
    label: str  # SQL: the endpoint as shown
    where: str  # SQL: the window and every filter
    params: tuple
    # SQL: the epoch second at which a row's activity bucket starts, and the finest
    # grain the traffic question needs (hours, or five minutes for a 24-hour window).
    bucket: str
    grain: str
    grain_step: int  # the grain in seconds

    users: dict | None = None  # a clicked user's name -> number (server.lake.users)

    @property
    def previous(self) -> Plan | None:
        """The same filters over the period before (for the change in requests)."""
        previous = self.window.previous
        return None if previous is None else plan(self.key_id, self.filters, previous, self.users)


def bucket_sql(step: int) -> str:
    if step == FIVE_MINUTES:
        return f"epoch_us(created_at) // {FIVE_MINUTES * 1_000_000} * {FIVE_MINUTES}"
    if step == HOUR:
        return f"hour * {HOUR}"
    if step == DAY:
        return f"hour // 24 * {DAY}"
    raise ValueError(f"no activity bucket of {step} s")


def plan(key_id: int, filters: Filters, window: Window, users: dict | None = None) -> Plan:
    """`users` maps a clicked user's name to its number (clicked_users)."""
    label = label_sql(filters)
    conditions = filter_conditions(filters, label, users)
    where = window_sql(window) + " AND " + conditions.sql
    grain_step = FIVE_MINUTES if window.step == FIVE_MINUTES else HOUR
    return Plan(
        key_id=key_id,
        filters=filters,
        window=window,
        label=label,
        where=where,
        params=tuple(conditions.params),
        bucket=bucket_sql(window.step),
        grain=bucket_sql(grain_step),
        grain_step=grain_step,
        users=users,
    )


def clicked_users(conn, key_id: int, filters: Filters) -> dict:
    """The number of the user the filters click on, if any (its rows carry the number)."""
    from server.lake.users import number_of

    name = filters.click.get("user")
    if not name:
        return {}
    number = number_of(conn, key_id, name)
    return {} if number is None else {name: number}
