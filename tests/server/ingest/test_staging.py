"""PostgreSQL: one job stores a group of waiting batches, exactly once, and a batch that
failed before is never grouped."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text, update

from server.ingest import staging as enrich
from server.keys.api_keys import lookup_key
from server.lake.models import requests
from server.models import ingest_batches
from server.queue import INGEST_QUEUE
from tests.helpers import post_batch, row, web_write_fails


@pytest.fixture
def stack(pg_app):
    return pg_app


@pytest.fixture(autouse=True)
def staged(monkeypatch):
    """Every batch posted here is staged: the web's own write fails."""
    web_write_fails(monkeypatch)


def stage(stack, key, batches: int, size: int, tag: str) -> list[int]:
    """Post batches (staged; their jobs wait in Redis: no worker runs) and return their ids."""
    for b in range(batches):
        rows = [row(path=f"/{tag}/{b}/{i}") for i in range(size)]
        assert post_batch(stack.client, key, rows).status_code == 201
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        return list(
            conn.execute(
                select(ingest_batches.c.id)
                .where(ingest_batches.c.key_id == key_id)
                .order_by(ingest_batches.c.id)
            ).scalars()
        )


def waiting_jobs(stack) -> int:
    """Batch jobs waiting (an export job may wait on the same queue)."""
    from rq import Queue

    queue = Queue(INGEST_QUEUE, connection=stack.app.extensions["job_queue"].redis)
    return sum(1 for job_id in queue.job_ids if job_id.startswith("batch-"))


def stored(stack, key) -> tuple[int, int]:
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        query = select(func.count(), func.count(requests.c.path.distinct())).where(
            requests.c.key_id == key_id
        )
        return tuple(conn.execute(query).one())


def test_one_job_stores_the_waiting_batches_and_takes_their_jobs_off_the_queue(stack):
    key = stack.new_key()
    ids = stage(stack, key, batches=5, size=200, tag="group")
    assert waiting_jobs(stack) == 5

    assert enrich.process_batch(ids[0]) == 1000
    assert stored(stack, key) == (1000, 1000)
    # The other four batches were stored with the first: their jobs are off the queue
    # (the first one's job is still there: this test ran the job by hand).
    assert waiting_jobs(stack) == 1
    # Their records are gone too: the sweeper would not take one for a job still waiting.
    from rq.job import Job

    redis = stack.app.extensions["job_queue"].redis
    assert [Job.exists(f"batch-{i}", connection=redis) for i in ids] == [True] + [False] * 4
    with stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ingest_batches)).scalar() == 0
    # Their jobs, had they run, find nothing: nothing is stored twice.
    assert [enrich.process_batch(i) for i in ids[1:]] == [0, 0, 0, 0]
    stack.process_jobs()
    assert stored(stack, key) == (1000, 1000)


def test_a_group_holds_about_group_rows(stack, monkeypatch):
    monkeypatch.setattr(enrich, "GROUP_ROWS", 600)
    key = stack.new_key()
    ids = stage(stack, key, batches=5, size=200, tag="size")
    assert enrich.process_batch(ids[0]) == 600  # its own batch and two more
    assert enrich.process_batch(ids[3]) == 400
    assert stored(stack, key) == (1000, 1000)


def test_a_batch_that_failed_runs_alone_and_is_never_grouped(stack):
    key = stack.new_key()
    ids = stage(stack, key, batches=3, size=100, tag="failed")
    # The second batch already crashed a worker once.
    with stack.engine.begin() as conn:
        conn.execute(update(ingest_batches).where(ingest_batches.c.id == ids[1]).values(attempts=1))

    assert enrich.process_batch(ids[0]) == 200  # itself and the third, not the second
    with stack.engine.connect() as conn:
        left = conn.execute(select(ingest_batches.c.id)).scalars().all()
    assert left == [ids[1]]
    # On its retry it is processed on its own, even with another batch waiting.
    later = stage(stack, key, batches=1, size=100, tag="later")[-1]
    assert enrich.process_batch(ids[1]) == 100
    assert enrich.process_batch(later) == 100
    assert stored(stack, key) == (400, 400)


def test_staged_payloads_are_compressed_with_lz4(stack):
    with stack.engine.connect() as conn:
        method = conn.execute(
            text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'ingest_batches'::regclass AND attname = 'payload'"
            )
        ).scalar()
    assert method == "l"
