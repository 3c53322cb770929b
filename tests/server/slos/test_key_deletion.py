"""Deleting a key (DELETE /api/data) deletes its SLOs with their rules, its deploys, its
frozen usage months and its ingest health: every per-key table of issue 35 cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from server.deploys.models import deploys
from server.ingest_health.models import (
    ingest_clients,
    ingest_days,
    ingest_reasons,
    ingest_refusals,
)
from server.models import alert_rules
from server.slos.models import slos
from server.usage.models import usage_counts, usage_months
from tests.helpers import post_batch, row

TABLES = (slos, alert_rules, deploys, usage_months, usage_counts, ingest_days, ingest_reasons,
          ingest_clients, ingest_refusals)  # fmt: skip


def counts(stack) -> dict:
    with stack.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in TABLES}


def test_deleting_a_key_deletes_everything_of_issue_35(sqlite_app):
    stack, key = sqlite_app, sqlite_app.new_key()
    auth = {"X-AUTH-TOKEN": key}
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = first - timedelta(days=40)  # closed more than an hour ago, whenever run
    rows = [row(created_at=last_month.isoformat()), row(status="bad")]
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    body = {"name": "API", "objective": "availability", "target": 99.9}
    assert stack.client.post("/api/slos", json=body, headers=auth).status_code == 201
    assert stack.client.post("/api/deploys", json={"version": "1"}, headers=auth).status_code == 201
    month = last_month.strftime("%Y-%m")
    assert stack.client.get(f"/api/usage?month={month}", headers=auth).get_json()["final"]
    assert stack.client.get("/api/ingest/health", headers=auth).status_code == 200  # flushed
    assert all(counts(stack).values()), counts(stack)

    assert stack.client.delete("/api/data", headers=auth).status_code in (200, 204)
    assert not any(counts(stack).values()), counts(stack)
