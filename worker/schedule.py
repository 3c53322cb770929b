"""The periodic jobs, declared once: what runs, on which queue and how often."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import Config
from server.queue import (
    ALERT_QUEUE,
    COMPACTION,
    EXPORT,
    EXPORT_TIMEOUT,
    LAKE_QUEUE,
    MAINTENANCE_QUEUE,
    MONITOR_QUEUE,
    SEND_ALERTS,
    SEND_ALERTS_TIMEOUT,
    SWEEP_JOB_TIMEOUT,
)

SWEEP_INTERVAL_SECONDS = 60
EXPORT_INTERVAL_SECONDS = 30
RETENTION_INTERVAL_SECONDS = 24 * 3600
ALERT_INTERVAL_SECONDS = 60

# Timeouts, seconds. A round of uptime checks only enqueues one job per monitor.
UPTIME_ROUND_TIMEOUT = 120
# Retention stops starting batches at RETENTION_BUDGET_SECONDS and goes on in a new run.
RETENTION_JOB_TIMEOUT = 3600
RETENTION_BUDGET_SECONDS = 2700
# An evaluation runs a few small engine queries per rule (worker.alerts.measure).
ALERT_EVALUATION_TIMEOUT = 300


@dataclass(frozen=True)
class PeriodicJob:
    """A job run every `interval` seconds; `name` is part of every run's job id, so keep it.

    `timeout`: RQ stops a run after this many seconds (its default, 180 s, would kill a
    long one mid-way every time); a job that may need longer works in bounded batches
    and continues in a run of its own (worker.retention).
    """

    name: str
    func: str  # dotted path, as the web process and the workers enqueue everything
    queue: str
    interval: int
    timeout: int
    args: tuple = ()
    # Give the function its round's start (epoch seconds) first, to make the round idempotent.
    takes_round: bool = False

    def args_for(self, round_ts: int) -> tuple:
        return (round_ts, *self.args) if self.takes_round else tuple(self.args)


def periodic_jobs(config: Config) -> list[PeriodicJob]:
    """Every periodic job, for the Redis scheduler and the embedded timer alike."""
    return [
        PeriodicJob(
            "uptime-checks",
            "worker.uptime.check_all_monitors",
            MONITOR_QUEUE,
            config.MONITOR_INTERVAL_SECONDS,
            timeout=UPTIME_ROUND_TIMEOUT,
            takes_round=True,
        ),
        PeriodicJob(
            "stale-batch-sweep",
            "worker.sweeper.sweep",
            MAINTENANCE_QUEUE,
            SWEEP_INTERVAL_SECONDS,
            timeout=SWEEP_JOB_TIMEOUT,
            args=(config.SWEEP_AFTER_SECONDS,),
        ),
        # Each batch asks for an export; this one exports the tail of a burst (the rows
        # no later batch asks for) and trims the hot table. Every LAKE_EXPORT_SECONDS, so
        # the tail is in files within about that: at every 30 s it waited up to 30 s
        # (bench/ingest.py: a 300,000-row round in files 22-39 s after its last batch).
        PeriodicJob(
            "lake-export",
            EXPORT,
            LAKE_QUEUE,
            max(1, min(EXPORT_INTERVAL_SECONDS, config.LAKE_EXPORT_SECONDS)),
            timeout=EXPORT_TIMEOUT,
        ),
        # Each export that wrote files asks for a compaction; this one also gives closed
        # months their digests and deletes files past their grace period.
        PeriodicJob(
            "lake-compaction",
            COMPACTION,
            LAKE_QUEUE,
            EXPORT_INTERVAL_SECONDS,
            timeout=EXPORT_TIMEOUT,
        ),
        PeriodicJob(
            "alert-evaluation",
            "worker.alerts.evaluate",
            ALERT_QUEUE,
            ALERT_INTERVAL_SECONDS,
            timeout=ALERT_EVALUATION_TIMEOUT,
            takes_round=True,
        ),
        # Retries of failed notifications come due here (an incident asks for a run at once).
        PeriodicJob(
            "alert-sending",
            SEND_ALERTS,
            ALERT_QUEUE,
            ALERT_INTERVAL_SECONDS,
            timeout=SEND_ALERTS_TIMEOUT,
        ),
        PeriodicJob(
            "retention",
            "worker.retention.run_retention",
            MAINTENANCE_QUEUE,
            RETENTION_INTERVAL_SECONDS,
            timeout=RETENTION_JOB_TIMEOUT,
        ),
    ]


def next_round(interval: int, now: float) -> int:
    """The next round's start, strictly after `now`.

    Rounds fall on multiples of the interval since the epoch, so every
    scheduler, and every restart of one, computes the same rounds.
    """
    return (int(now) // interval + 1) * interval
