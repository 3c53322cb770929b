"""Raw rows out of the store: pages in time order (data API, explorer) and streams (CSV).

A page deep into ten million rows must not sort ten million rows: the matching rows are
counted per UTC day first (a cheap aggregate), which says which days hold the page, and
only those days are sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.rules import DAY, HOUR

# The data API's columns, in its order; how the engine writes each one as JSON.
COLUMNS = (
    "hostname",
    "ip_address",
    "path",
    "user_agent",
    "method",
    "status",
    "response_time",
    "location",
    "user_id",
    "created_at",
    "browser",
    "os",
    "device",
    "framework",
    "consumer",
    "consumer_group",
    # The endpoint's template (an OpenTelemetry span's http.route when it had one), and
    # the service and release that answered (OpenTelemetry ingest; None otherwise).
    "endpoint",
    "service",
    "release",
)
ISO_UTC = "strftime(created_at, '%Y-%m-%dT%H:%M:%S.%f+00:00')"
_VALUES = {name: (ISO_UTC if name == "created_at" else name) for name in COLUMNS}


@dataclass(frozen=True)
class Where:
    """Conditions on a key's rows, as engine SQL with bind parameters."""

    sql: str = "true"
    params: tuple = ()

    def and_(self, sql: str, *params) -> Where:
        return Where(f"{self.sql} AND ({sql})", self.params + params)


def hour_range(since_s: int | None, until_s: int | None) -> str:
    """[since, until) in epoch seconds on whole hours, as a condition on the hour column."""
    conds = []
    if since_s is not None:
        conds.append(f"hour >= {since_s // HOUR}")
    if until_s is not None:
        conds.append(f"hour < {-(-until_s // HOUR)}")
    return " AND ".join(conds) or "true"


def _day_counts(rows, where: Where) -> list[tuple[int, int]]:
    return rows.query(
        f"SELECT hour // 24 AS day, count(*) FROM {{rows}} WHERE {where.sql} "
        "GROUP BY day ORDER BY day",
        list(where.params),
    ).fetchall()


def page_window(rows, where: Where, offset: int, size: int, newest_first: bool):
    """(where narrowed to the days holding rows offset..offset+size, offset within them);
    None when the offset is past the end."""
    days = _day_counts(rows, where)
    if newest_first:
        days.reverse()
    seen, first, last = 0, None, None
    skip = 0
    for day, count in days:
        if first is None and seen + count > offset:
            first, skip = day, offset - seen
        seen += count
        if first is not None:
            last = day
            if seen >= offset + size:
                break
    if first is None:
        return None
    low, high = (last, first) if newest_first else (first, last)
    narrowed = where.and_(f"hour >= {low * 24} AND hour < {(high + 1) * 24}")
    return narrowed, skip


def page_json(rows, where: Where, page: int, size: int, compact: bool) -> tuple[str, int]:
    """One page (1-based) oldest first as a JSON array text; objects, or arrays when compact.

    The engine writes each row's JSON, so Python only joins strings.
    """
    header = '["' + '","'.join(COLUMNS) + '"]'
    found = page_window(rows, where, (page - 1) * size, size, newest_first=False)
    if found is None:
        return ("[" + header + "]" if compact else "[]"), 0
    narrowed, skip = found
    if compact:
        expr = "json_array(" + ", ".join(_VALUES[c] for c in COLUMNS) + ")::VARCHAR"
    else:
        expr = "json_object(" + ", ".join(f"'{c}', {_VALUES[c]}" for c in COLUMNS) + ")::VARCHAR"
    texts = [
        r[0]
        for r in rows.query(
            f"SELECT {expr} FROM {{rows}} WHERE {narrowed.sql} ORDER BY created_at, id "
            f"LIMIT {int(size)} OFFSET {int(skip)}",
            list(narrowed.params),
        ).fetchall()
    ]
    if compact:
        texts.insert(0, header)
    return "[" + ",".join(texts) + "]", len(texts) - (1 if compact else 0)


def page_rows(rows, where: Where, columns, offset: int, size: int, newest_first: bool = True):
    """Rows offset..offset+size (as tuples of `columns`), newest first by default."""
    found = page_window(rows, where, offset, size, newest_first)
    if found is None:
        return []
    narrowed, skip = found
    order = "created_at DESC, id DESC" if newest_first else "created_at, id"
    return rows.query(
        f"SELECT {', '.join(columns)} FROM {{rows}} WHERE {narrowed.sql} ORDER BY {order} "
        f"LIMIT {int(size)} OFFSET {int(skip)}",
        list(narrowed.params),
    ).fetchall()


# Rows sorted at once while streaming: a few days' worth, so a year's export never sorts
# ten million rows in the engine's memory (it took the web process to 576 MB and 13 s
# before its first row at 10 M rows, bench/README.md).
STREAM_SORT_ROWS = 200_000


def day_spans(days: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """[(first day, last day)] of consecutive runs of `days` ([(day, rows)], in the order
    they are to be read) holding about `limit` rows each (a day is never split)."""
    spans, start, held = [], None, 0
    for day, count in days:
        if start is None:
            start, held = day, 0
        held += count
        if held >= limit:
            spans.append((start, day))
            start = None
    if start is not None:
        spans.append((start, days[-1][0]))
    return spans


def stream_rows(rows, where: Where, columns, chunk: int = 10_000):
    """Every matching row (tuples of `columns`), newest first, a few days at a time."""
    days = _day_counts(rows, where)
    days.reverse()
    for newest, oldest in day_spans(days, STREAM_SORT_ROWS):
        span = where.and_(f"hour >= {oldest * 24} AND hour < {(newest + 1) * 24}")
        result = rows.query(
            f"SELECT {', '.join(columns)} FROM {{rows}} WHERE {span.sql} "
            "ORDER BY created_at DESC, id DESC",
            list(span.params),
        )
        while batch := result.fetchmany(chunk):
            yield from batch


def day_bounds(since_day: int | None, until_day: int | None) -> str:
    """Whole UTC days [since, until) given as epoch days."""
    return hour_range(
        None if since_day is None else since_day * DAY,
        None if until_day is None else until_day * DAY,
    )
