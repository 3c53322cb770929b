"""The sweeper: enqueue stored batches that no worker has processed (e.g. Redis was down)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select, tuple_

from server.db import get_engine, is_postgres, utcnow
from server.ingest.backlog import MAX_ATTEMPTS  # then a batch is left for an operator
from server.ingest.staging import requeue
from server.models import ingest_batches, ingest_receipts

log = logging.getLogger(__name__)


# A run re-enqueues at most this many batches (about a second of Redis round trips, well
# inside its timeout, server.jobs); the next run, a minute later, goes on.
SWEEP_LIMIT = 5_000


def pending_batches(conn, min_age_seconds: int, limit: int = SWEEP_LIMIT) -> list[int]:
    """Unprocessed batches at least `min_age_seconds` old that no worker is processing now,
    the oldest first, at most `limit`."""
    cutoff = utcnow() - timedelta(seconds=min_age_seconds)
    query = (
        select(ingest_batches.c.id)
        .where(ingest_batches.c.created_at <= cutoff, ingest_batches.c.attempts < MAX_ATTEMPTS)
        .order_by(ingest_batches.c.id)
        .limit(limit)
    )
    if is_postgres(conn):
        # A worker holds its batch's row lock for the whole job: locked means in progress.
        query = query.with_for_update(skip_locked=True)
    with conn.begin():
        return list(conn.execute(query).scalars())


def sweep(min_age_seconds: int = 60) -> int:
    """Enqueue unprocessed batches older than `min_age_seconds`; returns how many.

    Covers a queue that lost its jobs (Redis restarted or was down during
    ingest) and jobs orphaned by a killed worker. Enqueueing a batch twice is
    harmless: the second run finds it gone.
    """
    expire_receipts(get_engine())
    with get_engine().connect() as conn:
        ids = pending_batches(conn, min_age_seconds)
    enqueued = 0
    for batch_id in ids:
        outcome = requeue(batch_id)
        if outcome == "down":
            break  # the next sweep tries again
        enqueued += outcome == "enqueued"
    if enqueued:
        log.info("sweeper enqueued %s unprocessed batches", enqueued)
    return enqueued


RECEIPT_TTL = timedelta(hours=24)
RECEIPT_BATCH = 10_000
# Batches a run deletes at most: 200,000 receipts; a larger backlog takes a few runs.
RECEIPT_ROUNDS = 20


def expire_receipts(engine, older_than: timedelta = RECEIPT_TTL) -> int:
    """Forget Idempotency-Key answers older than a day (clients retry within minutes)."""
    cutoff = utcnow() - older_than
    removed = 0
    for _round in range(RECEIPT_ROUNDS):
        with engine.begin() as conn:
            oldest = (
                select(ingest_receipts.c.key_id, ingest_receipts.c.idempotency_key)
                .where(ingest_receipts.c.created_at < cutoff)
                .limit(RECEIPT_BATCH)
            )
            count = conn.execute(
                delete(ingest_receipts).where(
                    tuple_(ingest_receipts.c.key_id, ingest_receipts.c.idempotency_key).in_(oldest)
                )
            ).rowcount
        removed += count
        if count < RECEIPT_BATCH:
            break
    return removed


def recover() -> None:
    """At start-up in the embedded mode: pick up batches a previous process left behind."""
    from sqlalchemy.exc import DBAPIError

    try:
        sweep(min_age_seconds=0)
    except DBAPIError as exc:  # e.g. `flask db upgrade` on a database with no tables yet
        log.debug("no recovery sweep: %s", exc)
