"""The daily upkeep: stored requests past RETENTION_DAYS, keys idle for KEY_INACTIVE_DAYS and
pings past PING_RETENTION_DAYS deleted (the `retention` job and `flask retention`).

On RQ a run stops starting work when its time budget is spent (well inside the job's
timeout, which would otherwise kill it mid-way every day on a large backlog) and queues
a run of its own to go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import click
from sqlalchemy import func, select

from server import queue
from server.config import Config, current_config
from server.db import get_engine, utcnow
from server.keys.idle import delete_inactive_keys, inactive_keys, stored_rows
from server.keys.sessions import Lifetimes, end_expired
from server.lake.compaction import remove_orphans
from server.lake.layout import DETAILS, PAYLOADS
from server.lake.retention import Budget, delete_old_requests, old_rows
from server.models import pings
from server.monitors.store import BATCH_SIZE, delete_old_pings
from server.rules import epoch_micros

log = logging.getLogger(__name__)

# Retention stops starting batches at RETENTION_BUDGET_SECONDS and goes on in a new run
# (the job's timeout, server.jobs, is longer).
RETENTION_BUDGET_SECONDS = 2700


@dataclass(frozen=True)
class Cutoffs:
    """Everything older than these goes."""

    requests: datetime
    keys: datetime
    pings: datetime
    # Captured headers and bodies; exceptions and validation errors go with requests.
    payloads: datetime | None = None

    @classmethod
    def from_config(cls, config: Config, now: datetime | None = None) -> Cutoffs:
        now = now or utcnow()
        return cls(
            requests=now - timedelta(days=config.RETENTION_DAYS),
            keys=now - timedelta(days=config.KEY_INACTIVE_DAYS),
            pings=now - timedelta(days=config.PING_RETENTION_DAYS),
            payloads=now - timedelta(days=config.PAYLOAD_RETENTION_DAYS),
        )


def run_retention(budget_seconds: float | None = None) -> dict[str, int]:
    """The periodic job (daily): apply the configured retention; returns what went.

    If the budget runs out first, a run of its own is queued to go on from there.
    """
    config = current_config()
    if budget_seconds is None and not config.embedded_queue:
        budget_seconds = RETENTION_BUDGET_SECONDS
    budget = Budget(budget_seconds)
    cutoffs = Cutoffs.from_config(config)
    counts = apply_retention(get_engine(), cutoffs, batch_size=BATCH_SIZE, budget=budget)
    # A session's row goes when it is used after it expired, or at its key's next sign-in;
    # those of browsers that never come back go here.
    with get_engine().begin() as conn:
        counts["sessions"] = end_expired(conn, Lifetimes.of(config))
    if budget.spent:
        _continue_later(budget_seconds)
    return counts


def _continue_later(budget_seconds: float) -> None:
    log.info("retention's time budget is spent; it goes on in a run of its own")
    queue.enqueue(run_retention, budget_seconds)


def apply_retention(
    engine, cutoffs: Cutoffs, batch_size: int = BATCH_SIZE, budget: Budget | None = None
) -> dict[str, int]:
    """Pings first (they are few, and a long backlog of requests must not keep them
    forever), then idle keys, then old requests, then files no catalog row names."""
    settings = current_config()
    budget = budget or Budget(None)
    counts = {"pings": delete_old_pings(engine, cutoffs.pings, batch_size, budget)}
    counts["keys"] = delete_inactive_keys(engine, cutoffs.keys, settings, budget)
    counts["requests"] = delete_old_requests(engine, cutoffs.requests, settings, budget)
    counts["details"] = delete_old_requests(
        engine, cutoffs.requests, settings, budget, dataset=DETAILS
    )
    counts["payloads"] = delete_old_requests(
        engine, cutoffs.payloads or cutoffs.requests, settings, budget, dataset=PAYLOADS
    )
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


def plan_retention(engine, cutoffs: Cutoffs) -> dict:
    """What apply_retention would delete now, counted without deleting anything."""
    with engine.connect() as conn:
        idle = inactive_keys(conn, cutoffs.keys)
        idle_requests = stored_rows(conn, idle)
        # Idle keys' rows are counted with their keys above.
        old_requests = old_rows(conn, epoch_micros(cutoffs.requests), idle)
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
