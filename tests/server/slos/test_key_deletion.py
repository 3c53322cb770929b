"""Deleting a key (DELETE /api/data) deletes its SLOs with their rules, its deploys, its
frozen usage months and its ingest health: every per-key table of issue 35 cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from server.alerts.models import release_alerts
from server.deploys.models import deploys
from server.ingest_health.models import (
    ingest_clients,
    ingest_days,
    ingest_reasons,
    ingest_refusals,
)
from server.keys.api_keys import lookup_key
from server.models import alert_incidents, alert_rules
from server.slos.models import slos
from server.usage.models import usage_counts, usage_months, usage_notices, usage_webhooks
from tests.helpers import post_batch, row

TABLES = (slos, alert_rules, deploys, usage_months, usage_counts, ingest_days, ingest_reasons,
          ingest_clients, ingest_refusals, release_alerts, usage_webhooks,
          usage_notices)  # fmt: skip


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
    made = stack.client.post("/api/deploys", json={"version": "1"}, headers=auth)
    assert made.status_code == 201
    rule = {"kind": "release_regression", "window_minutes": 60}
    rule_id = stack.client.post("/api/alerts", json=rule, headers=auth).get_json()["id"]
    hook = {"url": "https://93.184.215.14/usage"}  # a public address: no DNS needed
    assert stack.client.put("/api/usage/webhook", json=hook, headers=auth).status_code == 200
    now = datetime.now(UTC)
    with stack.engine.begin() as conn:  # what an evaluation and a month's close leave
        key_id = lookup_key(conn, key)
        incident = conn.execute(alert_incidents.insert().values(
            key_id=key_id, rule_id=rule_id, started_at=now, summary="x"
        ).returning(alert_incidents.c.id)).scalar_one()  # fmt: skip
        conn.execute(release_alerts.insert().values(
            rule_id=rule_id, deploy_id=made.get_json()["id"], incident_id=incident))  # fmt: skip
        conn.execute(usage_notices.insert().values(
            key_id=key_id, month=202611, status="sent", attempts=1, next_attempt_at=now,
            created_at=now))  # fmt: skip
    month = last_month.strftime("%Y-%m")
    assert stack.client.get(f"/api/usage?month={month}", headers=auth).get_json()["final"]
    assert stack.client.get("/api/ingest/health", headers=auth).status_code == 200  # flushed
    assert all(counts(stack).values()), counts(stack)

    assert stack.client.delete("/api/data", headers=auth).status_code in (200, 204)
    assert not any(counts(stack).values()), counts(stack)
