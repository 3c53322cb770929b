"""What our client reports of itself with each batch, in two optional headers, and how
the ingest health keeps and shows it. The published clients send neither; a batch
without them, or with one that does not parse, is ingested the same (a diagnostic is
never worth refusing data for).

- `X-Client-Time: 1765111234.567`: the client's clock (Unix seconds) as it sent the
  batch. The skew is the server's receive time minus that: network transit (a few ms)
  plus how far the client's clock is behind ours, so its rows' times are off by it.
- `X-Client-Drops: instance=<hex>; buffer_full=3; refused=0; failed=2`: one client
  process's counters since it started (only sent once one is above zero): records
  dropped because its buffer was full, records of batches this server refused outright,
  and sends that failed and were retried. They only grow within a process (`instance`),
  so the largest reported is the latest, whatever order batches arrive in.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, select

from server.db import as_utc, dialect_insert, is_postgres
from server.ingest_health.models import ingest_clients, ingest_drops

TIME_HEADER = "X-Client-Time"
DROPS_HEADER = "X-Client-Drops"
SKEWS_KEPT = 50  # per client: the recent batches a median and a largest are taken of
SKEW_WARN_S = 5.0  # a median beyond this many seconds is worth a warning
INSTANCES_KEPT = 100  # per key: client processes that reported drops, newest first
COUNTERS = ("buffer_full", "refused", "failed")
_MAX_COUNT = 2**62
_INSTANCE = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class Report:
    """What one batch's headers said: its skew in ms, and its process's drop counters."""

    skew_ms: int | None = None
    instance: str | None = None
    counts: tuple[int, int, int] = (0, 0, 0)


def read_report(headers, received: float) -> Report | None:
    """The report in a batch's headers (`received`: the server's time it arrived, Unix
    seconds); None when it carries none that parses."""
    skew = _skew_ms(headers.get(TIME_HEADER), received)
    drops = parse_drops(headers.get(DROPS_HEADER))
    if skew is None and drops is None:
        return None
    instance, counts = drops if drops else (None, (0, 0, 0))
    return Report(skew, instance, counts)


def _skew_ms(value: str | None, received: float) -> int | None:
    if not value or len(value) > 32:
        return None
    try:
        sent = float(value)
    except ValueError:
        return None
    if not math.isfinite(sent) or not 0 < sent < 2**40:
        return None
    return round((received - sent) * 1000)


def parse_drops(value: str | None) -> tuple[str, tuple[int, int, int]] | None:
    """(instance, (buffer_full, refused, failed)) of an X-Client-Drops value, or None."""
    if not value or len(value) > 300:
        return None
    fields = {}
    for part in value.split(";"):
        name, sep, number = part.partition("=")
        if sep:
            fields[name.strip().lower()] = number.strip()
    instance = fields.get("instance", "").lower()
    if not _INSTANCE.fullmatch(instance):
        return None
    counts = []
    for name in COUNTERS:
        number = fields.get(name, "0")
        if not (number.isascii() and number.isdigit()) or int(number) >= _MAX_COUNT:
            return None
        counts.append(int(number))
    return instance, (counts[0], counts[1], counts[2])


# ----------------------------------------------------------------- writing (the flush)


def write_skews(conn, skews: dict) -> None:
    """Append each client's new skews ((key, framework, client) -> [ms]) to its row,
    keeping the newest SKEWS_KEPT. The row was upserted earlier in this transaction,
    which holds it (PostgreSQL: FOR UPDATE; SQLite: the write lock of that upsert)."""
    c = ingest_clients.c
    for (key_id, framework, client), new in skews.items():
        where = (c.key_id == key_id, c.framework == framework, c.client == client)
        query = select(c.skews).where(*where)
        if is_postgres(conn):
            query = query.with_for_update()
        found = conn.execute(query).scalar_one_or_none()
        kept = (_samples(found) + new)[-SKEWS_KEPT:]
        conn.execute(ingest_clients.update().where(*where).values(skews=json.dumps(kept)))


def write_drops(conn, drops: dict) -> None:
    """Upsert each process's counters ((key, instance) -> [framework, client, first_at,
    last_at, changed_at, buffer_full, refused, failed]), keeping the largest of each, and
    the newest INSTANCES_KEPT processes of each key."""
    t = ingest_drops
    for (key_id, instance), seen in drops.items():
        framework, client, first_at, last_at, changed_at, *counts = seen
        stmt = dialect_insert(conn, t).values(
            key_id=key_id, instance=instance, framework=framework, client=client,
            first_at=first_at, last_at=last_at, changed_at=changed_at,
            **dict(zip(COUNTERS, counts, strict=True)),
        )  # fmt: skip
        new = stmt.excluded
        rose = [new[name] > t.c[name] for name in COUNTERS]
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["key_id", "instance"],
                set_={
                    **{
                        name: case((new[name] > t.c[name], new[name]), else_=t.c[name])
                        for name in COUNTERS
                    },
                    "last_at": case((new.last_at > t.c.last_at, new.last_at), else_=t.c.last_at),
                    "changed_at": case(
                        (rose[0] | rose[1] | rose[2], new.changed_at), else_=t.c.changed_at
                    ),
                },
            )  # fmt: skip
        )
    for key_id in {key_id for key_id, _instance in drops}:
        newest = (
            select(t.c.instance)
            .where(t.c.key_id == key_id)
            .order_by(t.c.last_at.desc())
            .limit(INSTANCES_KEPT)
        )
        conn.execute(
            delete(t).where(t.c.key_id == key_id, t.c.instance.not_in(newest.scalar_subquery()))
        )


# ----------------------------------------------------------------- reading


def _samples(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        found = json.loads(text)
    except ValueError:
        return []
    return [int(v) for v in found if isinstance(v, int | float)] if isinstance(found, list) else []


def skew_of(text: str | None) -> dict | None:
    """A client's skew over its recent batches: how many, the median and the largest (by
    size, with its sign) in seconds; None when it never sent its clock."""
    samples = _samples(text)
    if not samples:
        return None
    return {
        "batches": len(samples),
        "median_s": round(statistics.median(samples) / 1000, 3),
        "largest_s": round(max(samples, key=abs) / 1000, 3),
    }


def skew_warning(name: str, skew: dict | None) -> str | None:
    """A warning in plain words when the client's median skew is beyond SKEW_WARN_S."""
    if skew is None or abs(skew["median_s"]) <= SKEW_WARN_S:
        return None
    seconds = abs(skew["median_s"])
    side, dated = ("behind", "early") if skew["median_s"] > 0 else ("ahead of", "late")
    way = (
        f"{seconds:,.1f} s {side} this server's: its rows are dated about {seconds:,.0f} s {dated}"
    )
    return (
        f"The clock of {name} runs {way} (the median of its last {skew['batches']} batches). "
        "Set its machine's time by NTP."
    )


def drops_of(conn, key_id: int) -> list[dict]:
    """The key's client processes that reported drops, the latest report first."""
    t = ingest_drops.c
    rows = conn.execute(
        select(ingest_drops).where(t.key_id == key_id).order_by(t.last_at.desc())
    ).all()
    return [
        {
            "framework": row.framework or None,
            "client": row.client or None,
            "instance": row.instance,
            "buffer_full": int(row.buffer_full),
            "refused": int(row.refused),
            "failed": int(row.failed),
            "first_at": as_utc(row.first_at),
            "last_at": as_utc(row.last_at),
            "changed_at": as_utc(row.changed_at),
        }  # fmt: skip
        for row in rows
    ]


def drop_warning(found: dict) -> str | None:
    """A warning in plain words when a client process reported records it lost."""
    lost = []
    if found["buffer_full"]:
        lost.append(
            f"{found['buffer_full']:,} records because its buffer was full (the server was "
            "out of its reach for long, or its max_buffer is too small)"
        )
    if found["refused"]:
        lost.append(f"{found['refused']:,} records of batches this server refused outright")
    if not lost:
        return None
    name = client_name(found["framework"], found["client"])
    when = _when(found["changed_at"])
    return f"{name} (process {found['instance'][:8]}) dropped {' and '.join(lost)}; last at {when}."


def client_name(framework: str | None, client: str | None) -> str:
    return " · ".join(p for p in (framework, client) if p) or "an unnamed client"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
