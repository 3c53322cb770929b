"""Backpressure: past INGEST_BACKLOG_ROWS (or INGEST_LAG_SECONDS) ingest answers 429 with
Retry-After, on /api/log-request and /v1/traces, with gunicorn and a real worker; nothing
refused is stored, nothing accepted is lost, and once the backlog is written the same
batch is taken."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from bench.services import running_stack
from server.config import Config
from server.db import utcnow
from server.ingest.backlog import RETRY_SECONDS, Backlog, overload
from server.lake import catalog
from server.lake.models import requests
from tests.conftest import ROOT
from tests.helpers import payload, row
from tests.otlp.messages import NEW, export, resource, span

pytestmark = pytest.mark.slow

BOUND = 50
BATCH = 20


def stored(db) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(requests)).scalar()


def waiting(db) -> int:
    """Hot rows past the boundary (ids, as the check reads them)."""
    with db.connect() as conn:
        return conn.execute(select(func.max(requests.c.id))).scalar() - catalog.exported_id(conn)


def test_past_the_backlog_bound_ingest_is_429_and_nothing_accepted_is_lost(
    fresh_pg_url, redis_url, tmp_path, monkeypatch
):
    settings = {
        "INGEST_BACKLOG_ROWS": str(BOUND),
        # No export but the one the test asks for: the backlog stays until then.
        "LAKE_EXPORT_ROWS": "1000000",
        "LAKE_EXPORT_SECONDS": "3600",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    db = create_engine(fresh_pg_url)
    data_dir = str(tmp_path / "data")
    with running_stack(
        fresh_pg_url, redis_url, web_workers=1, threads=2, data_dir=data_dir
    ) as base:
        client = httpx.Client(base_url=base, timeout=30)
        key = client.post("/api/keys").json()["api_key"]

        def send(n: int):
            rows = [row(path=f"/b{n}/{i}") for i in range(BATCH)]
            return client.post("/api/log-request", json=payload(key, rows))

        accepted = 0
        for n in range(3):  # 60 rows past the boundary: over the bound of 50
            assert send(n).status_code == 201
            accepted += 1
        time.sleep(1.2)  # the check is made at most once a second a process

        refused = send(3)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == str(RETRY_SECONDS)
        message = refused.json()["message"]
        assert f"{waiting(db)} accepted rows wait" in message and waiting(db) > BOUND
        assert "INGEST_BACKLOG_ROWS is 50" in message
        assert "Nothing of this batch was stored" in message
        body = export(resource([span(NEW)])).SerializeToString()
        traces = client.post(
            "/v1/traces", content=body,
            headers={"Content-Type": "application/x-protobuf", "X-AUTH-TOKEN": key},
        )  # fmt: skip
        assert traces.status_code == 429
        assert traces.headers["Retry-After"] == str(RETRY_SECONDS)
        assert stored(db) == accepted * BATCH  # the refused rows are not stored

        # An operator (or the export job) writes the backlog out; the batch is taken again.
        env = {**os.environ, "DATABASE_URL": fresh_pg_url, "DATA_DIR": data_dir,
               "REDIS_URL": redis_url}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "lake", "export"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        time.sleep(1.2)
        again = send(3)
        assert again.status_code == 201, again.text
        accepted += 1
        assert (
            client.post(
                "/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf", "X-AUTH-TOKEN": key},
            ).status_code
            == 200
        )
        rows = client.get("/api/data", headers={"X-AUTH-TOKEN": key}).json()
        paths = {r["path"] for r in rows}
        assert len([p for p in paths if p.startswith("/b")]) == accepted * BATCH
    db.dispose()


def test_the_lag_bound_counts_staged_batches_nobody_can_see_yet():
    settings = Config.from_env(environ={}, TESTING=True, INGEST_LAG_SECONDS=60)
    now = utcnow()
    late = Backlog(unexported=0, staged=40, oldest_staged=now - timedelta(seconds=90))
    reason = overload(late, settings, now)
    assert reason and "waited 90 s" in reason and "INGEST_LAG_SECONDS is 60" in reason
    assert overload(Backlog(0, 40, now - timedelta(seconds=30)), settings, now) is None
    assert overload(Backlog(900_000, 0, None), settings, now) is None  # under 1,000,000
    assert overload(Backlog(900_000, 200_000, None), settings, now)
    off = Config.from_env(environ={}, TESTING=True, INGEST_LAG_SECONDS=0, INGEST_BACKLOG_ROWS=0)
    assert overload(Backlog(10**9, 10**9, now - timedelta(days=1)), off, now) is None


def test_a_negative_bound_is_refused():
    from server.config import ConfigError

    with pytest.raises(ConfigError, match="INGEST_BACKLOG_ROWS must be 0 or more"):
        Config.from_env(environ={}, TESTING=True, INGEST_BACKLOG_ROWS=-1)
