"""Enqueue jobs by dotted path: on RQ when REDIS_URL is set, else on an in-process thread."""

from __future__ import annotations

import contextlib
import importlib
import logging
import queue as stdlib_queue
import threading
import time

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

PROCESS_BATCH = "worker.enrich.process_batch"

# RQ kills a job that runs longer than its timeout (180 s when none is given), so every
# enqueue names one. A batch group of 10,000 rows is stored in about 0.1 s (bench/worker.py,
# bench/README.md): five minutes only ends a job that hangs.
BATCH_JOB_TIMEOUT = 300
# The sweeper re-enqueues at most worker.sweeper.SWEEP_LIMIT batches a run.
SWEEP_JOB_TIMEOUT = 300
# The export moves hot rows in bounded steps and compacts month by month; a backlog (a
# migration's rows, a long outage of the workers) can take minutes.
EXPORT_TIMEOUT = 1800


def call_path(path: str, *args, **kwargs):
    """Import a function by dotted path and call it (what RQ does in the worker)."""
    module_name, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)(*args, **kwargs)


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

    def enqueue(
        self,
        queue_name: str,
        path: str,
        *args,
        timeout: int | None = None,
        job_id: str | None = None,
        unique: bool = False,
    ) -> None:
        """Queue a job; with `unique`, not while one with the same id still waits.

        `timeout` is for RQ: a thread cannot be stopped from outside, so here a job runs
        as long as it needs (the long ones work in bounded batches anyway).
        """
        self._ensure_thread()
        if unique and job_id:
            with self._lock:
                if job_id in self._waiting:
                    return
                self._waiting.add(job_id)
        self._jobs.put((path, args, job_id if unique else None))

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="inline-jobs", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            path, args, unique_id = self._jobs.get()
            if unique_id:
                with self._lock:
                    self._waiting.discard(unique_id)
            try:
                call_path(path, *args)
            except Exception:
                log.exception("in-process job %s failed; the sweeper will retry it", path)
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

    def enqueue(
        self,
        queue_name: str,
        path: str,
        *args,
        timeout: int | None = None,
        job_id: str | None = None,
        unique: bool = False,
    ) -> None:
        """Queue a job that RQ stops after `timeout` seconds (None: RQ's 180 s, which
        every job of ours overrides); with `unique`, not while one with the same id
        still waits."""
        from rq import Queue

        queue = Queue(queue_name, connection=self.redis)
        if not (unique and job_id):
            self._put(queue, path, args, job_id, timeout)
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
                self._put(queue, path, args, slot, timeout)
        finally:
            self.redis.delete(guard)

    @staticmethod
    def _put(queue, path: str, args: tuple, job_id: str | None, timeout: int | None) -> None:
        # No RQ retries: a failed batch stays staged and the sweeper enqueues it again.
        queue.enqueue_call(
            path,
            args=args,
            job_id=job_id,
            timeout=timeout,
            result_ttl=0,
            failure_ttl=7 * 24 * 3600,
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
        from rq.job import Job

        status = self.redis.hget(Job.key_for(job_id), "status")
        return status.decode() if status else None

    def discard(self, job_id: str) -> None:
        """Forget a job (e.g. one orphaned by a killed worker) before enqueueing it afresh."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        with contextlib.suppress(NoSuchJobError):
            Job.fetch(job_id, connection=self.redis).delete()

    def forget(self, queue_name: str, job_ids: list[str]) -> None:
        """Take waiting jobs off the queue (a worker already did their work): each would
        cost a worker a few milliseconds of RQ bookkeeping to find nothing to do. A job
        some worker has already taken stays as it is and finds nothing."""
        from rq import Queue
        from rq.job import Job

        queue = Queue(queue_name, connection=self.redis)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.lrem(queue.key, 0, job_id)
            removed = pipe.execute()
        # Their records go too, so the sweeper never mistakes one for a job still waiting.
        gone = [Job.key_for(j) for j, count in zip(job_ids, removed, strict=True) if count]
        if gone:
            self.redis.delete(*gone)

    def depth(self) -> int:
        from rq import Queue

        return sum(Queue(name, connection=self.redis).count for name in ALL_QUEUES)

    def ping(self) -> None:
        self.redis.ping()


_queue: InlineQueue | RQQueue | None = None


def init_queue(redis_url: str) -> InlineQueue | RQQueue:
    global _queue
    _queue = RQQueue(redis_url) if redis_url else InlineQueue()
    return _queue


def get_queue() -> InlineQueue | RQQueue:
    if _queue is None:
        from server.config import Config

        init_queue(Config.from_env().REDIS_URL)
    return _queue


def enqueue_batch(batch_id: int) -> bool:
    """Hand a stored batch to the workers; False (logged) when the queue is down.

    The batch is already durable, so a failure here only delays it until the sweeper runs.
    """
    try:
        get_queue().enqueue(
            INGEST_QUEUE,
            PROCESS_BATCH,
            batch_id,
            timeout=BATCH_JOB_TIMEOUT,
            job_id=batch_job_id(batch_id),
        )
        return True
    except Exception as exc:  # redis.ConnectionError, TimeoutError, ...
        log.warning("could not enqueue batch %s (%s); the sweeper will retry", batch_id, exc)
        return False


# A job in these states will run without our help.
WAITING_STATES = frozenset({"queued", "scheduled", "deferred"})


def requeue_batch(batch_id: int) -> str:
    """Queue a staged batch's job again unless it still waits: "enqueued", "waiting" or
    "down" (logged). A job orphaned by a killed worker is replaced, not run twice."""
    queue = get_queue()
    job_id = batch_job_id(batch_id)
    job_status = getattr(queue, "job_status", None)
    if job_status is not None:
        try:
            if job_status(job_id) in WAITING_STATES:
                return "waiting"
            queue.discard(job_id)
        except Exception as exc:
            log.warning("cannot reach the queue to requeue batch %s (%s)", batch_id, exc)
            return "down"
    return "enqueued" if enqueue_batch(batch_id) else "down"


def forget_batches(batch_ids: list[int]) -> None:
    """The jobs of batches a worker processed along with its own need not run (best effort)."""
    try:
        get_queue().forget(INGEST_QUEUE, [batch_job_id(b) for b in batch_ids])
    except Exception as exc:  # they run and find nothing: slower, not wrong
        log.debug(
            "could not take %s processed batches' jobs off the queue (%s)", len(batch_ids), exc
        )


def batch_job_id(batch_id: int) -> str:
    return f"batch-{batch_id}"


EXPORT = "worker.export.run_export"
EXPORT_JOB_ID = "lake-export"
COMPACTION = "worker.export.run_compaction"
COMPACTION_JOB_ID = "lake-compaction"


def enqueue_export() -> None:
    """Ask for hot rows to move into the columnar store; one such job waits at a time.

    The job itself decides whether enough rows or time has built up (worker.export), so
    asking after every batch costs a no-op at most. On the lake queue, which workers take
    from first, so sustained ingest cannot starve it: the hot table stays small and the
    dashboard fast.
    """
    _enqueue_unique(EXPORT, EXPORT_JOB_ID)


# The web asks for an export at most this often per process. Each ask that finds no job
# waiting queues one, and a job costs several Redis round trips and a few ms of a
# worker's CPU: asked after every batch, a 300-batch round of bench/ingest.py ran 249
# export jobs, nearly all with nothing due. The job decides whether an export is due
# (worker.export._due), and the schedule runs it every LAKE_EXPORT_SECONDS anyway.
EXPORT_ASK_SECONDS = 1.0
_export_asked = {"at": float("-inf")}
_export_ask_lock = threading.Lock()


def ask_for_export() -> None:
    """enqueue_export, at most once every EXPORT_ASK_SECONDS in this process."""
    now = time.monotonic()
    with _export_ask_lock:
        if now - _export_asked["at"] < EXPORT_ASK_SECONDS:
            return
        _export_asked["at"] = now
    enqueue_export()


def enqueue_compaction() -> None:
    """Ask for the store's small files to be merged (after an export wrote some)."""
    _enqueue_unique(COMPACTION, COMPACTION_JOB_ID)


def _enqueue_unique(path: str, job_id: str) -> None:
    try:
        get_queue().enqueue(LAKE_QUEUE, path, job_id=job_id, unique=True, timeout=EXPORT_TIMEOUT)
    except Exception as exc:
        log.warning("could not enqueue %s (%s); the schedule will run one", job_id, exc)


SEND_ALERTS = "worker.alerts.send_due"
SEND_ALERTS_JOB_ID = "alert-deliveries"
# A run sends at most worker.alerts.SEND_LIMIT notifications of at most 15 s each.
SEND_ALERTS_TIMEOUT = 600


def enqueue_alert_sending() -> None:
    """Ask for pending notifications to be sent now; one such job waits at a time (the
    schedule runs one every minute anyway, so a failure here only delays them)."""
    try:
        get_queue().enqueue(
            ALERT_QUEUE,
            SEND_ALERTS,
            job_id=SEND_ALERTS_JOB_ID,
            unique=True,
            timeout=SEND_ALERTS_TIMEOUT,
        )
    except Exception as exc:
        log.warning("could not enqueue alert sending (%s); the schedule will run it", exc)
