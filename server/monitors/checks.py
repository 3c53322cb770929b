"""Uptime checks: each round asks for one check job per monitor; each job stores one ping."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server import queue
from server.config import current_config
from server.db import get_engine, insert_ignoring_conflicts, utcnow
from server.models import api_keys, monitors, pings
from server.monitors.probe import Outcome, probe

log = logging.getLogger(__name__)

# The embedded mode has no workers to spread checks over; a few threads stand in for them.
EMBEDDED_CONCURRENCY = 8


def check_timeout(config) -> int:
    """A check gives up after MONITOR_TIMEOUT_SECONDS; its job gets that and room to store."""
    return max(1, config.MONITOR_TIMEOUT_SECONDS) + 30


def check_job_id(monitor_id: int, round_ts: int) -> str:
    return f"check-{monitor_id}-{round_ts}"


def check_all_monitors(round_ts: int) -> int:
    """The periodic job: one check of every monitor for the round that starts at `round_ts`.

    `round_ts` (epoch seconds) names the round, so a round run twice checks
    each monitor once. Returns the number of monitors.
    """
    config = current_config()
    with get_engine().connect() as conn:
        ids = list(conn.execute(select(monitors.c.id).order_by(monitors.c.id)).scalars())
    if config.embedded_queue:
        # Not on the in-process job thread: a hung URL must not hold up ingest.
        with ThreadPoolExecutor(EMBEDDED_CONCURRENCY, thread_name_prefix="uptime") as pool:
            list(pool.map(lambda monitor_id: check_monitor(monitor_id, round_ts), ids))
    else:
        for monitor_id in ids:
            queue.enqueue(
                check_monitor, monitor_id, round_ts, job_id=check_job_id(monitor_id, round_ts)
            )
    log.info("uptime round %s: %s monitors", round_ts, len(ids))
    return len(ids)


def check_monitor(monitor_id: int, round_ts: int) -> dict | None:
    """Check one monitor for one round and store the ping; None when there is nothing to do.

    A monitor deleted since the round began, or one already checked in this
    round, is skipped, so running the job twice stores one ping.
    """
    config = current_config()
    scheduled_at = datetime.fromtimestamp(round_ts, UTC)
    engine = get_engine()
    with engine.connect() as conn:
        monitor = conn.execute(
            select(monitors.c.url, monitors.c.method, api_keys.c.is_demo)
            .join(api_keys, api_keys.c.id == monitors.c.key_id)
            .where(monitors.c.id == monitor_id)
        ).first()
        if monitor is None or _already_checked(conn, monitor_id, scheduled_at):
            return None
    checked_at = utcnow()
    outcome = probe(
        monitor.url,
        monitor.method,
        timeout=max(1, config.MONITOR_TIMEOUT_SECONDS),
        # The demo's monitors check this server itself, on a private address; nobody
        # holds the demo key, so no one else can point them anywhere.
        allow_private=config.MONITOR_ALLOW_PRIVATE or monitor.is_demo,
    )
    stored = store_ping(engine, monitor_id, scheduled_at, checked_at, outcome)
    if outcome.error:
        log.info("monitor id=%s is down: %s", monitor_id, outcome.error)
    return {**outcome.__dict__, "stored": stored}


def _already_checked(conn, monitor_id: int, scheduled_at: datetime) -> bool:
    query = select(pings.c.id).where(
        pings.c.monitor_id == monitor_id, pings.c.scheduled_at == scheduled_at
    )
    return conn.execute(query).first() is not None


def store_ping(engine, monitor_id: int, scheduled_at, checked_at, outcome: Outcome) -> bool:
    """Insert the ping unless the round already has one; False when nothing was stored."""
    values = {
        "monitor_id": monitor_id,
        "created_at": checked_at,
        "scheduled_at": scheduled_at,
        "status": outcome.status,
        "response_time": outcome.response_time,
        "error": outcome.error,
    }
    try:
        with engine.begin() as conn:
            statement = (
                insert_ignoring_conflicts(conn, pings, ["monitor_id", "scheduled_at"])
                .values(**values)
                .returning(pings.c.id)
            )
            return conn.execute(statement).first() is not None
    except IntegrityError:
        return False  # the monitor was deleted while we checked it
