"""Retention: raw requests past RETENTION_DAYS, keys idle for KEY_INACTIVE_DAYS, old pings.

Deletes in batches of a few thousand rows, each in its own short transaction,
found through the (key, created_at) and (monitor, created_at) indexes, so
ingest and the dashboard never wait behind it. Rollup tables are kept: only
the raw `requests` rows age out.

On RQ a run stops starting batches when its time budget is spent (well inside the
job's timeout, which would otherwise kill it mid-way every day on a large backlog) and
queues a run of its own to go on. Pings go first: they are few, and a long backlog of
requests must not keep them forever.
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
from server.models import api_keys, monitors, pings, requests
from server.requests_query import delete_key_data

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
    budget = budget or Budget(None)
    counts = {"pings": delete_old_pings(engine, cutoffs.pings, batch_size, budget)}
    counts["keys"] = delete_inactive_keys(engine, cutoffs.keys, batch_size, budget)
    counts["requests"] = delete_old_requests(engine, cutoffs.requests, batch_size, budget)
    log.info(
        "retention deleted %s idle keys, %s raw requests, %s pings%s",
        counts["keys"],
        counts["requests"],
        counts["pings"],
        " (time budget spent: to be continued)" if budget.spent else "",
    )
    return counts


def _delete_batches(
    engine, table, conditions: list, batch_size: int, still_wanted=None, budget=None
) -> int:
    """Delete the matching rows a batch (one short transaction) at a time; returns how many.

    `still_wanted(conn)` is asked inside each transaction; False stops early. So does a
    spent `budget`, checked before each batch.
    """
    deleted = 0
    while True:
        if budget is not None and not budget.left():
            # Out of time: the run is unfinished only if something here is still to go.
            budget.spent = budget.spent or _any(engine, table, conditions)
            return deleted
        batch = select(table.c.id).where(*conditions).limit(batch_size).scalar_subquery()
        with engine.begin() as conn:
            if still_wanted is not None and not still_wanted(conn):
                return deleted
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
    engine, cutoff: datetime, batch_size: int = BATCH_SIZE, budget: Budget | None = None
) -> int:
    """Raw requests created before `cutoff`, key by key through the (key, created_at) index."""
    with engine.connect() as conn:
        key_ids = list(conn.execute(select(api_keys.c.id).order_by(api_keys.c.id)).scalars())
    return sum(
        _delete_batches(
            engine,
            requests,
            [requests.c.key_id == k, requests.c.created_at < cutoff],
            batch_size,
            budget=budget,
        )
        for k in key_ids
    )


def inactive_keys(conn, cutoff: datetime) -> list[int]:
    """Keys with neither ingest nor a dashboard sign-in since `cutoff` (the demo key stays)."""
    query = (
        select(api_keys.c.id)
        .where(api_keys.c.last_active_at < cutoff, api_keys.c.is_demo.is_(False))
        .order_by(api_keys.c.id)
    )
    return list(conn.execute(query).scalars())


def _still_idle(key_id: int, cutoff: datetime):
    def check(conn) -> bool:
        query = select(api_keys.c.last_active_at).where(api_keys.c.id == key_id)
        if is_postgres(conn):
            # Holds off a concurrent sign-in until this batch commits; it then stops us.
            query = query.with_for_update()
        last_active = conn.execute(query).scalar_one_or_none()
        return last_active is not None and as_utc(last_active) < cutoff

    return check


def delete_inactive_keys(
    engine, cutoff: datetime, batch_size: int = BATCH_SIZE, budget: Budget | None = None
) -> int:
    """Delete idle keys with all their data; returns how many keys went.

    The raw requests go first in batches; the rest (and the key) in one short
    transaction. A key that becomes active meanwhile is left alone.
    """
    with engine.connect() as conn:
        key_ids = inactive_keys(conn, cutoff)
    deleted = 0
    budget = budget or Budget(None)
    for key_id in key_ids:
        idle = _still_idle(key_id, cutoff)
        _delete_batches(engine, requests, [requests.c.key_id == key_id], batch_size, idle, budget)
        if budget.spent:
            break  # its rows are not all gone yet: the next run finishes the key
        with engine.begin() as conn:
            if not idle(conn):
                log.info("key id=%s became active during retention; kept", key_id)
                continue
            delete_key_data(conn, key_id)
        log.info("retention deleted idle key id=%s and its data", key_id)
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


def plan_retention(engine, cutoffs: Cutoffs) -> dict:
    """What apply_retention would delete now, counted without deleting anything."""
    with engine.connect() as conn:
        idle = inactive_keys(conn, cutoffs.keys)
        idle_requests = 0
        if idle:
            idle_requests = conn.execute(
                select(func.count()).select_from(requests).where(requests.c.key_id.in_(idle))
            ).scalar_one()
        old = [requests.c.created_at < cutoffs.requests]
        if idle:
            old.append(requests.c.key_id.not_in(idle))  # counted with their keys above
        old_requests = conn.execute(
            select(func.count()).select_from(requests).where(*old)
        ).scalar_one()
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
    """Delete raw requests, idle keys and pings past their retention (what the daily job does)."""
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
            f"{len(plan['keys'])} (ids: {keys}), with {plan['idle_key_requests']} raw requests "
            "and all their other data"
        )
        click.echo(
            f"  raw requests of other keys before {cutoffs.requests:{day}} "
            f"({config.RETENTION_DAYS} days): {plan['requests']} (rollups are kept)"
        )
        click.echo(
            f"  pings before {cutoffs.pings:{day}} ({config.PING_RETENTION_DAYS} days): "
            f"{plan['pings']}"
        )
        return
    counts = apply_retention(engine, cutoffs)
    click.echo(
        f"deleted {counts['keys']} idle keys, {counts['requests']} raw requests, "
        f"{counts['pings']} pings"
    )
