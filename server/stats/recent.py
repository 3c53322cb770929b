"""Questions over a recent window of one key's requests, exact to the microsecond (the
alert rules': error rate, p95 latency, whether traffic stopped)."""

from __future__ import annotations

from server.config import current_config
from server.lake.source import open_rows

DAY_US = 86_400_000_000


def _window(since_us: int, until_us: int) -> str:
    return (
        f"FROM {{rows}} WHERE epoch_us(created_at) >= {int(since_us)} "
        f"AND epoch_us(created_at) < {int(until_us)}"
    )


def error_count(key_id: int, since_us: int, until_us: int, *, include_4xx: bool) -> tuple:
    """(requests, errors) in [since, until): errors are 5xx, or 4xx and 5xx."""
    floor = 400 if include_4xx else 500
    with open_rows(key_id, since_us, until_us, current_config()) as rows:
        return rows.query(
            f"SELECT count(*), count(*) FILTER (WHERE status >= {floor}) "
            f"{_window(since_us, until_us)}"
        ).fetchone()


def latency_p95(key_id: int, since_us: int, until_us: int, route: str | None = None) -> tuple:
    """(requests, p95 response time in ms or None) in [since, until), of one route
    ("GET /items/{id}") or all; exact, linear between ranks."""
    where, params = _window(since_us, until_us), []
    if route:
        where += " AND route = ?"
        params.append(route)
    with open_rows(key_id, since_us, until_us, current_config()) as rows:
        return rows.query(
            f"SELECT count(*), quantile_cont(response_time, 0.95) {where}", params
        ).fetchone()


def same_window_daily(key_id: int, since_us: int, until_us: int, days: int) -> list[int]:
    """Requests in [since, until) today and in the same window on each of the `days`
    days before, newest first."""
    start = since_us - days * DAY_US
    counts = ", ".join(
        f"count(*) FILTER (WHERE epoch_us(created_at) >= {since_us - d * DAY_US} "
        f"AND epoch_us(created_at) < {until_us - d * DAY_US})"
        for d in range(days + 1)
    )
    with open_rows(key_id, start, until_us, current_config()) as rows:
        return list(rows.query(f"SELECT {counts} FROM {{rows}}").fetchone())
