"""Uptime checks run on the schedule: 200, 500, refused and hung URLs each recorded as they are.

PostgreSQL + Redis: the scheduler puts the round in RQ's scheduled registry and a
real RQ worker (burst, with its scheduler) moves it to the queue and runs it.
SQLite: the embedded mode's in-process timer runs the same job list.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bench.services import free_port
from server.jobs import periodic_jobs
from server.models import pings
from tests.conftest import postgres_stack, sqlite_stack
from tests.targets import TargetServer

CHECKS = {"timeout": 1, "interval": 2}


@pytest.fixture(scope="module")
def target():
    with TargetServer() as server:
        yield server


def uptime_settings():
    return {
        "MONITOR_ALLOW_PRIVATE": True,
        "MONITOR_TIMEOUT_SECONDS": CHECKS["timeout"],
        "MONITOR_INTERVAL_SECONDS": CHECKS["interval"],
    }


def create_monitors(stack, target) -> tuple[str, dict[str, int]]:
    key = stack.new_key()
    urls = {
        "ok": target.url("/ok"),
        "fail": target.url("/fail"),
        "refused": f"http://127.0.0.1:{free_port()}/",
        "hang": target.url("/hang"),
    }
    ids = {}
    for name, url in urls.items():
        response = stack.client.post(
            "/api/monitors", json={"url": url}, headers={"X-AUTH-TOKEN": key}
        )
        assert response.status_code == 201, response.get_json()
        ids[name] = response.get_json()["id"]
    return key, ids


def assert_outcomes(stack, key, ids) -> None:
    monitors = stack.client.get("/api/monitors", headers={"X-AUTH-TOKEN": key}).get_json()
    latest = {m["id"]: m["latest"] for m in monitors}
    uptime = {m["id"]: m["uptime"]["24h"] for m in monitors}
    assert latest[ids["ok"]]["status"] == 200 and latest[ids["ok"]]["error"] is None
    assert latest[ids["ok"]]["response_time"] >= 0
    assert latest[ids["fail"]]["status"] == 500 and latest[ids["fail"]]["error"] is None
    assert latest[ids["refused"]] | {"created_at": None} == {
        "created_at": None,
        "status": None,
        "response_time": None,
        "error": "connection refused",
    }
    assert (latest[ids["hang"]]["status"], latest[ids["hang"]]["error"]) == (None, "timeout")
    assert uptime == {ids["ok"]: 100.0, ids["fail"]: 0.0, ids["refused"]: 0.0, ids["hang"]: 0.0}
    for monitor_id in ids.values():
        pings_ = stack.client.get(
            f"/api/monitors/{monitor_id}/pings", headers={"X-AUTH-TOKEN": key}
        ).get_json()
        assert len(pings_) >= 1
        assert pings_[0] == latest[monitor_id]


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()) + 0.2)


def test_scheduled_checks_on_postgres_and_rq(fresh_pg_url, redis_url, tmp_path, target):
    from rq import Queue

    from server.monitors.checks import check_monitor
    from server.queue import ALL_QUEUES
    from worker.rq_worker import Worker
    from worker.scheduler import reconcile

    stack = postgres_stack(fresh_pg_url, redis_url, tmp_path, **uptime_settings())
    key, ids = create_monitors(stack, target)
    redis = stack.app.extensions["job_queue"].redis
    jobs = periodic_jobs(stack.config)
    uptime_job = next(job for job in jobs if job.name == "uptime-checks")

    scheduled = reconcile(redis, jobs)
    uptime_run = next(i for i in scheduled if i.startswith("periodic-uptime-checks-"))
    round_ts = int(uptime_run.rsplit("-", 1)[1])
    assert round_ts % uptime_job.interval == 0 and round_ts > time.time() - 1
    with stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(pings)).scalar_one() == 0

    wait_until(round_ts)
    queues = [Queue(name, connection=redis) for name in ALL_QUEUES]
    round_at = datetime.fromtimestamp(round_ts, UTC)

    def checked() -> int:
        with stack.engine.connect() as conn:
            query = select(func.count()).select_from(pings).where(pings.c.scheduled_at == round_at)
            return conn.execute(query).scalar_one()

    # A burst worker moves due scheduled jobs only if it gets RQ's scheduler lock; if
    # another scheduler holds it, that one moves the round, so look again.
    deadline = time.monotonic() + 60
    while checked() < len(ids) and time.monotonic() < deadline:
        Worker(queues, connection=redis).work(burst=True, with_scheduler=True)
        time.sleep(0.2)

    assert_outcomes(stack, key, ids)
    assert checked() == len(ids)

    # The same check job run again (a retry, a second enqueue) stores nothing twice.
    assert check_monitor(ids["ok"], round_ts) is None
    with stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(pings)).scalar_one() == len(ids)


def test_scheduled_checks_in_the_embedded_mode(tmp_path, target):
    from worker.scheduler import InProcessScheduler

    stack = sqlite_stack(tmp_path, **uptime_settings())
    key, ids = create_monitors(stack, target)
    scheduler = InProcessScheduler(periodic_jobs(stack.config), tmp_path / "scheduler.lock")
    assert scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with stack.engine.connect() as conn:
                checked = conn.execute(
                    select(func.count(func.distinct(pings.c.monitor_id)))
                ).scalar_one()
            if checked == len(ids):
                break
            time.sleep(0.2)
    finally:
        scheduler.stop()
    assert_outcomes(stack, key, ids)


def test_one_timer_per_install(tmp_path):
    from worker.scheduler import InProcessScheduler

    stack = sqlite_stack(tmp_path)
    first = InProcessScheduler(periodic_jobs(stack.config), tmp_path / "scheduler.lock")
    second = InProcessScheduler(periodic_jobs(stack.config), tmp_path / "scheduler.lock")
    assert first.start()
    try:
        assert not second.start()
    finally:
        first.stop()
    assert second.start()
    second.stop()
