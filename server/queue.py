"""Running jobs by function: on RQ when REDIS_URL is set, else on an in-process thread.

A job is declared once, in the registry (server.jobs), with its queue and timeout; code
that wants one run asks for it by its function (`enqueue(run_export)`). This module knows
no job of its own: the registry declares them here when it is imported, which every
process does at start (the app factory, `python -m worker`).
"""

from __future__ import annotations

import contextlib
import logging
import queue as stdlib_queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from server.config import current_config

log = logging.getLogger(__name__)

# Queue names are constants shared by the web process, the worker and the scheduler.
INGEST_QUEUE = "ingest"
MONITOR_QUEUE = "monitors"
MAINTENANCE_QUEUE = "maintenance"
# Alert evaluation and notifications: a slow retention pass must not hold up an alert.
ALERT_QUEUE = "alerts"
# The export and compaction jobs (at most two of each wait: they are unique). Workers take
# from the queues in this order, so a backlog of batches never holds up the export that
# keeps the hot table (which every dashboard read copies) small.
LAKE_QUEUE = "lake"
ALL_QUEUES = (LAKE_QUEUE, INGEST_QUEUE, MONITOR_QUEUE, MAINTENANCE_QUEUE, ALERT_QUEUE)


@dataclass(frozen=True)
class Job:
    """One kind of job: its function, queue and timeout (RQ kills a run past it; its
    default, 180 s, would kill a long one mid-way), and, for a periodic job, its name
    (part of every run's id, so keep it) and period.

    `every(settings)` gives the period in seconds; `args(settings)` the arguments of a
    periodic run; `takes_round` gives the function its round's start (epoch seconds)
    first, to make the round idempotent; `after(result)` runs once a run has succeeded
    (what it asks for next). A job with a `unique_id` has at most one run waiting, under
    that id, however often it is asked for.
    """

    func: Callable
    queue: str
    timeout: int | Callable  # seconds, or a function of the settings giving them
    name: str | None = None
    unique_id: str | None = None
    every: Callable | None = None
    args: Callable | None = None
    takes_round: bool = False
    after: Callable | None = None

    @property
    def path(self) -> str:
        """The function's dotted path, as RQ stores it."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def timeout_for(self, settings=None) -> int:
        if callable(self.timeout):
            return self.timeout(settings or current_config())
        return self.timeout

    def args_for(self, settings) -> tuple:
        """A periodic run's arguments (but the round's start, server.jobs.Periodic)."""
        return tuple(self.args(settings)) if self.args else ()

    def run(self, *args):
        """Call the function, then its `after` (how the in-process queue runs a job)."""
        result = self.func(*args)
        if self.after is not None:
            self.after(result)
        return result


_declared: dict[Callable, Job] = {}


def declare(*jobs: Job) -> None:
    """Make jobs known by their function (the registry calls this once per process)."""
    for job in jobs:
        _declared[job.func] = job


def declared(func: Callable) -> Job:
    try:
        return _declared[func]
    except KeyError:
        raise LookupError(
            f"{func.__module__}.{func.__qualname__} is not a declared job: declare it in "
            "server.jobs (and import server.jobs when the process starts)"
        ) from None


def after_success(rq_job, _connection, result, *_args, **_kwargs) -> None:
    """RQ's on-success callback: the declared job's `after`."""
    job = _declared.get(rq_job.func)
    if job is not None and job.after is not None:
        job.after(result)


class InlineQueue:
    """The embedded mode's queue: one daemon thread running jobs in order.

    Nothing is lost if the process dies: batches stay in the staging table
    and the sweeper enqueues them again at the next start.
    """

    def __init__(self) -> None:
        self._jobs: stdlib_queue.Queue = stdlib_queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waiting: set[str] = set()

    def enqueue(self, job: Job, *args, job_id: str | None = None, unique: bool = False) -> None:
        """Queue a run; with `unique`, not while one with the same id still waits.

        The timeout is for RQ: a thread cannot be stopped from outside, so here a job
        runs as long as it needs (the long ones work in bounded batches anyway).
        """
        self._ensure_thread()
        if unique and job_id:
            with self._lock:
                if job_id in self._waiting:
                    return
                self._waiting.add(job_id)
        self._jobs.put((job, args, job_id if unique else None))

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="inline-jobs", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job, args, unique_id = self._jobs.get()
            if unique_id:
                with self._lock:
                    self._waiting.discard(unique_id)
            try:
                job.run(*args)
            except Exception:
                log.exception("in-process job %s failed; the sweeper will retry it", job.path)
            finally:
                self._jobs.task_done()

    def join(self) -> None:
        """Block until every queued job has run (tests and shutdown)."""
        self._jobs.join()

    def depth(self) -> int:
        return self._jobs.qsize()

    def forget(self, queue_name: str, job_ids: list[str]) -> None:
        """Waiting jobs here cost a function call each: let them run and find nothing."""

    def ping(self) -> None:
        return None


# While one process queues a unique job, others asking for it leave it to that one; the
# guard expires by itself if that process dies between the two steps.
UNIQUE_GUARD_PREFIX = "apia:queueing:"
UNIQUE_GUARD_MS = 5_000


class RQQueue:
    """Jobs go to Redis and a `python -m worker` process runs them."""

    def __init__(self, redis_url: str) -> None:
        from redis import Redis

        self.redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)

    def enqueue(self, job: Job, *args, job_id: str | None = None, unique: bool = False) -> None:
        """Queue a run that RQ stops after the job's timeout; with `unique`, not while one
        with the same id still waits."""
        from rq import Queue

        queue = Queue(job.queue, connection=self.redis)
        if not (unique and job_id):
            self._put(queue, job, args, job_id)
            return
        # One asker at a time looks for a waiting run and queues one: two that looked at
        # once both saw none, both queued it, and two workers ran the same job id (the
        # second's cleanup then failed on the record the first had deleted). Whoever
        # finds another asker at it leaves the request to that one.
        guard = f"{UNIQUE_GUARD_PREFIX}{job_id}"
        if not self.redis.set(guard, "1", nx=True, px=UNIQUE_GUARD_MS):
            return
        try:
            slot = self._unique_slot(job_id)
            if slot is not None:
                self._put(queue, job, args, slot)
        finally:
            self.redis.delete(guard)

    @staticmethod
    def _put(queue, job: Job, args: tuple, job_id: str | None) -> None:
        # No RQ retries: a failed batch stays staged and the sweeper enqueues it again.
        queue.enqueue_call(
            job.func,
            args=args,
            job_id=job_id,
            timeout=job.timeout_for(),
            result_ttl=0,
            failure_ttl=7 * 24 * 3600,
            on_success=rq_callback(job),
        )

    def _unique_slot(self, job_id: str) -> str | None:
        """The id to queue a unique job under, or None while one already waits.

        A job that is running must not be queued again under its own id: RQ would
        overwrite the running job's record, and the first one's cleanup then deleted the
        new one (the export asked for during an export was lost, with an error logged).
        So a second id takes the request for a run after the current one."""
        follow_up = f"{job_id}-next"
        statuses = {i: self.job_status(i) for i in (job_id, follow_up)}
        if "queued" in statuses.values():
            return None
        for candidate, status in statuses.items():
            if status not in ("started", "deferred", "scheduled"):
                return candidate
        return None  # both running: what they miss, the schedule's next run takes

    def job_status(self, job_id: str) -> str | None:
        """RQ's status of the job ("queued", "started", ...), or None if Redis has no such job.

        One read of the job's status field: fetching the job and then its status raced
        with RQ deleting a finished job between the two ("Failed to retrieve status")."""
        from rq.job import Job as RQJob

        status = self.redis.hget(RQJob.key_for(job_id), "status")
        return status.decode() if status else None

    def discard(self, job_id: str) -> None:
        """Forget a job (e.g. one orphaned by a killed worker) before enqueueing it afresh."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job as RQJob

        with contextlib.suppress(NoSuchJobError):
            RQJob.fetch(job_id, connection=self.redis).delete()

    def forget(self, queue_name: str, job_ids: list[str]) -> None:
        """Take waiting jobs off the queue (a worker already did their work): each would
        cost a worker a few milliseconds of RQ bookkeeping to find nothing to do. A job
        some worker has already taken stays as it is and finds nothing."""
        from rq import Queue
        from rq.job import Job as RQJob

        queue = Queue(queue_name, connection=self.redis)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.lrem(queue.key, 0, job_id)
            removed = pipe.execute()
        # Their records go too, so the sweeper never mistakes one for a job still waiting.
        gone = [RQJob.key_for(j) for j, count in zip(job_ids, removed, strict=True) if count]
        if gone:
            self.redis.delete(*gone)

    def depth(self) -> int:
        from rq import Queue

        return sum(Queue(name, connection=self.redis).count for name in ALL_QUEUES)

    def ping(self) -> None:
        self.redis.ping()


def rq_callback(job: Job):
    """RQ's on-success callback for a job that asks for something after it, else None."""
    if job.after is None:
        return None
    from rq import Callback

    return Callback(after_success)


_queue: InlineQueue | RQQueue | None = None


def init_queue(redis_url: str) -> InlineQueue | RQQueue:
    global _queue
    _queue = RQQueue(redis_url) if redis_url else InlineQueue()
    return _queue


def get_queue() -> InlineQueue | RQQueue:
    if _queue is None:
        init_queue(current_config().REDIS_URL)
    return _queue


def enqueue(func: Callable, *args, job_id: str | None = None) -> None:
    """Queue a run of the declared job `func` (server.jobs); raises if the queue is down."""
    job = declared(func)
    if job.unique_id:
        get_queue().enqueue(job, *args, job_id=job.unique_id, unique=True)
    else:
        get_queue().enqueue(job, *args, job_id=job_id)


def ask(func: Callable, *args, job_id: str | None = None) -> bool:
    """enqueue, for a job that something else runs anyway (its schedule, the sweeper):
    False, logged, when the queue is down, instead of raising."""
    try:
        enqueue(func, *args, job_id=job_id)
        return True
    except Exception as exc:  # redis.ConnectionError, TimeoutError, ...
        log.warning("could not enqueue %s (%s); it runs later", declared(func).path, exc)
        return False
