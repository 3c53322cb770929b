"""The RQ queue's unique jobs: asked for while the same job runs, a run follows it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.services import wait_for
from server.queue import Job, RQQueue


@pytest.mark.redis
def test_a_unique_job_asked_for_while_it_runs_runs_again_after(redis_url, tmp_path):
    queue = RQQueue(redis_url)
    queue.redis.flushdb()
    follow_up = tmp_path / "follow-up-ran"
    queue.enqueue(Job(time.sleep, "ingest", 30), 3, job_id="export", unique=True)
    worker = subprocess.Popen(
        # Our worker class: RQ's own could take up to 60 s to stop (worker.rq_worker).
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--burst",
            "--url",
            redis_url,
            "--worker-class",
            "worker.rq_worker.Worker",
            "ingest",
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: queue.job_status("export") == "started")
        # Asked for again while it runs (an export after each batch): a second run is
        # queued under the follow-up id, once, however often it is asked for.
        for _ in range(3):
            queue.enqueue(
                Job(os.makedirs, "ingest", 30), str(follow_up), job_id="export", unique=True
            )
        assert queue.job_status("export-next") == "queued"
        output, _ = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 0, output
    # Before, the request overwrote the running job's record, RQ's cleanup of the first
    # run deleted it, and the follow-up never ran.
    assert follow_up.is_dir(), output
    assert "Traceback" not in output and "exception raised" not in output, output
    assert queue.job_status("export") is None and queue.job_status("export-next") is None


@pytest.mark.redis
def test_a_job_record_without_status_counts_as_no_job(redis_url):
    """RQ deletes a finished job's record; caught between its fields going and the key
    going (what fetching the job then its status ran into under load: "Failed to retrieve
    status for job"), the job is gone, and asking for it again queues it."""
    from rq import Queue
    from rq.job import Job as RQJob

    queue = RQQueue(redis_url)
    queue.redis.flushdb()
    queue.redis.hset(RQJob.key_for("export-next"), "origin", "lake")
    assert queue.job_status("export-next") is None
    queue.enqueue(Job(os.getpid, "lake", 30), job_id="export", unique=True)
    assert queue.job_status("export") == "queued"
    assert Queue("lake", connection=queue.redis).job_ids == ["export"]


def test_workers_take_the_lake_queue_first():
    """Export and compaction jobs wait behind no backlog of batches."""
    from server.queue import ALL_QUEUES, INGEST_QUEUE, LAKE_QUEUE

    assert ALL_QUEUES[0] == LAKE_QUEUE and INGEST_QUEUE in ALL_QUEUES[1:]


@pytest.mark.redis
def test_a_unique_job_asked_for_at_once_by_many_is_queued_once(redis_url):
    """Web processes and workers ask for the export after every batch, often at the same
    instant. Each used to see no such job waiting and queue it, so its id stood in the
    queue twice, two workers ran it at once, and the second's cleanup found the record
    the first had deleted (under load: "Failed to retrieve status for job:
    lake-export-next", with a traceback)."""
    import threading

    from rq import Queue

    queues = [RQQueue(redis_url) for _ in range(12)]
    queues[0].redis.flushdb()
    for attempt in range(10):
        start = threading.Barrier(len(queues))

        def ask(queue, start=start):
            start.wait()
            queue.enqueue(Job(os.getpid, "lake", 30), job_id="export", unique=True)

        threads = [threading.Thread(target=ask, args=(q,)) for q in queues]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        waiting = Queue("lake", connection=queues[0].redis).job_ids
        assert waiting == ["export"], f"attempt {attempt}: {waiting}"
        queues[0].redis.flushdb()
