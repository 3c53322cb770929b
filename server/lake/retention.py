"""Retention: stored requests past RETENTION_DAYS, keys idle for KEY_INACTIVE_DAYS, old pings.

Requests live in the columnar store's monthly files: a file wholly older than the
cutoff is dropped whole (retired, then removed from storage after the grace period),
and a file straddling it is rewritten without its old rows, so nothing is deleted row by
row. Pings are deleted in batches of a few thousand, each in its own short transaction.

On RQ a run stops starting work when its time budget is spent (well inside the job's
timeout, which would otherwise kill it mid-way every day on a large backlog) and queues
a run of its own to go on. Pings go first: they are few, and a long backlog of requests
must not keep them forever.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import click
from sqlalchemy import delete, func, select

from server.config import Config, current_config
from server.db import as_utc, get_engine, is_postgres, utcnow
from server.lake import catalog
from server.lake.keys import delete_key_data, remove_key_files
from server.lake.source import sql_str
from server.lake.storage import get_storage
from server.models import api_keys, monitors, pings, requests
from server.rules import epoch_micros

log = logging.getLogger(__name__)

BATCH_SIZE = 5000


@dataclass(frozen=True)
class Cutoffs:
    """Everything older than these goes."""

    requests: datetime
    keys: datetime
    pings: datetime

    @classmethod
    def from_config(cls, config: Config, now: datetime | None = None) -> Cutoffs:
        now = now or utcnow()
        return cls(
            requests=now - timedelta(days=config.RETENTION_DAYS),
            keys=now - timedelta(days=config.KEY_INACTIVE_DAYS),
            pings=now - timedelta(days=config.PING_RETENTION_DAYS),
        )


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


def run_retention(budget_seconds: float | None = None) -> dict[str, int]:
    """The periodic job (daily): apply the configured retention; returns what went.

    If the budget runs out first, a run of its own is queued to go on from there.
    """
    from worker.schedule import RETENTION_BUDGET_SECONDS

    config = current_config()
    if budget_seconds is None and not config.embedded_queue:
        budget_seconds = RETENTION_BUDGET_SECONDS
    budget = Budget(budget_seconds)
    cutoffs = Cutoffs.from_config(config)
    counts = apply_retention(get_engine(), cutoffs, batch_size=BATCH_SIZE, budget=budget)
    if budget.spent:
        _continue_later(budget_seconds)
    return counts


def _continue_later(budget_seconds: float) -> None:
    from server.queue import MAINTENANCE_QUEUE, get_queue
    from worker.schedule import RETENTION_JOB_TIMEOUT

    log.info("retention's time budget is spent; it goes on in a run of its own")
    get_queue().enqueue(
        MAINTENANCE_QUEUE,
        "worker.retention.run_retention",
        budget_seconds,
        timeout=RETENTION_JOB_TIMEOUT,
    )


def apply_retention(
    engine, cutoffs: Cutoffs, batch_size: int = BATCH_SIZE, budget: Budget | None = None
) -> dict[str, int]:
    from worker.export import remove_orphans

    settings = current_config()
    budget = budget or Budget(None)
    counts = {"pings": delete_old_pings(engine, cutoffs.pings, batch_size, budget)}
    counts["keys"] = delete_inactive_keys(engine, cutoffs.keys, settings, budget)
    counts["requests"] = delete_old_requests(engine, cutoffs.requests, settings, budget)
    if not budget.spent:
        remove_orphans(engine, settings)
    log.info(
        "retention deleted %s idle keys, %s stored requests, %s pings%s",
        counts["keys"],
        counts["requests"],
        counts["pings"],
        " (time budget spent: to be continued)" if budget.spent else "",
    )
    return counts


def _delete_batches(engine, table, conditions: list, batch_size: int, budget=None) -> int:
    """Delete the matching rows a batch (one short transaction) at a time; returns how many.

    A spent `budget`, checked before each batch, stops it early.
    """
    deleted = 0
    while True:
        if budget is not None and not budget.left():
            # Out of time: the run is unfinished only if something here is still to go.
            budget.spent = budget.spent or _any(engine, table, conditions)
            return deleted
        batch = select(table.c.id).where(*conditions).limit(batch_size).scalar_subquery()
        with engine.begin() as conn:
            count = conn.execute(delete(table).where(table.c.id.in_(batch))).rowcount
        deleted += count
        if budget is not None and count:
            budget.progressed = True
        if count < batch_size:
            return deleted


def _any(engine, table, conditions: list) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(table.c.id).where(*conditions).limit(1)).first() is not None


def delete_old_requests(
    engine, cutoff: datetime, settings=None, budget: Budget | None = None
) -> int:
    """Requests created before `cutoff`, from the files and from the hot table.

    A spent `budget` stops it between files (the next run goes on from there).
    """
    from worker.export import every_lock, rewrite

    settings = settings or current_config()
    budget = budget or Budget(None)
    cutoff_us = epoch_micros(cutoff)
    deleted = 0
    with every_lock(engine, settings):
        with engine.connect() as conn:
            old = [f for f in catalog.live_files(conn) if f.min_us < cutoff_us]
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
                engine, settings, f.key_id, f.month, [f], where=f"created_at >= {_ts(cutoff_us)}"
            )
            deleted += f.rows - (kept.rows if kept else 0)
        if not budget.left():
            budget.spent = True
            return deleted
        with engine.begin() as conn:
            boundary = catalog.exported_id(conn)
            # Rows not yet exported (a late arrival); those below the boundary are in files.
            deleted += conn.execute(
                delete(requests).where(requests.c.created_at < cutoff_us, requests.c.id > boundary)
            ).rowcount
    return deleted


def _ts(micros: int) -> str:
    return f"make_timestamp({int(micros)})::TIMESTAMPTZ"


def inactive_keys(conn, cutoff: datetime) -> list[int]:
    """Keys with neither ingest nor a dashboard sign-in since `cutoff` (the demo key stays)."""
    query = (
        select(api_keys.c.id)
        .where(api_keys.c.last_active_at < cutoff, api_keys.c.is_demo.is_(False))
        .order_by(api_keys.c.id)
    )
    return list(conn.execute(query).scalars())


def _still_idle(conn, key_id: int, cutoff: datetime) -> bool:
    query = select(api_keys.c.last_active_at).where(api_keys.c.id == key_id)
    if is_postgres(conn):
        # Holds off a concurrent sign-in until the deletion commits; it then finds no key.
        query = query.with_for_update()
    last_active = conn.execute(query).scalar_one_or_none()
    return last_active is not None and as_utc(last_active) < cutoff


def delete_inactive_keys(
    engine, cutoff: datetime, settings=None, budget: Budget | None = None
) -> int:
    """Delete idle keys with all their data and files; returns how many keys went.

    One short transaction a key (its hot rows are few: the rest is files, deleted after
    the commit). A key that becomes active meanwhile is left alone.
    """
    budget = budget or Budget(None)
    with engine.connect() as conn:
        key_ids = inactive_keys(conn, cutoff)
    deleted = 0
    for index, key_id in enumerate(key_ids):
        if not budget.left():
            budget.spent = True
            log.info("retention: %s idle keys left for the next run", len(key_ids) - index)
            return deleted
        with engine.begin() as conn:
            if not _still_idle(conn, key_id, cutoff):
                log.info("key id=%s became active during retention; kept", key_id)
                continue
            delete_key_data(conn, key_id)
        remove_key_files(key_id, settings)
        log.info("retention deleted idle key id=%s and its data", key_id)
        budget.progressed = True
        deleted += 1
    return deleted


def delete_old_pings(
    engine, cutoff: datetime, batch_size: int = BATCH_SIZE, budget: Budget | None = None
) -> int:
    """Pings created before `cutoff`, monitor by monitor through the (monitor, created_at) index."""
    with engine.connect() as conn:
        monitor_ids = list(conn.execute(select(monitors.c.id).order_by(monitors.c.id)).scalars())
    return sum(
        _delete_batches(
            engine,
            pings,
            [pings.c.monitor_id == m, pings.c.created_at < cutoff],
            batch_size,
            budget=budget,
        )
        for m in monitor_ids
    )


def _stored_rows(conn, key_ids) -> int:
    """Rows the keys hold in files and in the hot table (not yet exported)."""
    boundary = catalog.exported_id(conn)
    total = 0
    for key_id in key_ids:
        total += catalog.storage_bytes(conn, key_id)[0]
    hot = select(func.count()).where(requests.c.key_id.in_(list(key_ids)), requests.c.id > boundary)
    return total + (conn.execute(hot).scalar_one() if key_ids else 0)


def _old_rows(conn, cutoff_us: int, skip_keys) -> int:
    """Rows created before the cutoff, in files (whole or counted) and hot."""
    from server.lake import engine as lake_engine

    skip = set(skip_keys)
    storage = get_storage()
    total, straddling = 0, []
    for f in catalog.live_files(conn):
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


def plan_retention(engine, cutoffs: Cutoffs) -> dict:
    """What apply_retention would delete now, counted without deleting anything."""
    with engine.connect() as conn:
        idle = inactive_keys(conn, cutoffs.keys)
        idle_requests = _stored_rows(conn, idle)
        # Idle keys' rows are counted with their keys above.
        old_requests = _old_rows(conn, epoch_micros(cutoffs.requests), idle)
        old_pings = conn.execute(
            select(func.count()).select_from(pings).where(pings.c.created_at < cutoffs.pings)
        ).scalar_one()
    return {
        "keys": idle,
        "idle_key_requests": idle_requests,
        "requests": old_requests,
        "pings": old_pings,
    }


@click.command("retention")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
def retention_command(dry_run: bool) -> None:
    """Delete stored requests, idle keys and pings past their retention (the daily job)."""
    config = current_config()
    cutoffs = Cutoffs.from_config(config)
    engine = get_engine()
    day = "%Y-%m-%d %H:%M UTC"
    if dry_run:
        plan = plan_retention(engine, cutoffs)
        keys = ", ".join(str(k) for k in plan["keys"]) or "none"
        click.echo("retention dry run: nothing is deleted")
        click.echo(
            f"  keys idle since {cutoffs.keys:{day}} ({config.KEY_INACTIVE_DAYS} days): "
            f"{len(plan['keys'])} (ids: {keys}), with {plan['idle_key_requests']} stored requests "
            "and all their other data"
        )
        click.echo(
            f"  stored requests of other keys before {cutoffs.requests:{day}} "
            f"({config.RETENTION_DAYS} days): {plan['requests']}"
        )
        click.echo(
            f"  pings before {cutoffs.pings:{day}} ({config.PING_RETENTION_DAYS} days): "
            f"{plan['pings']}"
        )
        return
    counts = apply_retention(engine, cutoffs)
    click.echo(
        f"deleted {counts['keys']} idle keys, {counts['requests']} stored requests, "
        f"{counts['pings']} pings"
    )
