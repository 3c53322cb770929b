"""Consumers: the named callers of a key's API (docs/capture.md `consumer`). Rows carry the
consumer's id and group; the consumers table is their directory: each one's latest name
and group, and when it was first seen and last seen (to the hour: LAST_SEEN_STEP). What
a consumer did, and exactly when, is counted from the rows (server.stats.consumers)."""

from __future__ import annotations

import threading

from sqlalchemy import and_, case, or_, select

from server.db import dialect_insert, relax_commit
from server.models import consumers

# The directory's last_seen moves when it is at least this far behind (µs): a busy
# consumer is written once an hour, not by every batch. Writing each of a batch's 500
# consumers every time (one upsert, executemany) cost 35 to 67 ms a 1,000-row batch, more
# than all the rest of its ingest (bench/ingest.py --capture 10, /tmp-free profile in
# bench/README.md).
LAST_SEEN_STEP = 3600 * 1_000_000


MAX_CACHED = 200_000
# What this process last read or wrote of each consumer: {(database URL, key id, consumer
# id): (name, group, first µs, last µs)}. A batch whose consumers it holds, unchanged,
# reads nothing (the read of 500 consumers was a third of record's time); a stale entry
# costs a write that the upsert's guards keep from moving anything back.
_cache: dict[tuple, tuple] = {}
_writing = threading.Lock()


def record(engine, key_id: int, seen: dict[str, tuple]) -> None:
    """Add a batch's new consumers and move what changed for the known ones, in a short
    transaction of its own: one read of the batch's consumers this process does not hold,
    one upsert of those the batch changes (if any).

    `seen` maps a consumer id to (name, group, first µs, last µs) in the batch; a name or
    group sent replaces the stored one when it comes from a later request.
    """
    if not seen:
        return
    url = str(engine.url)
    if not any(_changes(_cache.get((url, key_id, cid)), values) for cid, values in seen.items()):
        return
    # One thread of the process at a time: the web's threads, each with a batch naming
    # the same new consumers, would otherwise write them all at once, each waiting on the
    # others' row locks (most of the ingest's time while the cache was cold).
    with _writing:
        _write(engine, url, key_id, seen)


def _write(engine, url: str, key_id: int, seen: dict[str, tuple]) -> None:
    global _cache
    known = {cid: _cache.get((url, key_id, cid)) for cid in seen}
    changed = sorted(cid for cid, values in seen.items() if _changes(known[cid], values))
    if not changed:
        return
    c = consumers.c
    with engine.begin() as conn:
        relax_commit(conn)  # the rows' own commit, later, makes this one durable too
        unknown = [cid for cid in changed if known[cid] is None]
        if unknown:
            for row in conn.execute(
                select(c.consumer_id, c.name, c.consumer_group, c.first_seen, c.last_seen).where(
                    c.key_id == key_id, c.consumer_id.in_(unknown)
                )
            ):
                known[row.consumer_id] = tuple(row)[1:]
        rows = [
            {"key_id": key_id, "consumer_id": cid, "name": seen[cid][0],
             "consumer_group": seen[cid][1], "first_seen": seen[cid][2],
             "last_seen": seen[cid][3]}
            for cid in changed
            if _changes(known[cid], seen[cid])
        ]  # fmt: skip
        if rows:
            conn.execute(_upsert(conn), rows)
    if len(_cache) > MAX_CACHED:
        _cache = {}  # replaced, not emptied: another thread may be reading the old one
    for cid, (name, group, first, last) in seen.items():
        was = known[cid]
        if was is None:
            _cache[(url, key_id, cid)] = (name, group, first, last)
        else:
            later = last > was[3]
            _cache[(url, key_id, cid)] = (
                name if later and name is not None else was[0],
                group if later and group is not None else was[1],
                min(first, was[2]),
                max(last, was[3]),
            )


def _changes(was: tuple | None, values: tuple) -> bool:
    """Whether a batch's sighting of a consumer changes the directory's entry `was`."""
    if was is None:
        return True
    name, group, first, last = values
    old_name, old_group, old_first, old_last = was
    return (
        first < old_first
        or last >= old_last + LAST_SEEN_STEP
        or (last > old_last and (name or old_name, group or old_group) != (old_name, old_group))
    )


def _upsert(conn):
    c = consumers.c
    statement = dialect_insert(conn, consumers)
    new = statement.excluded
    later = new.last_seen > c.last_seen
    # In SQL, so two batches at once never move a time back.
    return statement.on_conflict_do_update(
        index_elements=["key_id", "consumer_id"],
        set_={
            "last_seen": case((later, new.last_seen), else_=c.last_seen),
            "first_seen": case((new.first_seen < c.first_seen, new.first_seen), else_=c.first_seen),
            "name": case((and_(later, new.name.is_not(None)), new.name), else_=c.name),
            "consumer_group": case(
                (and_(later, new.consumer_group.is_not(None)), new.consumer_group),
                else_=c.consumer_group,
            ),
        },
        where=or_(later, new.first_seen < c.first_seen),
    )
