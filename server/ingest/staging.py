"""Staging: a batch the web could not store at once waits in `ingest_batches`, and a
worker's job (`process_batch`) takes the enrich and store steps for it, exactly once.

The web's staging commit is the durable one: the job deletes the staged batch in the
transaction that writes its rows, so a batch is processed once whatever dies when.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, insert, select, update

from server import queue
from server.db import get_engine, is_postgres, relax_commit
from server.ingest.backlog import describe_error, record_error
from server.ingest.columns import Batch
from server.ingest.enrich import Stored, look_up, stored_rows
from server.ingest.fields import decode_rows, encode_rows
from server.ingest.store import write
from server.lake.export import run_export
from server.models import ingest_batches

log = logging.getLogger(__name__)

# A job on PostgreSQL also takes other batches waiting for their first attempt, up to
# about this many rows in all: one claim, one COPY per table and one commit for the lot
# (COPYs of 10,000 rows stored 201-210k rows/s where COPYs of 1,000 stored 116-144k:
# bench/worker.py's COPY baseline, bench/README.md).
GROUP_ROWS = 10_000
GROUP_MAX_BATCHES = 16


def stage(conn, key_id: int, framework, level: int, rows: list, now) -> int:
    """Stage the batch's checked rows (server.ingest.fields.ROW_FIELDS lists) for a worker;
    its id."""
    return conn.execute(
        insert(ingest_batches)
        .values(
            key_id=key_id,
            created_at=now,
            framework=framework,
            privacy_level=level,
            row_count=len(rows),
            payload=encode_rows(rows),
            attempts=0,
        )
        .returning(ingest_batches.c.id)
    ).scalar_one()


def job_id(batch_id: int) -> str:
    return f"batch-{batch_id}"


def ask_to_store(batch_id: int) -> bool:
    """Hand a staged batch to the workers; False (logged) when the queue is down.

    The batch is already durable, so a failure here only delays it until the sweeper runs.
    """
    return queue.ask(process_batch, batch_id, job_id=job_id(batch_id))


# A job in these states will run without our help.
WAITING_STATES = frozenset({"queued", "scheduled", "deferred"})


def requeue(batch_id: int) -> str:
    """Queue a staged batch's job again unless it still waits: "enqueued", "waiting" or
    "down" (logged). A job orphaned by a killed worker is replaced, not run twice."""
    jobs = queue.get_queue()
    status = getattr(jobs, "job_status", None)
    if status is not None:
        try:
            if status(job_id(batch_id)) in WAITING_STATES:
                return "waiting"
            jobs.discard(job_id(batch_id))
        except Exception as exc:
            log.warning("cannot reach the queue to requeue batch %s (%s)", batch_id, exc)
            return "down"
    return "enqueued" if ask_to_store(batch_id) else "down"


def _forget(batch_ids: list[int]) -> None:
    """The jobs of batches a worker processed along with its own need not run (best effort)."""
    try:
        queue.get_queue().forget(queue.INGEST_QUEUE, [job_id(b) for b in batch_ids])
    except Exception as exc:  # they run and find nothing: slower, not wrong
        log.debug(
            "could not take %s processed batches' jobs off the queue (%s)", len(batch_ids), exc
        )


def process_batch(batch_id: int) -> int:
    """Enrich and store one staged batch; returns the rows written (0 if already done).

    The batch transaction's first write claims the batch by deleting it, so a worker
    killed half way leaves the batch for a retry, a batch already processed (or deleted
    with its key by DELETE /api/data) is simply not found, and a DELETE /api/data that
    arrives mid-batch waits for this commit and then removes what it wrote. On
    PostgreSQL the same transaction claims other waiting batches too (GROUP_ROWS); their
    own jobs then find nothing to do.

    A failure is recorded on the batch (`last_error`); if it failed a group, each batch
    of the group is tried again at once on its own, so one bad batch delays no other.
    """
    engine = get_engine()
    _count_attempt(engine, batch_id)
    group: list[int] = []
    try:
        return _store_batches(engine, batch_id, group)
    except Exception as exc:
        if len(group) <= 1:
            record_error(engine, batch_id, exc)
            raise
        log.warning(
            "a group of %s batches failed (%s); storing each on its own",
            len(group), describe_error(exc),
        )  # fmt: skip
    return _store_one_by_one(engine, batch_id, group)


def _store_batches(engine, batch_id: int, group: list[int], alone: bool = False) -> int:
    """Claim the batch (and, unless `alone`, a group) and store it in one transaction.

    `group` receives the ids claimed, so that a caller seeing this fail knows which
    batches were in it.
    """
    prepared = None
    if not is_postgres(engine):
        # SQLite has one writer: resolve the user agents and number the users (which may
        # insert some) before the batch transaction takes the write lock.
        prepared = _prepare(engine, _staged(engine, batch_id))
        if prepared is None:
            return 0
    with engine.begin() as conn:
        # The batch's deletion commits with its rows: a commit lost in a crash brings the
        # batch back to be processed again (the web's staging commit is the durable one).
        relax_commit(conn)
        batches = _claim(conn, batch_id, alone=alone)
        group.extend(b.id for b in batches)
        if not batches:
            return 0
        checked, lookups = prepared or _prepare(engine, batches)
        rows = Stored([])
        for staged, batch in zip(batches, checked, strict=True):
            rows.extend(stored_rows(staged.key_id, staged.framework, batch, lookups))
        write(conn, rows)
    if len(batches) > 1:
        _forget([b.id for b in batches[1:]])
    queue.ask(run_export)
    return len(rows)


def _store_one_by_one(engine, batch_id: int, group: list[int]) -> int:
    """After a group failed: each of its batches in its own transaction, errors recorded.

    The others count this as an attempt of theirs; their own jobs, still queued, find
    them gone or (if they failed here too) retry them alone. Raises the job's own
    batch's error, if it has one, so that the job is marked failed.
    """
    stored, own_error, done = 0, None, []
    for member in group:
        if member != batch_id:
            _count_attempt(engine, member)
        try:
            stored += _store_batches(engine, member, [], alone=True)
        except Exception as exc:
            record_error(engine, member, exc)
            if member == batch_id:
                own_error = exc
            continue
        if member != batch_id:
            done.append(member)
    if done:
        _forget(done)
    if own_error is not None:
        raise own_error
    return stored


def _staged(engine, batch_id: int) -> list:
    c = ingest_batches.c
    with engine.connect() as conn:
        return list(
            conn.execute(select(c.key_id, c.privacy_level, c.payload).where(c.id == batch_id)).all()
        )


def _prepare(engine, batches: list):
    """(each batch's rows as columns, their user agents and users looked up); None if
    there are no batches."""
    if not batches:
        return None
    checked = [Batch.from_staged(decode_rows(b.payload), b.privacy_level) for b in batches]
    return checked, look_up(engine, [(b.key_id, c) for b, c in zip(batches, checked, strict=True)])


def _count_attempt(engine, batch_id: int) -> None:
    """Committed before the work, so a batch that keeps crashing workers is noticed."""
    with engine.begin() as conn:
        relax_commit(conn)  # a count lost with the server is an undercount, nothing more
        conn.execute(
            update(ingest_batches)
            .where(ingest_batches.c.id == batch_id)
            .values(attempts=ingest_batches.c.attempts + 1)
        )


CLAIMED = (
    ingest_batches.c.id,
    ingest_batches.c.key_id,
    ingest_batches.c.framework,
    ingest_batches.c.privacy_level,
    ingest_batches.c.row_count,
    ingest_batches.c.attempts,
    ingest_batches.c.payload,
)


def _claim(conn, batch_id: int, alone: bool = False) -> list:
    """Delete the staged batch (and, on PostgreSQL, unless `alone`, a group of waiting
    ones), returning what enrichment needs; an empty list if the batch is gone."""
    if is_postgres(conn):
        # A second worker given the same batch skips it instead of waiting to duplicate it.
        own = _claim_locked(conn, "id = %s", batch_id)
        room = min(GROUP_ROWS // max(own[0].row_count, 1) - 1, GROUP_MAX_BATCHES - 1) if own else 0
        if alone or room <= 0 or own[0].attempts > 1:
            return own
        # Only batches no worker has tried: one that failed runs alone on its retry, so
        # it cannot keep failing the batches grouped with it.
        return own + _claim_locked(conn, "attempts = 0 ORDER BY id LIMIT %s", room)
    # SQLite (RETURNING needs 3.35+): a first write takes the database's write lock, so
    # nothing can delete the batch between reading it and deleting it.
    target = ingest_batches.c.id == batch_id
    conn.execute(update(ingest_batches).where(target).values(attempts=ingest_batches.c.attempts))
    batch = conn.execute(select(*CLAIMED).where(target)).first()
    if batch is None:
        return []
    conn.execute(delete(ingest_batches).where(target))
    return [batch]


def _claim_locked(conn, where: str, value: int) -> list:
    """DELETE ... RETURNING the batches `where` selects, skipping those another worker
    holds. Binary results: the payload arrives as bytes, not as hex text to decode
    (a quarter of the time for a 1,000-row batch)."""
    from psycopg.rows import namedtuple_row

    returning = ", ".join(c.name for c in CLAIMED)
    sql = (
        "DELETE FROM ingest_batches WHERE id IN (SELECT id FROM ingest_batches "
        f"WHERE {where} FOR UPDATE SKIP LOCKED) RETURNING {returning}"
    )
    raw = conn.connection.dbapi_connection
    with raw.cursor(binary=True, row_factory=namedtuple_row) as cursor:
        return cursor.execute(sql, (value,)).fetchall()
