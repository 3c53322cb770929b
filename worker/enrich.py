"""The enrichment job: a staged batch becomes request rows, exactly once."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, select, update

from server.db import copy_rows, get_engine, is_postgres
from server.ingest import decode_rows
from server.models import ingest_batches, requests
from server.queue import enqueue_rollup_refresh
from worker import geo, useragent
from worker.rollups import refresh_rollups, stage_rollups

log = logging.getLogger(__name__)

# Order of the COPY / INSERT columns; EnrichedRow's first fields follow it.
REQUEST_COLUMNS = (
    "key_id",
    "created_at",
    "hostname",
    "path",
    "method",
    "status",
    "response_time",
    "ip_address",
    "location",
    "user_agent_id",
    "user_id",
    "framework",
)


class EnrichedRow(NamedTuple):
    key_id: int
    created_at: datetime
    hostname: str | None
    path: str
    method: str
    status: int
    response_time: int
    ip_address: str | None
    location: str | None
    user_agent_id: int | None
    user_id: str | None
    framework: str | None
    # Not stored on the row (they live in user_agents) but handy for rollups.
    browser: str | None
    os: str | None
    device: str | None
    is_bot: bool


def process_batch(batch_id: int) -> int:
    """Enrich and store one staged batch; returns the rows written (0 if already done).

    The batch transaction's first write claims the batch by deleting it, so a worker
    killed half way leaves the batch for a retry, a batch already processed (or deleted
    with its key by DELETE /api/data) is simply not found, and a DELETE /api/data that
    arrives mid-batch waits for this commit and then removes what it wrote.
    """
    engine = get_engine()
    _count_attempt(engine, batch_id)
    prepared = None
    if not is_postgres(engine):
        # SQLite has one writer: resolve the user agents (which may insert some) before
        # the batch transaction takes the write lock.
        prepared = _prepare(engine, _payload(engine, batch_id))
        if prepared is None:
            return 0
    with engine.begin() as conn:
        batch = _claim(conn, batch_id)
        if batch is None:
            return 0
        staged, agents = prepared or _prepare(engine, batch.payload)
        rows = enrich(batch.key_id, batch.framework, batch.privacy_level, staged, agents)
        write_requests(conn, rows)
        stage_rollups(conn, rows)
    enqueue_rollup_refresh()
    return len(rows)


def _payload(engine, batch_id: int) -> bytes | None:
    with engine.connect() as conn:
        return conn.execute(
            select(ingest_batches.c.payload).where(ingest_batches.c.id == batch_id)
        ).scalar()


def _prepare(engine, payload: bytes | None):
    """(staged rows, their user agents resolved to rows), or None for no payload."""
    if payload is None:
        return None
    staged = decode_rows(payload)
    return staged, useragent.resolve(engine, {r[7] for r in staged if r[7]})


def _count_attempt(engine, batch_id: int) -> None:
    """Committed before the work, so a batch that keeps crashing workers is noticed."""
    with engine.begin() as conn:
        conn.execute(
            update(ingest_batches)
            .where(ingest_batches.c.id == batch_id)
            .values(attempts=ingest_batches.c.attempts + 1)
        )


def _claim(conn, batch_id: int):
    """Delete the staged batch, returning what enrichment needs; None if it is gone."""
    target = ingest_batches.c.id == batch_id
    wanted = (
        ingest_batches.c.key_id,
        ingest_batches.c.framework,
        ingest_batches.c.privacy_level,
        ingest_batches.c.payload,
    )
    if is_postgres(conn):
        # A second worker given the same batch skips it instead of waiting to duplicate it.
        locked = select(ingest_batches.c.id).where(target).with_for_update(skip_locked=True)
        claim = delete(ingest_batches).where(ingest_batches.c.id.in_(locked.scalar_subquery()))
        return conn.execute(claim.returning(*wanted)).first()
    # SQLite (RETURNING needs 3.35+): a first write takes the database's write lock, so
    # nothing can delete the batch between reading it and deleting it.
    conn.execute(update(ingest_batches).where(target).values(attempts=ingest_batches.c.attempts))
    batch = conn.execute(select(*wanted).where(target)).first()
    if batch is not None:
        conn.execute(delete(ingest_batches).where(target))
    return batch


def enrich(key_id, framework, privacy_level, staged, agents) -> list[EnrichedRow]:
    """Staged rows (see server.ingest.ROW_FIELDS) -> rows ready to store."""
    rows = []
    fromiso = datetime.fromisoformat
    lookup = geo.country
    for created_at, hostname, path, method, status, rt, ip, ua, user_id in staged:
        location = lookup(ip) if ip is not None and privacy_level < 2 else None
        if privacy_level >= 1:
            ip = None  # level 1: the address was needed for the country only
        agent = agents.get(ua) if ua else None
        rows.append(
            EnrichedRow(
                key_id,
                fromiso(created_at),
                hostname,
                path,
                method,
                status,
                rt,
                ip,
                location,
                agent.id if agent else None,
                user_id,
                framework,
                agent.browser if agent else None,
                agent.os if agent else None,
                agent.device if agent else None,
                agent.is_bot if agent else False,
            )
        )
    return rows


def store_enriched(engine, rows: list[EnrichedRow]) -> None:
    """Write rows that are already enriched, with their rollups (the demo seeder, loaders).

    The same two writes as a batch, in one transaction, then a refresh of the rollups.
    """
    with engine.begin() as conn:
        write_requests(conn, rows)
        stage_rollups(conn, rows)
    refresh_rollups(engine)


def write_requests(conn, rows: list[EnrichedRow]) -> None:
    """COPY on PostgreSQL (4x faster than INSERT, MEASURED.md); executemany on SQLite."""
    width = len(REQUEST_COLUMNS)
    if is_postgres(conn):
        copy_rows(conn, "requests", REQUEST_COLUMNS, (row[:width] for row in rows))
        return
    conn.execute(
        requests.insert(), [dict(zip(REQUEST_COLUMNS, r[:width], strict=True)) for r in rows]
    )
