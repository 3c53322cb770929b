"""A key's usage for a month: live while the month is open, frozen when first asked for
once it has closed (and a grace period passed), identical on every later ask; rows of a
frozen month that arrive afterwards are counted apart as late, never added.

What is frozen is every row with an id up to the store's sealed boundary at that moment
(server.lake.export.seal: no write in flight below it), so a later answer can tell the
late rows by their ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from server.db import as_utc, get_engine, utcnow
from server.lake import catalog
from server.lake.export import seal
from server.stats.usage import GROUPS, usage_counts
from server.usage.models import usage_counts as counts_table
from server.usage.models import usage_months

log = logging.getLogger(__name__)

# A month is final this long after it ends: rows sent in its last seconds have come.
GRACE = timedelta(hours=1)


@dataclass
class Usage:
    month: str  # YYYY-MM
    group_by: str
    final: bool
    frozen_at: datetime | None
    counts: pd.DataFrame  # [name, requests, errors]
    late: pd.DataFrame | None  # the same, of rows that came after the month was frozen

    def as_dict(self) -> dict:
        late = self.late if self.late is not None else self.counts.iloc[0:0]
        return {
            "month": self.month,
            "group_by": self.group_by,
            "final": self.final,
            "frozen_at": self.frozen_at,
            "requests": int(self.counts["requests"].sum()),
            "errors": int(self.counts["errors"].sum()),
            "rows": _records(self.counts),
            "late": {
                "requests": int(late["requests"].sum()),
                "errors": int(late["errors"].sum()),
                "rows": _records(late),
            },
        }


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {"name": None if n is None or n != n else str(n), "requests": int(r), "errors": int(e)}
        for n, r, e in zip(frame["name"], frame["requests"], frame["errors"], strict=True)
    ]


class MonthError(ValueError):
    pass


def month_span(month: str) -> tuple[datetime, datetime]:
    """'2026-11' -> [2026-11-01, 2026-12-01) UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise MonthError("month must be YYYY-MM, such as 2026-11.") from exc
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def usage(key_id: int, month: str, group_by: str, now: datetime | None = None) -> Usage:
    """The key's usage in `month` by `group_by` (consumer, route or status_class)."""
    if group_by not in GROUPS:
        raise MonthError(f"group_by must be one of {', '.join(GROUPS)}.")
    now = now or utcnow()
    start, end = month_span(month)
    if start > now:
        raise MonthError("that month has not begun.")
    since, until = _us(start), _us(end)
    if now < end + GRACE:
        return Usage(month, group_by, False, None, usage_counts(key_id, since, until, group_by),
                     None)  # fmt: skip
    stored = _stored(key_id, start, group_by)
    if stored is None:
        stored = _freeze(key_id, start, since, until, group_by)
    month_id, frozen_at, boundary, counts = stored
    late = usage_counts(key_id, since, until, group_by, past_id=boundary)
    return Usage(month, group_by, True, frozen_at, counts, late)


def _month_number(start: datetime) -> int:
    return start.year * 100 + start.month


def _stored(key_id: int, start: datetime, group_by: str):
    m = usage_months.c
    with get_engine().connect() as conn:
        found = conn.execute(
            select(m.id, m.frozen_at, m.boundary).where(
                m.key_id == key_id, m.month == _month_number(start), m.group_by == group_by
            )
        ).first()
        if found is None:
            return None
        c = counts_table.c
        rows = conn.execute(
            select(c.name, c.requests, c.errors).where(c.month_id == found.id).order_by(c.id)
        ).all()
    counts = pd.DataFrame(
        {"name": [r.name for r in rows], "requests": [int(r.requests) for r in rows],
         "errors": [int(r.errors) for r in rows]},
        columns=["name", "requests", "errors"],
    )  # fmt: skip
    return found.id, as_utc(found.frozen_at), int(found.boundary), counts


def _freeze(key_id: int, start: datetime, since: int, until: int, group_by: str):
    """Count the month up to the sealed boundary and store it; a concurrent first ask
    that stored it first wins (the unique constraint), and its answer is returned."""
    engine = get_engine()
    with engine.connect() as conn:
        exported = catalog.exported_id(conn)
    boundary = max(seal(engine)["requests"], exported)
    counts = usage_counts(key_id, since, until, group_by, up_to_id=boundary)
    frozen_at = utcnow()
    try:
        with engine.begin() as conn:
            month_id = conn.execute(
                insert(usage_months)
                .values(
                    key_id=key_id,
                    month=_month_number(start),
                    group_by=group_by,
                    frozen_at=frozen_at,
                    boundary=boundary,
                    requests=int(counts["requests"].sum()),
                )  # fmt: skip
                .returning(usage_months.c.id)
            ).scalar_one()
            if len(counts):
                conn.execute(
                    insert(counts_table),
                    [
                        {
                            "month_id": month_id,
                            "name": r["name"],
                            "requests": r["requests"],
                            "errors": r["errors"],
                        }  # fmt: skip
                        for r in _records(counts)
                    ],
                )
    except IntegrityError:
        log.info("usage of key id=%s for %s was frozen concurrently", key_id, start)
        return _stored(key_id, start, group_by)
    log.info("usage of key id=%s for %s by %s frozen", key_id, start, group_by)
    return month_id, frozen_at, boundary, counts
