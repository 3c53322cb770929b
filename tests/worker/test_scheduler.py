"""The schedule: declared once, reconciled with stable ids, never doubled by restarts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from server.ingest.sweep import sweep
from server.jobs import Periodic, periodic_jobs
from server.queue import MAINTENANCE_QUEUE, Job
from tests.conftest import make_config
from worker.scheduler import next_round, reconcile, run_id, schedule_next_runs, scheduled_runs


@pytest.fixture
def redis(redis_url):
    from redis import Redis

    return Redis.from_url(redis_url)


def jobs_for(tmp_path, **overrides):
    return periodic_jobs(make_config("sqlite://", "", tmp_path, **overrides))


def names(ids):
    return sorted(i.rsplit("-", 1)[0] for i in ids)


def test_the_list_holds_every_periodic_job(tmp_path):
    jobs = {job.name: job for job in jobs_for(tmp_path, MONITOR_INTERVAL_SECONDS=120)}
    assert set(jobs) == {
        "uptime-checks",
        "stale-batch-sweep",
        "lake-export",
        "lake-compaction",
        "alert-evaluation",
        "alert-sending",
        "retention",
        "usage-close",
    }
    assert jobs["alert-evaluation"].interval == 60 and jobs["alert-sending"].interval == 60
    assert jobs["alert-evaluation"].args_for(1200) == (1200,)  # evaluated at its round's start
    assert all(job.timeout > 0 for job in jobs.values())
    assert jobs["uptime-checks"].interval == 120
    assert jobs["stale-batch-sweep"].interval == 60
    assert jobs["stale-batch-sweep"].args_for(1) == (60,)  # SWEEP_AFTER_SECONDS
    assert jobs["retention"].interval == 24 * 3600
    assert jobs["usage-close"].interval == 300 and jobs["usage-close"].args_for(1200) == (1200,)
    assert jobs["uptime-checks"].args_for(1200) == (1200,)


def test_the_tail_of_a_burst_is_exported_every_lake_export_seconds(tmp_path):
    """The export after a burst's last batch runs on the schedule: as often as
    LAKE_EXPORT_SECONDS lets rows wait, at most every 30 s, never in a busy loop."""
    interval = {s: {j.name: j for j in jobs_for(tmp_path, LAKE_EXPORT_SECONDS=s)}
                for s in (10, 0, 120)}  # fmt: skip
    assert interval[10]["lake-export"].interval == 10
    assert interval[0]["lake-export"].interval == 1
    assert interval[120]["lake-export"].interval == 30
    assert interval[10]["lake-compaction"].interval == 30


def test_rounds_are_the_same_for_every_scheduler():
    assert next_round(300, 1_000_000.0) == 1_000_200
    assert next_round(300, 1_000_200.0) == 1_000_500  # strictly after now
    assert next_round(60, 59.9) == 60


def test_two_starts_leave_one_set_of_jobs(redis, tmp_path):
    jobs = jobs_for(tmp_path)
    first = reconcile(redis, jobs)
    second = reconcile(redis, jobs)  # a restart, or a second scheduler
    assert first == second
    assert scheduled_runs(redis) == sorted(first)
    assert names(first) == [
        "periodic-alert-evaluation",
        "periodic-alert-sending",
        "periodic-lake-compaction",
        "periodic-lake-export",
        "periodic-retention",
        "periodic-stale-batch-sweep",
        "periodic-uptime-checks",
        "periodic-usage-close",
    ]


def test_concurrent_schedulers_schedule_each_round_once(redis, tmp_path):
    from rq import Queue

    jobs = jobs_for(tmp_path)
    now = time.time()
    barrier = threading.Barrier(4)

    def start():
        barrier.wait()
        reconcile(redis, jobs, now)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(scheduled_runs(redis)) == len(jobs)
    # Nothing was pushed onto a queue directly: the runs wait for their time.
    assert all(Queue(job.queue, connection=redis).count == 0 for job in jobs)


def test_a_round_that_already_ran_is_not_scheduled_again(redis, tmp_path):
    from rq.registry import ScheduledJobRegistry

    jobs = jobs_for(tmp_path)
    now = time.time()
    ids = schedule_next_runs(redis, jobs, now)
    # A worker took the runs (they left the registry); a late scheduler comes by.
    for job, job_id in zip(jobs, ids, strict=True):
        ScheduledJobRegistry(job.queue, connection=redis).remove(job_id)
    schedule_next_runs(redis, jobs, now)
    reconcile(redis, jobs, now)
    assert scheduled_runs(redis) == []


def test_a_changed_schedule_replaces_the_old_runs(redis, tmp_path):
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    now = time.time()
    old = reconcile(redis, jobs_for(tmp_path, MONITOR_INTERVAL_SECONDS=300), now)
    new = reconcile(
        redis, jobs_for(tmp_path, MONITOR_INTERVAL_SECONDS=7, SWEEP_AFTER_SECONDS=5), now
    )
    assert scheduled_runs(redis) == sorted(new)
    assert names(new) == names(old)
    uptime = next(i for i in new if i.startswith("periodic-uptime-checks-"))
    assert uptime == f"periodic-uptime-checks-{next_round(7, now)}"
    sweep = next(i for i in new if i.startswith("periodic-stale-batch-sweep-"))
    assert tuple(Job.fetch(sweep, connection=redis).args) == (5,)
    for job_id in set(old) - set(new):
        with pytest.raises(NoSuchJobError):
            Job.fetch(job_id, connection=redis)


def test_runs_no_longer_declared_are_cancelled(redis, tmp_path):
    gone = Periodic(Job(sweep, MAINTENANCE_QUEUE, 60, name="old-report"), 600, 60, (0,))
    jobs = jobs_for(tmp_path)
    reconcile(redis, [*jobs, gone])
    assert "periodic-old-report" in names(scheduled_runs(redis))
    reconcile(redis, jobs)
    assert "periodic-old-report" not in names(scheduled_runs(redis))
    assert len(scheduled_runs(redis)) == len(jobs)


def test_a_due_run_is_left_for_the_workers(redis, tmp_path):
    from rq import Queue

    job = Periodic(Job(sweep, MAINTENANCE_QUEUE, 60, name="soon"), 600, 60, (0,))
    past = int(time.time()) - 5
    Queue(job.queue, connection=redis).enqueue_at(
        datetime.fromtimestamp(past, UTC), job.func, args=(0,), job_id=run_id(job, past)
    )
    reconcile(redis, jobs_for(tmp_path))
    assert run_id(job, past) in scheduled_runs(redis)


def test_the_embedded_timer_starts_when_serving_but_not_for_a_command(tmp_path):
    import click
    from click.testing import CliRunner

    from worker.scheduler import start_in_process, stop_in_process

    config = make_config(f"sqlite:///{tmp_path / 'db'}", "", tmp_path)
    started = []

    @click.command("retention")
    def command():
        started.append(start_in_process(config))

    assert CliRunner().invoke(command).exit_code == 0
    assert started == [None]
    assert not (tmp_path / "scheduler.lock").exists()

    try:
        scheduler = start_in_process(config)  # as under gunicorn: no click context
        assert scheduler is not None
        assert start_in_process(config) is scheduler  # once per process
    finally:
        stop_in_process()


def test_make_run_starts_the_scheduler_beside_web_and_worker(tmp_path):
    from server.runtime.run import plan

    with_redis = make_config("sqlite://", "redis://127.0.0.1:1/0", tmp_path)
    parts = {part.name: part.argv for part in plan(with_redis, "127.0.0.1", 8000)}
    assert set(parts) == {"web", "worker", "scheduler"}
    assert parts["scheduler"][-3:] == ["-m", "worker", "scheduler"]
    embedded = make_config("sqlite://", "", tmp_path)
    assert [part.name for part in plan(embedded, "127.0.0.1", 8000)] == ["web"]
