"""The scheduler: the next run of every periodic job, once, on RQ or on an in-process timer.

With Redis, each round of a job is put in RQ's ScheduledJobRegistry under a
stable id, `periodic-<name>-<round start>`, and the workers' RQ scheduler
moves it to its queue when it is due. Every scheduler computes the same rounds
and claims each one in Redis (SET NX) before scheduling it, so a restart or a
second scheduler never doubles a run. (rq.cron's CronScheduler keeps its timing
in one process's memory: two of them, or one restarted, enqueue again.)

Without Redis (the embedded mode) the same list runs on a thread of the web
process; a file lock keeps it to one process per data directory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from server.config import Config
from server.jobs import Periodic, periodic_jobs
from server.lake.lock import file_lock
from server.queue import ALL_QUEUES, rq_callback

log = logging.getLogger(__name__)

RUN_PREFIX = "periodic-"  # RQ job ids allow letters, digits, "-" and "_" only
CLAIM_PREFIX = "api-analytics:periodic:"
# A claim outlives its round by this much, so a scheduler with a lagging clock
# cannot schedule a round that already ran.
CLAIM_MARGIN_SECONDS = 3600
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600


def next_round(interval: int, now: float) -> int:
    """The next round's start, strictly after `now`.

    Rounds fall on multiples of the interval since the epoch, so every
    scheduler, and every restart of one, computes the same rounds.
    """
    return (int(now) // interval + 1) * interval


def run_id(job: Periodic, round_ts: int) -> str:
    return f"{RUN_PREFIX}{job.name}-{round_ts}"


def _claim_key(job_id: str) -> str:
    return CLAIM_PREFIX + job_id.removeprefix(RUN_PREFIX)


def _round_of(job_id: str) -> int | None:
    try:
        return int(job_id.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


# --- Redis ------------------------------------------------------------------------------


def schedule_next_runs(redis, jobs: list[Periodic], now: float | None = None) -> list[str]:
    """Make sure the next round of each job is scheduled in RQ, once; returns their job ids."""
    from rq import Queue

    now = time.time() if now is None else now
    ids = []
    for job in jobs:
        round_ts = next_round(job.interval, now)
        job_id = run_id(job, round_ts)
        claimed = redis.set(
            _claim_key(job_id), job_id, nx=True, exat=round_ts + CLAIM_MARGIN_SECONDS
        )
        if claimed:
            Queue(job.queue, connection=redis).enqueue_at(
                datetime.fromtimestamp(round_ts, UTC),
                job.func,
                args=job.args_for(round_ts),
                job_id=job_id,
                job_timeout=job.timeout,
                result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
                description=f"{job.name} (every {job.interval} s)",
                meta={"periodic": job.name, "interval": job.interval},
                on_success=rq_callback(job.job),
            )
            log.debug("scheduled %s", job_id)
        ids.append(job_id)
    return ids


def reconcile(redis, jobs: list[Periodic], now: float | None = None) -> list[str]:
    """At start: cancel scheduled runs the list no longer declares as they are, then
    schedule the next round of each job. Any number of starts leave one run per job.

    A run whose time has come is left alone: a worker is about to take it.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    now = time.time() if now is None else now
    wanted = {run_id(job, next_round(job.interval, now)): job for job in jobs}
    queues = sorted(set(ALL_QUEUES) | {job.queue for job in jobs})
    for queue_name in queues:
        registry = ScheduledJobRegistry(queue_name, connection=redis)
        for job_id in registry.get_job_ids():
            if not job_id.startswith(RUN_PREFIX):
                continue
            round_ts = _round_of(job_id)
            if round_ts is not None and round_ts <= now:
                continue
            declared = wanted.get(job_id)
            try:
                scheduled = Job.fetch(job_id, connection=redis)
            except NoSuchJobError:
                scheduled = None
            if declared and scheduled and _matches(scheduled, declared, round_ts, queue_name):
                continue
            registry.remove(job_id)
            if scheduled is not None:
                scheduled.delete()
            redis.delete(_claim_key(job_id))
            log.info("cancelled %s: the schedule no longer declares it", job_id)
    return schedule_next_runs(redis, jobs, now)


def _matches(scheduled, declared: Periodic, round_ts: int, queue_name: str) -> bool:
    return (
        scheduled.func_name == declared.path
        and tuple(scheduled.args) == declared.args_for(round_ts)
        and queue_name == declared.queue
        and scheduled.timeout == declared.timeout
    )


def scheduled_runs(redis) -> list[str]:
    """Every periodic run waiting in RQ's scheduled registries (for tests and operators)."""
    from rq.registry import ScheduledJobRegistry

    ids = []
    for queue_name in ALL_QUEUES:
        registry = ScheduledJobRegistry(queue_name, connection=redis)
        ids += [i for i in registry.get_job_ids() if i.startswith(RUN_PREFIX)]
    return sorted(ids)


def run_scheduler(config: Config, stop: threading.Event | None = None) -> None:
    """`python -m worker scheduler`: reconcile, then keep the next rounds scheduled."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    redis = Redis.from_url(config.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    jobs = periodic_jobs(config)
    stop = stop or threading.Event()
    # Often enough that a round is scheduled before it is due.
    tick = max(0.5, min(5.0, min(job.interval for job in jobs) / 2))
    for job in jobs:
        log.info("periodic job %s: %s every %s s on queue %s (timeout %s s)", job.name, job.path,
                 job.interval, job.queue, job.timeout)  # fmt: skip
    reconciled = False
    while not stop.is_set():
        try:
            if reconciled:
                schedule_next_runs(redis, jobs)
            else:
                ids = reconcile(redis, jobs)
                reconciled = True
                log.info("schedule reconciled: %s", ", ".join(ids))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("scheduler cannot reach Redis (%s); retrying", exc)
        stop.wait(tick)
    log.info("scheduler stopped")


# --- In-process (embedded mode) -----------------------------------------------------------


class InProcessScheduler:
    """The embedded mode's scheduler: the same periodic jobs, on threads of this process.

    Each job runs on its own thread, so a slow retention pass does not delay
    uptime checks, and a round is skipped if the job's previous round is still
    running.
    """

    def __init__(self, jobs: list[Periodic], lock_path: Path) -> None:
        self.jobs = jobs
        self.lock_path = Path(lock_path)
        self._held = contextlib.ExitStack()
        self._stop = threading.Event()
        self._running: dict[str, threading.Thread] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start the timer unless another process of this install already runs it."""
        if not self._acquire_lock():
            log.info("another process runs the periodic jobs (%s is locked)", self.lock_path)
            return False
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()
        names = ", ".join(f"{job.name} every {job.interval} s" for job in self.jobs)
        log.info("periodic jobs run in-process: %s", names)
        return True

    def stop(self, timeout: float = 10) -> None:
        """Stop the timer and wait for running jobs (tests; the process exit does it too)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.join_running(timeout)
        self._held.close()

    def join_running(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _acquire_lock(self) -> bool:
        """Held from start to stop (or the process's end)."""
        held = self._held.enter_context(file_lock(self.lock_path))
        if not held:
            self._held.close()
        return held

    def _run(self) -> None:
        now = time.time()
        due = {job.name: next_round(job.interval, now) for job in self.jobs}
        while not self._stop.is_set():
            now = time.time()
            for job in self.jobs:
                if now >= due[job.name]:
                    self._launch(job, due[job.name])
                    due[job.name] = next_round(job.interval, now)
            wait = min(due.values()) - time.time()
            self._stop.wait(min(max(wait, 0.05), 1.0))

    def _launch(self, job: Periodic, round_ts: int) -> None:
        previous = self._running.get(job.name)
        if previous is not None and previous.is_alive():
            log.warning("%s is still running; skipping its round %s", job.name, round_ts)
            return
        thread = threading.Thread(
            target=self._call, args=(job, round_ts), name=f"periodic-{job.name}", daemon=True
        )
        self._running[job.name] = thread
        thread.start()

    @staticmethod
    def _call(job: Periodic, round_ts: int) -> None:
        try:
            job.job.run(*job.args_for(round_ts))
        except Exception:
            log.exception("periodic job %s (round %s) failed", job.name, round_ts)


_in_process: InProcessScheduler | None = None


def start_in_process(config: Config) -> InProcessScheduler | None:
    """From create_app in the embedded mode: run the periodic jobs while the app serves.

    A `flask` command other than `flask run` (a migration, `retention --dry-run`)
    only builds the app to use it once, so it starts no timer.
    """
    global _in_process
    if _in_process is not None or _in_cli_command():
        return _in_process
    scheduler = InProcessScheduler(periodic_jobs(config), Path(config.DATA_DIR) / "scheduler.lock")
    if scheduler.start():
        _in_process = scheduler
    return _in_process


def stop_in_process() -> None:
    """Stop the embedded timer (tests; a process exit ends it anyway)."""
    global _in_process
    if _in_process is not None:
        _in_process.stop()
        _in_process = None


def _in_cli_command() -> bool:
    with contextlib.suppress(ImportError):
        import click

        context = click.get_current_context(silent=True)
        return context is not None and context.info_name != "run"
    return False
