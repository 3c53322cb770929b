"""The export job: hot rows into the columnar store's Parquet files, then compaction and
clean-up. One runs at a time (across processes and machines), however often it is asked.

Export: find a boundary below which every write has committed (seal), write the hot rows
up to it as one file per key and month, publish those files and the boundary in one
transaction. Compaction: merge a month's small files into larger sorted ones. Clean-up:
delete exported hot rows and replaced files once no reader can still be using them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select

from server.config import current_config
from server.db import get_engine, is_postgres, utcnow, write_lock
from server.lake import catalog, engine, layout
from server.lake.catalog import LakeFile
from server.lake.digest import digest_name, digest_sql, is_final
from server.lake.source import copy_hot_rows, sql_str
from server.lake.storage import file_name, get_storage, staging_file
from server.lake.write import LAKE_WRITE_LOCK
from server.models import lake_exports, requests

log = logging.getLogger(__name__)

# PostgreSQL advisory locks: one export at a time, one compaction at a time. The two run
# side by side (each publishes its own files; a compaction retires only files it read, and
# the catalog refuses it if they went meanwhile), so compacting a busy month never holds
# up the export that keeps the hot table, which every read copies, small.
EXPORT_LOCK = 72_045_813
COMPACT_LOCK = 72_045_814
# Rows one export step takes (it loops until caught up): bounds the engine's memory. The
# step's rows sit in an in-memory table the engine cannot spill, beside the sort of each
# file's rows: 500,000 rows (~300 B each) passed alone but failed under sustained ingest
# ("Cannot perform IO in in-memory database", or out of memory) and stalled the export.
STEP_ROWS = 100_000
# Compaction: files are grouped in size tiers (x FAN_IN each, from TIER_BASE rows); a tier
# holding FAN_IN files is merged into one, so each row is rewritten about log(size) times.
FAN_IN = 8
TIER_BASE = 10_000
ROW_GROUP_ROWS = 250_000
PARQUET_OPTIONS = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
MONTH_SQL = "(year(created_at) * 100 + month(created_at))"
# A file's hostnames, for the catalog (the hostname menu reads them there).
HOSTNAMES_SQL = "list_sort(list(DISTINCT hostname) FILTER (WHERE hostname <> ''))"

_local_locks = {EXPORT_LOCK: threading.Lock(), COMPACT_LOCK: threading.Lock()}
_LOCK_FILES = {EXPORT_LOCK: "lake.lock", COMPACT_LOCK: "lake-compact.lock"}


@contextlib.contextmanager
def single_flight(db, settings, *, wait: bool = False, lock: int = EXPORT_LOCK):
    """Yields True when this process holds `lock` (EXPORT_LOCK or COMPACT_LOCK), else False.
    Whoever takes both takes EXPORT_LOCK first."""
    if is_postgres(db):
        with db.connect() as conn:
            take = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            got = conn.exec_driver_sql(f"SELECT {take}({lock})").scalar()
            conn.commit()
            try:
                yield got is not False
            finally:
                if got is not False:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({lock})")
                    conn.commit()
        return
    # SQLite: one process per data directory runs the jobs, but a CLI (seed-demo,
    # retention) may run beside it.
    path = Path(settings.DATA_DIR) / _LOCK_FILES[lock]
    path.parent.mkdir(parents=True, exist_ok=True)
    local = _local_locks[lock]
    if not local.acquire(blocking=wait):
        yield False
        return
    try:
        with open(path, "a") as handle:
            flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(handle, flags)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        local.release()


@contextlib.contextmanager
def every_lock(db, settings):
    """Both locks, waiting for each (flush, retention): nothing else exports or compacts."""
    with (
        single_flight(db, settings, wait=True, lock=EXPORT_LOCK),
        single_flight(db, settings, wait=True, lock=COMPACT_LOCK),
    ):
        yield


def run_export(force: bool = False) -> dict:
    """The job (after each batch, and every LAKE_EXPORT_SECONDS): export what is due and
    trim the hot table, then ask for a compaction (its own job and lock:
    worker.export.run_compaction)."""
    from server.queue import enqueue_compaction

    settings = current_config()
    db = get_engine()
    with single_flight(db, settings) as held:
        if not held:
            return {"skipped": "another export is running"}
        result = export_pending(db, settings, force=force)
        result["trimmed"] = trim_hot(db, settings)
    if result["exported"]:
        log.info(
            "export: %s rows into %s files, %s hot rows trimmed",
            result["exported"],
            result["files"],
            result["trimmed"],
        )
        enqueue_compaction()
    return result


def run_compaction() -> dict:
    """The job (after each export that wrote files, and every 30 s): merge small files,
    give closed months their digests, delete files past their grace period."""
    settings = current_config()
    db = get_engine()
    with single_flight(db, settings, lock=COMPACT_LOCK) as held:
        if not held:
            return {"skipped": "another compaction is running"}
        result = {"merged": compact(db, settings), "removed": remove_retired(db, settings)}
    if result["merged"]:
        log.info("compaction: %s files merged", result["merged"])
    return result


def flush(db=None, settings=None) -> dict:
    """Export and compact everything now, waiting for a running export or compaction
    (tests, seeding, benchmarks)."""
    settings = settings or current_config()
    db = db or get_engine()
    with every_lock(db, settings):
        result = export_pending(db, settings, force=True)
        result["merged"] = compact(db, settings)
    return result


# --- export --------------------------------------------------------------------------------


def seal(db) -> int:
    """The highest hot row id such that no transaction still writes at or below it.

    Writers hold LAKE_WRITE_LOCK shared for their whole transaction (server.lake.write); taking
    it exclusively waits for those in flight, and ids handed out afterwards are larger.
    On SQLite the write lock does the same.
    """
    with db.begin() as conn:
        if is_postgres(conn):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LAKE_WRITE_LOCK})")
        else:
            write_lock(conn)
        return int(conn.execute(select(func.max(requests.c.id))).scalar() or 0)


def _due(db, settings, force: bool) -> tuple[int, int]:
    """(the boundary exported so far, hot rows waiting) when an export is due, else (b, 0).

    The rows waiting are the ids past the boundary, read from the id index: ids come from
    one sequence, so the figure is exact when nothing waits and can only be more than
    the rows otherwise (ids of rolled-back writes). Counting the rows scanned every hot
    row past the boundary on each call, after every batch: at 30,000 rows/s it was the
    busiest query of the database, run with parallel workers (bench/README.md).
    """
    with db.begin() as conn:
        start = catalog.ensure_state(conn)
        newest = conn.execute(select(func.max(requests.c.id))).scalar()
        waiting = max(0, int(newest or 0) - start)
        last = conn.execute(select(func.max(lake_exports.c.committed_at))).scalar()
    if not waiting or force or waiting >= settings.LAKE_EXPORT_ROWS or last is None:
        return start, waiting
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    if utcnow() - last >= timedelta(seconds=settings.LAKE_EXPORT_SECONDS):
        return start, waiting
    return start, 0


def export_pending(db, settings, *, force: bool = False) -> dict:
    """Move every complete hot row past the boundary into files (in steps)."""
    start, waiting = _due(db, settings, force)
    result = {"exported": 0, "files": 0, "waiting": waiting}
    if not waiting:
        return result
    sealed = seal(db)
    while start < sealed:
        end = _step_end(db, start, sealed)
        rows, files = _export_range(db, settings, start, end)
        result["exported"] += rows
        result["files"] += files
        start = end
    return result


def _step_end(db, start: int, sealed: int) -> int:
    with db.connect() as conn:
        nth = conn.execute(
            select(requests.c.id)
            .where(requests.c.id > start, requests.c.id <= sealed)
            .order_by(requests.c.id)
            .offset(STEP_ROWS - 1)
            .limit(1)
        ).scalar()
    return int(nth) if nth is not None else sealed


def _export_range(db, settings, start: int, end: int) -> tuple[int, int]:
    """Write hot rows (start, end] as one file per key and month; publish them with `end`."""
    storage = get_storage(settings)
    written: list[LakeFile] = []
    with engine.cursor(settings) as cur:
        table = f"export_{uuid.uuid4().hex[:12]}"
        copy_hot_rows(cur, table, f"id > {int(start)} AND id <= {int(end)}", db)
        try:
            parts = cur.execute(
                f"SELECT key_id, {MONTH_SQL} AS month, count(*), epoch_us(min(created_at)), "
                f"epoch_us(max(created_at)), {HOSTNAMES_SQL} FROM {table} "
                "GROUP BY ALL ORDER BY ALL"
            ).fetchall()
            for key_id, month, rows, low, high, hosts in parts:
                local = staging_file(storage, f"k{key_id}-{month}")
                cur.execute(
                    f"COPY (SELECT {layout.lake_select_list()} FROM {table} "
                    f"WHERE key_id = {int(key_id)} AND {MONTH_SQL} = {int(month)} "
                    f"ORDER BY {layout.TIME_ORDER}) TO {sql_str(str(local))} ({PARQUET_OPTIONS})"
                )
                name = file_name(key_id, month)
                size = storage.put(local, name)
                written.append(
                    LakeFile(None, key_id, month, name, rows, size, low, high, tuple(hosts))
                )
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
    kept = _publish(db, storage, written, boundary=end)
    return sum(f.rows for f in kept), len(kept)


def _publish(db, storage, files: list[LakeFile], *, boundary=None, retire=()) -> list[LakeFile]:
    """Catalog the files (those of keys still alive) and move the boundary, atomically.

    Files of a key deleted meanwhile are removed from storage instead.
    """
    retire = list(retire)
    with db.begin() as conn:
        if not is_postgres(conn):
            write_lock(conn)
        alive = catalog.live_keys(conn, [f.key_id for f in files])
        kept = [f for f in files if f.key_id in alive]
        if retire:
            still = catalog.live_ids(conn, [f.id for f in retire])
            if len(still) != len(retire):  # a key deletion or retention got there first
                kept = []
                retire = []
        catalog.publish(conn, kept, boundary=boundary, retire=[f.id for f in retire])
    dropped = [name for f in files if f not in kept for name in f.names]
    if dropped:
        storage.delete(dropped)
    return kept


# --- compaction ----------------------------------------------------------------------------


def current_month(now: datetime | None = None) -> int:
    now = now or utcnow()
    return now.year * 100 + now.month


def merge_plan(files: list[LakeFile], target: int, closed: bool) -> list[LakeFile]:
    """Which of one month's files to merge now (empty: leave them).

    A closed month merges every file below the target size it can; the current month
    merges a size tier once it holds FAN_IN files, so busy months stay a few files each.
    """
    small = sorted((f for f in files if f.rows < target), key=lambda f: (f.rows, f.min_us))
    if closed:
        candidates = small
    else:
        tiers: dict[int, list[LakeFile]] = defaultdict(list)
        for f in small:
            tiers[int(math.log(max(f.rows, TIER_BASE) / TIER_BASE, FAN_IN))].append(f)
        full = [tier for _level, tier in sorted(tiers.items()) if len(tier) >= FAN_IN]
        candidates = full[0] if full else []
    plan, total = [], 0
    for f in candidates:
        if total + f.rows > target and plan:
            break
        plan.append(f)
        total += f.rows
    return plan if len(plan) >= 2 else []


def compact(db, settings, now: datetime | None = None) -> int:
    """Merge small files, month by month; returns how many files were merged away."""
    with db.connect() as conn:
        files = catalog.live_files(conn)
    months: dict[tuple[int, int], list[LakeFile]] = defaultdict(list)
    for f in files:
        months[(f.key_id, f.month)].append(f)
    this_month = current_month(now)
    merged = 0
    finalised = 0
    for (key_id, month), group in months.items():
        while True:
            plan = merge_plan(group, settings.LAKE_FILE_ROWS, closed=month < this_month)
            if not plan:
                break
            new = rewrite(db, settings, key_id, month, plan)
            merged += len(plan)
            group = [f for f in group if f not in plan] + ([new] if new else [])
            if new is None:
                break
        if month < this_month:
            # A closed month's files are final: each one not in today's layout yet (no
            # digest: compaction kept it whole; or an older layout) is rewritten in week
            # and route order with today's digest. An old pair goes after the grace
            # period like any retired file (a reader may still be using it).
            for f in [f for f in group if not is_final(f.digest)]:
                new = rewrite(db, settings, key_id, month, [f])
                group = [g for g in group if g is not f] + ([new] if new else [])
                finalised += 1
    if finalised:
        log.info("%s files of closed months rewritten in their final layout", finalised)
    return merged


def write_digest(cur, storage, source_url: str, name: str) -> str:
    """Write the digest of the file at `source_url` (its rows), to be stored beside `name`."""
    local = staging_file(storage, "digest")
    source = f"read_parquet({sql_str(source_url)})"
    cur.execute(
        f"COPY ({digest_sql(source)}) TO {sql_str(str(local))} (FORMAT parquet, COMPRESSION zstd)"
    )
    storage.put(local, digest_name(name))
    return digest_name(name)


def rewrite(db, settings, key_id: int, month: int, files: list[LakeFile], where: str = ""):
    """Replace `files` by one file of their rows (those matching `where`, if given).

    Returns the new file, or None when nothing is left or the files went meanwhile. A
    closed month's file is final: its rows go in week and route order, with its digest.
    The current month's files are not sorted again: each is in time order already, so
    their rows go file after file, oldest file first (see server.lake.layout).
    """
    storage = get_storage(settings)
    closed = month < current_month()
    if not closed:
        files = sorted(files, key=lambda f: (f.min_us, f.max_us, f.path))
    urls = "[" + ", ".join(sql_str(storage.url(f.path)) for f in files) + "]"
    source = f"SELECT {layout.lake_select_list()} FROM read_parquet({urls})"
    if where:
        source += f" WHERE {where}"
    # The current month's rows are copied by one thread, file after file, in bounded
    # memory (server.lake.engine.streaming_cursor); a closed month's are sorted.
    with (engine.cursor if closed else engine.streaming_cursor)(settings) as cur:
        if where:
            rows, low, high, hosts = cur.execute(
                f"SELECT count(*), epoch_us(min(created_at)), epoch_us(max(created_at)), "
                f"{HOSTNAMES_SQL} FROM ({source})"
            ).fetchone()
        else:  # every row: the catalog has the figures, no need to read the files twice
            rows = sum(f.rows for f in files)
            low = min((f.min_us for f in files), default=None)
            high = max((f.max_us for f in files), default=None)
            hosts = sorted({h for f in files for h in f.hostnames})
        new = None
        if rows:
            local = staging_file(storage, f"k{key_id}-{month}")
            order = f" ORDER BY {layout.CLOSED_ORDER}" if closed else ""
            cur.execute(f"COPY ({source}{order}) TO {sql_str(str(local))} ({PARQUET_OPTIONS})")
            name = file_name(key_id, month)
            digest = write_digest(cur, storage, str(local), name) if closed else None
            size = storage.put(local, name)
            new = LakeFile(None, key_id, month, name, rows, size, low, high, tuple(hosts), digest)
    published = _publish(db, storage, [new] if new else [], retire=files)
    if new is not None and not published:
        return None
    if new is None:
        return None
    with db.connect() as conn:
        live = catalog.live_files(conn, key_id, month)
    return next((f for f in live if f.path == new.path), None)


# --- clean-up ------------------------------------------------------------------------------


def trim_hot(db, settings, step: int = 100_000) -> int:
    """Delete hot rows exported longer ago than the grace period (readers are done)."""
    before = utcnow() - timedelta(seconds=settings.LAKE_GRACE_SECONDS)
    with db.connect() as conn:
        upto = catalog.trimmable_boundary(conn, before)
        low = conn.execute(select(func.min(requests.c.id))).scalar()
    if upto is None or low is None:
        return 0
    trimmed = 0
    while low <= upto:
        high = min(upto, low + step - 1)
        with db.begin() as conn:
            trimmed += conn.execute(
                delete(requests).where(requests.c.id >= low, requests.c.id <= high)
            ).rowcount
        low = high + 1
    with db.begin() as conn:
        catalog.forget_boundaries(conn, upto)
    return trimmed


def remove_retired(db, settings) -> int:
    """Delete files retired longer ago than the grace period, from storage then catalog."""
    before = utcnow() - timedelta(seconds=settings.LAKE_GRACE_SECONDS)
    with db.connect() as conn:
        retired = catalog.retired_before(conn, before)
    if not retired:
        return 0
    get_storage(settings).delete([name for f in retired for name in f.names])
    with db.begin() as conn:
        catalog.forget(conn, [f.id for f in retired])
    return len(retired)


def remove_orphans(db, settings, older_than_seconds: int = 3600) -> int:
    """Delete stored files the catalog does not know (an export that died before
    publishing, a key deleted while its files were being written)."""
    storage = get_storage(settings)
    cutoff = time.time() - older_than_seconds
    with db.connect() as conn:
        known = catalog.known_paths(conn)
    orphans = [name for name, mtime in storage.list() if name not in known and mtime < cutoff]
    if orphans:
        storage.delete(orphans)
        log.info("removed %s files the catalog does not know", len(orphans))
    return len(orphans)
