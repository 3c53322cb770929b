"""Every job declares its timeout (RQ kills any job at 180 s otherwise); long jobs work in
bounded batches and go on in runs of their own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import func, select

from server import upkeep
from server.db import utcnow
from server.jobs import BATCH_JOB_TIMEOUT, SWEEP_JOB_TIMEOUT, periodic_jobs
from server.keys.api_keys import lookup_key
from server.lake.models import requests
from server.models import pings
from server.monitors.checks import check_all_monitors, check_timeout, store_ping
from server.monitors.probe import Outcome
from server.monitors.store import create_monitor
from tests.conftest import postgres_stack
from tests.helpers import days_ago, post_batch, row, web_write_fails
from worker.scheduler import reconcile

RQ_DEFAULT = 180


@pytest.fixture
def fresh(fresh_pg_url, redis_url, tmp_path):
    """Retention acts on the whole database: a database of its own."""
    return postgres_stack(fresh_pg_url, redis_url, tmp_path)


def redis_of(stack):
    return stack.app.extensions["job_queue"].redis


def test_every_job_we_enqueue_declares_its_timeout(fresh, monkeypatch):
    stack = fresh
    redis = redis_of(stack)
    web_write_fails(monkeypatch)  # the batch is staged: a batch job is queued
    key = stack.new_key()
    assert post_batch(stack.client, key, [row()]).status_code == 201
    (batch_job,) = [j for j in redis.keys("rq:job:batch-*")]
    assert Job.fetch(batch_job.decode().split(":")[-1], connection=redis).timeout == (
        BATCH_JOB_TIMEOUT
    )
    with stack.engine.begin() as conn:
        key_id = lookup_key(conn, key)
        monitor = create_monitor(conn, key_id, "http://1.1.1.1/", "GET", 10)
    check_all_monitors(1_700_000_000)
    check = Job.fetch(f"check-{monitor['id']}-1700000000", connection=redis)
    assert check.timeout == check_timeout(stack.config) == stack.config.MONITOR_TIMEOUT_SECONDS + 30

    jobs = periodic_jobs(stack.config)
    for job_id, job in zip(reconcile(redis, jobs), jobs, strict=True):
        assert Job.fetch(job_id, connection=redis).timeout == job.timeout, job.name
    timeouts = {job.name: job.timeout for job in jobs}
    assert timeouts["stale-batch-sweep"] == SWEEP_JOB_TIMEOUT
    assert timeouts["retention"] > RQ_DEFAULT


def test_the_sweeper_takes_a_bounded_number_of_batches_a_run(fresh, monkeypatch):
    from server.ingest.sweep import pending_batches

    stack = fresh
    web_write_fails(monkeypatch)  # the batches are staged
    key = stack.new_key()
    for _ in range(3):
        assert post_batch(stack.client, key, [row()]).status_code == 201
    with stack.engine.connect() as conn:
        everything = pending_batches(conn, 0)
        assert len(everything) == 3
        assert pending_batches(conn, 0, limit=2) == everything[:2]


def test_retention_with_its_budget_spent_goes_on_in_runs_of_its_own(fresh, monkeypatch):
    """A backlog larger than a run's budget: pings first, then the rest, run after run."""
    stack = fresh
    key = stack.new_key()
    with stack.engine.begin() as conn:
        key_id = lookup_key(conn, key)
        monitor_id = create_monitor(conn, key_id, "http://1.1.1.1/", "GET", 10)["id"]
    for age in range(100, 112):  # 12 pings past the 90 days kept
        moment = utcnow() - timedelta(days=age)
        store_ping(stack.engine, monitor_id, moment, moment, Outcome(200, 5, None))
    recent = utcnow() - timedelta(days=1)
    store_ping(stack.engine, monitor_id, recent, recent, Outcome(200, 5, None))
    rows = [row(path=f"/{i}", created_at=days_ago(400 + i)) for i in range(30)]
    assert post_batch(stack.client, key, [*rows, row(path="/new")]).status_code == 201
    stack.process_jobs()

    def counts():
        with stack.engine.connect() as conn:
            return (
                conn.execute(select(func.count()).where(pings.c.monitor_id == monitor_id)).scalar(),
                conn.execute(select(func.count()).where(requests.c.key_id == key_id)).scalar(),
            )

    assert counts() == (13, 31)
    monkeypatch.setattr(upkeep, "BATCH_SIZE", 5)
    upkeep.run_retention(0)  # a spent budget: one batch, then a run of its own is queued
    assert counts() == (8, 31)  # pings first
    from rq import Queue

    assert Queue("maintenance", connection=redis_of(stack)).count == 1
    stack.process_jobs()  # the runs that follow, one batch each
    assert counts() == (1, 1)
    assert Queue("maintenance", connection=redis_of(stack)).count == 0
