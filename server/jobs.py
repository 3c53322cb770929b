"""The registry: every background job, declared once, by its function, with its queue,
timeout and (for a periodic job) its name and period.

Code asks for a run by function (`server.queue.enqueue(run_export)`); the worker, the
Redis scheduler and the embedded mode's in-process timer (worker/) all read this list.
Importing this module declares the jobs to the queue: every process does it at start.

Timeouts: RQ kills a run that takes longer, so each names one; a job that may need
longer works in bounded batches and goes on in a run of its own (retention).
"""

from __future__ import annotations

from dataclasses import dataclass

from server import queue
from server.alerts.evaluation import evaluate
from server.alerts.sending import send_due
from server.ingest.staging import process_batch
from server.ingest.sweep import recover, sweep
from server.lake.compaction import run_compaction
from server.lake.export import run_export
from server.monitors.checks import check_all_monitors, check_monitor, check_timeout
from server.queue import (
    ALERT_QUEUE,
    INGEST_QUEUE,
    LAKE_QUEUE,
    MAINTENANCE_QUEUE,
    MONITOR_QUEUE,
    Job,
)
from server.upkeep import run_retention
from server.usage.closing import close_months

# A batch group of 10,000 rows is stored in about 0.1 s (bench/worker.py,
# bench/README.md): five minutes only ends a job that hangs.
BATCH_JOB_TIMEOUT = 300
# The sweeper re-enqueues at most server.ingest.sweep.SWEEP_LIMIT batches a run.
SWEEP_JOB_TIMEOUT = 300
SWEEP_INTERVAL_SECONDS = 60
# The export moves hot rows in bounded steps and compacts month by month; a backlog (a
# migration's rows, a long outage of the workers) can take minutes.
EXPORT_TIMEOUT = 1800
COMPACTION_INTERVAL_SECONDS = 30
# A round of uptime checks only enqueues one job per monitor.
UPTIME_ROUND_TIMEOUT = 120
# An evaluation runs a few small engine queries per rule (server.stats.recent).
ALERT_EVALUATION_TIMEOUT = 300
ALERT_INTERVAL_SECONDS = 60
# A run sends at most server.alerts.sending.SEND_LIMIT notifications of at most 15 s each.
SEND_ALERTS_TIMEOUT = 600
# Retention stops starting batches at server.upkeep.RETENTION_BUDGET_SECONDS.
RETENTION_JOB_TIMEOUT = 3600
RETENTION_INTERVAL_SECONDS = 24 * 3600
# Closing a month freezes its usage per key with a webhook (each ~2 s at 10 M rows, issue
# 35) and sends at most server.usage.closing.SEND_LIMIT notices of at most 15 s each.
USAGE_CLOSE_TIMEOUT = 1800
USAGE_CLOSE_INTERVAL_SECONDS = 300


def after_export(result: dict) -> None:
    """An export that wrote files asks for a compaction (which has its own lock)."""
    if result.get("exported"):
        queue.ask(run_compaction)


def export_interval(settings) -> int:
    """Each batch asks for an export; the periodic one exports the tail of a burst (the
    rows no later batch asks for) and trims the hot table. Every LAKE_EXPORT_SECONDS, so
    the tail is in files within about that: at every 30 s it waited up to 30 s
    (bench/ingest.py: a 300,000-row round in files 22-39 s after its last batch)."""
    return max(1, min(COMPACTION_INTERVAL_SECONDS, settings.LAKE_EXPORT_SECONDS))


JOBS = (
    Job(process_batch, INGEST_QUEUE, BATCH_JOB_TIMEOUT),
    Job(recover, MAINTENANCE_QUEUE, SWEEP_JOB_TIMEOUT),
    Job(
        sweep,
        MAINTENANCE_QUEUE,
        SWEEP_JOB_TIMEOUT,
        name="stale-batch-sweep",
        every=lambda _settings: SWEEP_INTERVAL_SECONDS,
        args=lambda settings: (settings.SWEEP_AFTER_SECONDS,),
    ),
    Job(
        run_export,
        LAKE_QUEUE,
        EXPORT_TIMEOUT,
        name="lake-export",
        every=export_interval,
        unique_id="lake-export",
        after=after_export,
    ),
    # Each export that wrote files asks for a compaction; the periodic one also gives
    # closed months their summaries and deletes files past their grace period.
    Job(
        run_compaction,
        LAKE_QUEUE,
        EXPORT_TIMEOUT,
        name="lake-compaction",
        every=lambda _settings: COMPACTION_INTERVAL_SECONDS,
        unique_id="lake-compaction",
    ),
    Job(
        check_all_monitors,
        MONITOR_QUEUE,
        UPTIME_ROUND_TIMEOUT,
        name="uptime-checks",
        every=lambda settings: settings.MONITOR_INTERVAL_SECONDS,
        takes_round=True,
    ),
    Job(check_monitor, MONITOR_QUEUE, check_timeout),
    Job(
        evaluate,
        ALERT_QUEUE,
        ALERT_EVALUATION_TIMEOUT,
        name="alert-evaluation",
        every=lambda _settings: ALERT_INTERVAL_SECONDS,
        takes_round=True,
    ),
    # Retries of failed notifications come due here (an incident asks for a run at once).
    Job(
        send_due,
        ALERT_QUEUE,
        SEND_ALERTS_TIMEOUT,
        name="alert-sending",
        every=lambda _settings: ALERT_INTERVAL_SECONDS,
        unique_id="alert-deliveries",
    ),
    # A month closed: its usage frozen and sent to the owner's webhook, once.
    Job(
        close_months,
        ALERT_QUEUE,
        USAGE_CLOSE_TIMEOUT,
        name="usage-close",
        every=lambda _settings: USAGE_CLOSE_INTERVAL_SECONDS,
        takes_round=True,
    ),
    Job(
        run_retention,
        MAINTENANCE_QUEUE,
        RETENTION_JOB_TIMEOUT,
        name="retention",
        every=lambda _settings: RETENTION_INTERVAL_SECONDS,
    ),
)
queue.declare(*JOBS)


@dataclass(frozen=True)
class Periodic:
    """A periodic job under one process's settings: what the schedulers run."""

    job: Job
    interval: int
    timeout: int
    args: tuple = ()

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def func(self):
        return self.job.func

    @property
    def path(self) -> str:
        return self.job.path

    def args_for(self, round_ts: int) -> tuple:
        """The run's arguments: the round's start first, for a job that takes it."""
        return (round_ts, *self.args) if self.job.takes_round else self.args


def periodic_jobs(settings) -> list[Periodic]:
    """Every periodic job, for the Redis scheduler and the embedded timer alike."""
    return [
        Periodic(job, job.every(settings), job.timeout_for(settings), job.args_for(settings))
        for job in JOBS
        if job.every is not None
    ]
