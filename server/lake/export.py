"""The export: hot rows into the columnar store's Parquet files, and the hot table's trim.

Find a boundary below which every write has committed (seal), write the hot rows up to
it as one file per key and month, publish those files and the boundary in one
transaction; delete exported hot rows once no reader can still be using them. One export
runs at a time (across processes and machines, server.lake.lock), however often it is
asked for. Compaction (server.lake.compaction) runs beside it under a lock of its own.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, timedelta

from sqlalchemy import delete, func, select

from server.config import current_config
from server.db import get_engine, is_postgres, utcnow, write_lock
from server.lake import catalog, compaction, engine, layout
from server.lake.catalog import LakeFile
from server.lake.engine import sql_str
from server.lake.layout import DATASETS, REQUESTS, Dataset
from server.lake.lock import single_flight
from server.lake.models import HOT_TABLES, lake_exports, requests
from server.lake.source import copy_hot_rows
from server.lake.storage import file_name, get_storage, staging_file
from server.lake.write import LAKE_WRITE_LOCK

log = logging.getLogger(__name__)

# Rows one export step takes (it loops until caught up): bounds the engine's memory. The
# step's rows sit in an in-memory table the engine cannot spill, beside the sort of each
# file's rows: 500,000 rows (~300 B each) passed alone but failed under sustained ingest
# ("Cannot perform IO in in-memory database", or out of memory) and stalled the export.
STEP_ROWS = 100_000


def run_export(force: bool = False) -> dict:
    """The job (asked for after batches, and every LAKE_EXPORT_SECONDS): export what is
    due and trim the hot table. A run that wrote files asks for a compaction (the
    registry's `after`, server.jobs)."""
    settings = current_config()
    db = get_engine()
    with single_flight("lake-export", db, settings) as held:
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
    return result


def flush(db=None, settings=None) -> dict:
    """Export and compact everything now, waiting for a running export or compaction
    (tests, seeding, benchmarks)."""
    settings = settings or current_config()
    db = db or get_engine()
    with (
        single_flight("lake-export", db, settings, wait=True),
        single_flight("lake-compaction", db, settings, wait=True),
    ):
        result = export_pending(db, settings, force=True)
        result["merged"] = compaction.compact(db, settings)
    return result


# --- export -------------------------------------------------------------------------------


def seal(db) -> dict[str, int]:
    """Each dataset's highest hot row id such that no transaction still writes at or below
    it.

    Writers hold LAKE_WRITE_LOCK shared for their whole transaction (server.lake.write),
    whichever hot tables they write; taking it exclusively waits for those in flight, and
    ids handed out afterwards are larger. On SQLite the write lock does the same.
    """
    with db.begin() as conn:
        if is_postgres(conn):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LAKE_WRITE_LOCK})")
        else:
            write_lock(conn)
        return {
            d.name: int(conn.execute(select(func.max(HOT_TABLES[d.name].c.id))).scalar() or 0)
            for d in DATASETS
        }


def _due(db, settings, force: bool) -> int:
    """The request rows waiting when an export is due, else 0. The other datasets' rows are
    written with request rows, so the requests' backlog decides for all.

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
        last = conn.execute(
            select(func.max(lake_exports.c.committed_at)).where(
                lake_exports.c.dataset == REQUESTS.name
            )
        ).scalar()
    if not waiting or force or waiting >= settings.LAKE_EXPORT_ROWS or last is None:
        return waiting
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    if utcnow() - last >= timedelta(seconds=settings.LAKE_EXPORT_SECONDS):
        return waiting
    return 0


def export_pending(db, settings, *, force: bool = False) -> dict:
    """Move every complete hot row past each dataset's boundary into files (in steps)."""
    waiting = _due(db, settings, force)
    result = {"exported": 0, "files": 0, "waiting": waiting}
    if not waiting and not force:
        return result
    sealed = seal(db)
    for dataset in DATASETS:
        with db.begin() as conn:
            start = catalog.ensure_state(conn, dataset)
        while start < sealed[dataset.name]:
            end = _step_end(db, dataset, start, sealed[dataset.name])
            rows, files = _export_range(db, settings, dataset, start, end)
            if dataset is REQUESTS:
                result["exported"] += rows
            result["files"] += files
            start = end
    return result


def _step_end(db, dataset: Dataset, start: int, sealed: int) -> int:
    ids = HOT_TABLES[dataset.name].c.id
    with db.connect() as conn:
        nth = conn.execute(
            select(ids)
            .where(ids > start, ids <= sealed)
            .order_by(ids)
            .offset(STEP_ROWS - 1)
            .limit(1)
        ).scalar()
    return int(nth) if nth is not None else sealed


def _export_range(db, settings, dataset: Dataset, start: int, end: int) -> tuple[int, int]:
    """Write the dataset's hot rows (start, end] as one file per key and month; publish
    them with `end` as the dataset's boundary."""
    storage = get_storage(settings)
    written: list[LakeFile] = []
    hosts_sql = layout.HOSTNAMES_SQL if dataset is REQUESTS else "[]::VARCHAR[]"
    with engine.cursor(settings) as cur:
        table = f"export_{uuid.uuid4().hex[:12]}"
        copy_hot_rows(cur, table, f"id > {int(start)} AND id <= {int(end)}", db, dataset)
        try:
            parts = cur.execute(
                f"SELECT key_id, {layout.MONTH_SQL} AS month, count(*), epoch_us(min(created_at)), "
                f"epoch_us(max(created_at)), {hosts_sql} FROM {table} "
                "GROUP BY ALL ORDER BY ALL"
            ).fetchall()
            for key_id, month, rows, low, high, hosts in parts:
                local = staging_file(storage, f"k{key_id}-{month}")
                cur.execute(
                    f"COPY (SELECT {dataset.lake_select_list()} FROM {table} "
                    f"WHERE key_id = {int(key_id)} AND {layout.MONTH_SQL} = {int(month)} "
                    f"ORDER BY {layout.TIME_ORDER}) TO {sql_str(str(local))} "
                    f"({layout.PARQUET_OPTIONS})"
                )
                name = file_name(key_id, month, dataset.folder)
                size = storage.put(local, name)
                written.append(
                    LakeFile(None, key_id, month, name, rows, size, low, high, tuple(hosts),
                             dataset=dataset.name)
                )  # fmt: skip
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
    kept = catalog.publish_files(db, storage, written, boundary=end, dataset=dataset)
    return sum(f.rows for f in kept), len(kept)


# --- trim ---------------------------------------------------------------------------------


def trim_hot(db, settings, step: int = 100_000) -> int:
    """Delete hot rows exported longer ago than the grace period (readers are done), of
    every dataset; returns the request rows trimmed."""
    before = utcnow() - timedelta(seconds=settings.LAKE_GRACE_SECONDS)
    trimmed = {}
    for dataset in DATASETS:
        table = HOT_TABLES[dataset.name]
        with db.connect() as conn:
            upto = catalog.trimmable_boundary(conn, before, dataset)
            low = conn.execute(select(func.min(table.c.id))).scalar()
        if upto is None or low is None:
            trimmed[dataset.name] = 0
            continue
        count = 0
        while low <= upto:
            high = min(upto, low + step - 1)
            with db.begin() as conn:
                count += conn.execute(
                    delete(table).where(table.c.id >= low, table.c.id <= high)
                ).rowcount
            low = high + 1
        with db.begin() as conn:
            catalog.forget_boundaries(conn, upto, dataset)
        trimmed[dataset.name] = count
    return trimmed[REQUESTS.name]
