"""Retention in the store: a dataset's rows older than a cutoff deleted from its files and
its hot table (requests and their details after RETENTION_DAYS, payloads after
PAYLOAD_RETENTION_DAYS: server.upkeep).

Requests live in monthly files: a file wholly older than the cutoff is dropped whole
(retired, then removed from storage after the grace period), and a file straddling it is
rewritten without its old rows, so nothing is deleted row by row. A run may stop between
files when its time budget is spent (server.upkeep goes on in a run of its own).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sqlalchemy import delete, func, select

from server.config import current_config
from server.lake import catalog
from server.lake import engine as lake_engine
from server.lake.compaction import rewrite
from server.lake.engine import sql_str
from server.lake.layout import REQUESTS, Dataset
from server.lake.lock import single_flight
from server.lake.models import HOT_TABLES, requests
from server.lake.storage import get_storage
from server.rules import epoch_micros

log = logging.getLogger(__name__)


class Budget:
    """Time a run may spend starting batches; no deadline in the embedded mode (a thread
    cannot be killed, so nothing needs to stop early there). Until a run has deleted
    something it goes on regardless, so that every run gets somewhere."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.spent = False
        self.progressed = False

    def left(self) -> bool:
        """May another batch start? `spent` is set by the caller, which knows whether
        anything was left to do."""
        if not self.progressed or self.deadline is None:
            return True
        return time.monotonic() < self.deadline


def delete_old_requests(
    engine,
    cutoff: datetime,
    settings=None,
    budget: Budget | None = None,
    dataset: Dataset = REQUESTS,
) -> int:
    """Rows of `dataset` created before `cutoff`, from the files and from the hot table.

    A spent `budget` stops it between files (the next run goes on from there).
    """
    settings = settings or current_config()
    budget = budget or Budget(None)
    cutoff_us = epoch_micros(cutoff)
    deleted = 0
    with (
        single_flight("lake-export", engine, settings, wait=True),
        single_flight("lake-compaction", engine, settings, wait=True),
    ):
        with engine.connect() as conn:
            old = [f for f in catalog.live_files(conn, dataset=dataset) if f.min_us < cutoff_us]
        for index, f in enumerate(old):
            if not budget.left():
                budget.spent = True
                log.info("retention: %s files left for the next run", len(old) - index)
                return deleted
            budget.progressed = True
            if f.max_us < cutoff_us:
                with engine.begin() as conn:
                    catalog.publish(conn, [], retire=[f.id])
                deleted += f.rows
                continue
            kept = rewrite(
                engine, settings, f.key_id, f.month, [f],
                where=f"created_at >= {_ts(cutoff_us)}", dataset=dataset,
            )  # fmt: skip
            deleted += f.rows - (kept.rows if kept else 0)
        if not budget.left():
            budget.spent = True
            return deleted
        hot = HOT_TABLES[dataset.name]
        with engine.begin() as conn:
            boundary = catalog.exported_id(conn, dataset)
            # Rows not yet exported (a late arrival); those below the boundary are in files.
            deleted += conn.execute(
                delete(hot).where(hot.c.created_at < cutoff_us, hot.c.id > boundary)
            ).rowcount
    return deleted


def _ts(micros: int) -> str:
    return f"make_timestamp({int(micros)})::TIMESTAMPTZ"


def old_rows(conn, cutoff_us: int, skip_keys) -> int:
    """Rows created before the cutoff, in files (whole or counted) and hot."""
    skip = set(skip_keys)
    storage = get_storage()
    total, straddling = 0, []
    for f in catalog.live_files(conn, dataset=REQUESTS):
        if f.key_id in skip or f.min_us >= cutoff_us:
            continue
        if f.max_us < cutoff_us:
            total += f.rows
        else:
            straddling.append(storage.url(f.path))
    if straddling:
        with lake_engine.cursor() as cur:
            files = "[" + ", ".join(sql_str(u) for u in straddling) + "]"
            total += cur.execute(
                f"SELECT count(*) FROM read_parquet({files}) WHERE created_at < {_ts(cutoff_us)}"
            ).fetchone()[0]
    boundary = catalog.exported_id(conn)
    hot = [requests.c.created_at < cutoff_us, requests.c.id > boundary]
    if skip:
        hot.append(requests.c.key_id.not_in(sorted(skip)))
    return total + conn.execute(select(func.count()).where(*hot)).scalar_one()
