"""Compaction: a month's small files merged into larger ones, closed months given their
final layout and summaries, and replaced files deleted once no reader can be using them.

One compaction runs at a time (server.lake.lock), beside the export: each publishes its
own files, a compaction retires only files it read, and the catalog refuses it if they
went meanwhile, so compacting a busy month never holds up the export that keeps the hot
table, which every read copies, small.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from datetime import datetime, timedelta

from server.config import current_config
from server.db import get_engine, utcnow
from server.lake import catalog, engine, layout, summaries
from server.lake.catalog import LakeFile
from server.lake.engine import sql_str
from server.lake.layout import BY_DATASET, REQUESTS, Dataset
from server.lake.lock import single_flight
from server.lake.source import read_files
from server.lake.storage import file_name, get_storage, staging_file

log = logging.getLogger(__name__)

# Files are grouped in size tiers (x FAN_IN each, from TIER_BASE rows); a tier holding
# FAN_IN files is merged into one, so each row is rewritten about log(size) times.
FAN_IN = 8
TIER_BASE = 10_000


def run_compaction() -> dict:
    """The job (after each export that wrote files, and every 30 s): merge small files,
    give closed months their summaries, delete files past their grace period."""
    settings = current_config()
    db = get_engine()
    with single_flight("lake-compaction", db, settings) as held:
        if not held:
            return {"skipped": "another compaction is running"}
        result = {"merged": compact(db, settings), "removed": remove_retired(db, settings)}
    if result["merged"]:
        log.info("compaction: %s files merged", result["merged"])
    return result


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
    months: dict[tuple[str, int, int], list[LakeFile]] = defaultdict(list)
    for f in files:
        months[(f.dataset, f.key_id, f.month)].append(f)
    this_month = current_month(now)
    merged = 0
    finalised = 0
    for (name, key_id, month), group in months.items():
        dataset = BY_DATASET[name]
        while True:
            plan = merge_plan(group, settings.LAKE_FILE_ROWS, closed=month < this_month)
            if not plan:
                break
            new = rewrite(db, settings, key_id, month, plan, dataset=dataset)
            merged += len(plan)
            group = [f for f in group if f not in plan] + ([new] if new else [])
            if new is None:
                break
        if month < this_month and dataset is REQUESTS:
            # A closed month's files are final: each one not in today's layout yet (no
            # summary: compaction kept it whole; or an older layout) is rewritten in
            # today's order (week, user, route) with today's summary. An old pair goes
            # after the grace period like any retired file (a reader may still be using
            # it).
            for f in [f for f in group if not summaries.is_final(f.summary)]:
                began = time.monotonic()
                new = rewrite(db, settings, key_id, month, [f])
                group = [g for g in group if g is not f] + ([new] if new else [])
                finalised += 1
                # An upgrade rewrites every closed month: a line each shows its progress.
                log.info("key %s, month %s: %s rows rewritten in the final layout in %.1f s",
                         key_id, month, f"{f.rows:,}", time.monotonic() - began)  # fmt: skip
    if finalised:
        log.info("%s files of closed months rewritten in their final layout", finalised)
    return merged


def write_summary(cur, storage, source_url: str, name: str) -> str:
    """Write the summary of the file at `source_url` (its rows), to be stored beside `name`."""
    local, unsorted = staging_file(storage, "summary"), staging_file(storage, "summary-parts")
    source = f"read_parquet({sql_str(source_url)})"
    # Counted, then sorted in a second pass: sorting while the parts' hash tables were
    # held ran out of the engine's 256 MB on a closed month of 2.5 M rows.
    try:
        cur.execute(
            f"COPY ({summaries.summary_sql(source)}) TO {sql_str(str(unsorted))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        cur.execute(
            f"COPY (SELECT * FROM read_parquet({sql_str(str(unsorted))}) "
            f"ORDER BY {summaries.ORDER}) TO {sql_str(str(local))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    finally:
        unsorted.unlink(missing_ok=True)
    storage.put(local, summaries.summary_name(name))
    return summaries.summary_name(name)


def rewrite(
    db,
    settings,
    key_id: int,
    month: int,
    files: list[LakeFile],
    where: str = "",
    dataset: Dataset = REQUESTS,
):
    """Replace `files` (of one dataset) by one file of their rows (those matching `where`,
    if given).

    Returns the new file, or None when nothing is left or the files went meanwhile. A
    closed month's file of requests is final: its rows go in week, user and route order,
    with its summary. Other files are not sorted again: each is in time order already, so
    their rows go file after file, oldest file first (see server.lake.layout).
    """
    storage = get_storage(settings)
    closed = month < current_month() and dataset is REQUESTS
    if not closed:
        files = sorted(files, key=lambda f: (f.min_us, f.max_us, f.path))
    source = (
        f"SELECT {dataset.lake_select_list()} "
        f"FROM {read_files([storage.url(f.path) for f in files], dataset)}"
    )
    if where:
        source += f" WHERE {where}"
    # The current month's rows are copied by one thread, file after file, in bounded
    # memory (server.lake.engine.streaming_cursor); a closed month's are sorted.
    with (engine.cursor if closed else engine.streaming_cursor)(settings) as cur:
        if where:
            hosts_sql = layout.HOSTNAMES_SQL if dataset is REQUESTS else "[]::VARCHAR[]"
            rows, low, high, hosts = cur.execute(
                f"SELECT count(*), epoch_us(min(created_at)), epoch_us(max(created_at)), "
                f"{hosts_sql} FROM ({source})"
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
            cur.execute(
                f"COPY ({source}{order}) TO {sql_str(str(local))} ({layout.PARQUET_OPTIONS})"
            )
            name = file_name(key_id, month, dataset.folder)
            summary = write_summary(cur, storage, str(local), name) if closed else None
            size = storage.put(local, name)
            new = LakeFile(None, key_id, month, name, rows, size, low, high, tuple(hosts),
                           summary, dataset.name)  # fmt: skip
    published = catalog.publish_files(
        db, storage, [new] if new else [], retire=files, dataset=dataset
    )
    if new is not None and not published:
        return None
    if new is None:
        return None
    with db.connect() as conn:
        live = catalog.live_files(conn, key_id, month, dataset)
    return next((f for f in live if f.path == new.path), None)


# --- clean-up ----------------------------------------------------------------------------


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
