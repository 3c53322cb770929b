"""Faults: a worker SIGKILLed mid-batch (of batches the web staged), Redis down during ingest.
Nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from bench.services import wait_for
from server.keys.api_keys import lookup_key
from server.lake.models import requests
from server.models import ingest_batches
from tests.conftest import ROOT, postgres_stack
from tests.helpers import post_batch, row, web_write_fails

pytestmark = pytest.mark.slow


def start_worker(stack) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": stack.config.DATABASE_URL,
        "REDIS_URL": stack.config.REDIS_URL,
        "GEOIP_DB": stack.config.GEOIP_DB,
        "DATA_DIR": stack.config.DATA_DIR,
        "LAKE_URL": stack.config.LAKE_URL,
        "LOG_LEVEL": "WARNING",
    }
    # Its own process group: killing it also kills RQ's forked scheduler, as a container stop would.
    return subprocess.Popen(
        [sys.executable, "-m", "worker"], cwd=ROOT, env=env, start_new_session=True
    )


def counts(stack, key_id) -> tuple[int, int, int]:
    """(rows stored, distinct paths stored, batches still staged)."""
    with stack.engine.connect() as conn:
        stored, distinct = conn.execute(
            select(func.count(), func.count(requests.c.path.distinct())).where(
                requests.c.key_id == key_id
            )
        ).one()
        staged = conn.execute(
            select(func.count()).where(ingest_batches.c.key_id == key_id)
        ).scalar()
    return stored, distinct, staged


def attempts(stack, key_id) -> dict[int, int]:
    """Staged batch id -> attempts counted (a worker counts one before it starts a batch)."""
    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(ingest_batches.c.id, ingest_batches.c.attempts).where(
                ingest_batches.c.key_id == key_id
            )
        )
        return dict(rows.all())


@pytest.fixture
def stack(pg_url, redis_url, tmp_path, geoip_db):
    return postgres_stack(pg_url, redis_url, tmp_path, GEOIP_DB=geoip_db)


def ingest(stack, key, batches: int, size: int, tag: str) -> int:
    for b in range(batches):
        rows = [row(path=f"/{tag}/{b}/{i}", user_agent=f"agent-{i % 50}") for i in range(size)]
        response = post_batch(stack.client, key, rows)
        assert response.status_code == 201, response.get_json()
    return batches * size


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(stack, monkeypatch):
    web_write_fails(monkeypatch)  # the batches are staged, for the workers to store
    key = stack.new_key()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    total = ingest(stack, key, batches=24, size=4000, tag="kill")

    killed_mid_batch = False
    for _attempt in range(5):
        before = attempts(stack, key_id)
        worker = start_worker(stack)
        try:
            # Kill as soon as it has started a batch, while its rows are uncommitted.
            wait_for(
                lambda b=before: sum(attempts(stack, key_id).values()) > sum(b.values()),
                "the worker to start a batch",
                timeout=60,
                interval=0.005,
            )
            time.sleep(0.02)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        after = attempts(stack, key_id)
        # A batch still staged with one more attempt was being processed when killed.
        if any(after[i] > before.get(i, 0) for i in after):
            killed_mid_batch = True
            break
    assert killed_mid_batch, "the worker was never caught inside a batch"

    worker = start_worker(stack)
    try:
        wait_for(lambda: counts(stack, key_id)[2] == 0, timeout=180)
    finally:
        worker.terminate()
        worker.wait(20)
    stored, distinct, staged = counts(stack, key_id)
    assert (stored, distinct, staged) == (total, total, 0)


@pytest.mark.parametrize("written", ["by the web", "staged"])
def test_redis_down_during_ingest_loses_nothing(stack, redis_server, written, monkeypatch):
    from server.ingest.sweep import sweep

    if written == "staged":
        web_write_fails(monkeypatch)

    key = stack.new_key()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    worker = start_worker(stack)
    try:
        first = ingest(stack, key, batches=2, size=500, tag="before")
        wait_for(lambda: counts(stack, key_id)[0] == first)

        redis_server.stop()
        # Accepted means durable: 201 while the queue is down.
        during = ingest(stack, key, batches=3, size=500, tag="during")
        assert stack.client.get("/api/health").status_code == 503
        stored_now, _, staged_now = counts(stack, key_id)
        if written == "staged":
            assert staged_now == 3  # waiting for Redis and the sweeper
        else:
            assert (stored_now, staged_now) == (first + during, 0)  # stored by the web itself
        redis_server.start()

        # What the scheduler's periodic sweep does once Redis is back.
        wait_for(
            lambda: sweep(min_age_seconds=0) or counts(stack, key_id)[2] == 0,
            timeout=60,
            interval=0.5,
        )
        after = ingest(stack, key, batches=1, size=500, tag="after")
        wait_for(lambda: counts(stack, key_id)[0] == first + during + after, timeout=120)
    finally:
        worker.terminate()
        worker.wait(20)
    assert counts(stack, key_id) == (first + during + after, first + during + after, 0)
