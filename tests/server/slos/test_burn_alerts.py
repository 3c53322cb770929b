"""Burn-rate alerts on replayed traffic: three days of steady requests (most exported to
Parquet, the rest hot), then a bad stretch, evaluated minute by minute as the scheduler
would. Each alert opens once, notifies its channel once, and resolves once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.alerts import evaluation
from server.lake.export import flush
from server.models import alert_deliveries, alert_incidents
from tests.conftest import sqlite_stack
from tests.helpers import post_batch, row

PER_MINUTE = 2  # steady traffic, the same rate throughout (the 3-day rate counts it)


def auth(key):
    return {"X-AUTH-TOKEN": key}


def replay(stack, key, start: datetime, minutes: int, bad_every) -> None:
    """PER_MINUTE requests a minute from `start`; request i answers 500 when
    bad_every(minute, i) says so. The older half is exported, the rest stays hot."""
    rows = []
    for m in range(minutes):
        for j in range(PER_MINUTE):
            i = m * PER_MINUTE + j
            at = start + timedelta(minutes=m, seconds=j * 60 / PER_MINUTE + 1)
            rows.append(row(status=500 if bad_every(m, i) else 200, created_at=at.isoformat()))
    half = len(rows) * 9 // 10
    for part, export in ((rows[:half], True), (rows[half:], False)):
        for s in range(0, len(part), 2000):
            assert post_batch(stack.client, key, part[s : s + 2000]).status_code == 201
        stack.process_jobs()
        if export:
            flush()


def slo_with_channel(stack, key, target: float, url: str) -> dict:
    channel = stack.client.post(
        "/api/alerts/channels", json={"kind": "webhook", "name": "ops", "url": url},
        headers=auth(key),
    ).get_json()  # fmt: skip
    body = {"name": "API", "objective": "availability", "target": target,
            "channel_ids": [channel["id"]]}  # fmt: skip
    made = stack.client.post("/api/slos", json=body, headers=auth(key))
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def incidents(stack, slo) -> list[tuple[str, datetime, datetime | None]]:
    """(rule kind, opened, resolved) of the SLO's incidents."""
    kinds = {r["id"]: r["kind"] for r in stack.client.get(
        "/api/alerts", headers=auth(stack.key)).get_json()}  # fmt: skip
    with stack.engine.connect() as conn:
        found = conn.execute(
            select(
                alert_incidents.c.rule_id,
                alert_incidents.c.started_at,
                alert_incidents.c.resolved_at,
            ).order_by(alert_incidents.c.id)  # fmt: skip
        ).all()
        deliveries = conn.execute(
            select(alert_deliveries.c.event, alert_deliveries.c.incident_id)
        ).all()
    assert sorted(e for e, _ in deliveries) == sorted(
        ["open"] * len(found) + ["resolve"] * sum(1 for f in found if f.resolved_at)
    )
    return [(kinds[f.rule_id], _utc(f.started_at), _utc(f.resolved_at)) for f in found]


def _utc(moment):
    if moment is None or moment.tzinfo:
        return moment
    return moment.replace(tzinfo=UTC)


@pytest.fixture
def burn_stack(tmp_path, geoip_db):
    # Embedded on SQLite (the evaluation sends in-process): the rates it reads are exact
    # on both backends (test_slos.py), and the incidents are the existing alerts' code.
    return sqlite_stack(tmp_path, MONITOR_ALLOW_PRIVATE=True, GEOIP_DB=geoip_db)


def test_a_ten_minute_outage_fires_the_fast_burn_within_five_minutes(burn_stack):
    from tests.server.alerts.test_alerts import Receiver

    stack, receiver = burn_stack, Receiver()
    stack.key = key = stack.new_key()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    outage = now - timedelta(minutes=40)
    start = outage - timedelta(days=3, hours=1)
    total = int((now - start).total_seconds() // 60)
    first_bad = int((outage - start).total_seconds() // 60)
    # 20 % errors for 10 minutes: every fifth request.
    replay(stack, key, start, total, lambda m, i: first_bad <= m < first_bad + 10 and i % 5 == 0)
    slo = slo_with_channel(stack, key, 99.9, receiver.url)
    try:
        for minute in range(-3, 40):
            evaluation.evaluate(int((outage + timedelta(minutes=minute)).timestamp()))
        found = incidents(stack, slo)
        assert [k for k, _, _ in found] == ["slo_fast_burn"]
        _, opened, resolved = found[0]
        assert outage < opened <= outage + timedelta(minutes=5)
        # Resolved once the last 5 minutes hold no errors again.
        assert outage + timedelta(minutes=10) < resolved <= outage + timedelta(minutes=16)
        assert [b["event"] for b in receiver.bodies()] == ["open", "resolve"]
        assert "fast burn" in receiver.bodies()[0]["text"]
    finally:
        receiver.close()


def test_two_percent_errors_for_six_hours_fires_only_the_slow_burn(burn_stack):
    """2 % errors against a 99.8 % target burns 10x: beyond the slow burn's 6x, short of the
    fast burn's 14.4x. (Against 99.9 % it burns 20x, which the workbook pages on at once.)"""
    from tests.server.alerts.test_alerts import Receiver

    stack, receiver = burn_stack, Receiver()
    stack.key = key = stack.new_key()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    bad_from = now - timedelta(hours=7)
    start = bad_from - timedelta(days=3)
    total = int((now - start).total_seconds() // 60)
    first_bad = int((bad_from - start).total_seconds() // 60)
    # 2 % errors for 6 hours: every fiftieth request.
    replay(stack, key, start, total,
           lambda m, i: first_bad <= m < first_bad + 360 and i % 50 == 0)  # fmt: skip
    slo = slo_with_channel(stack, key, 99.8, receiver.url)
    try:
        for minute in range(0, 7 * 60, 5):
            evaluation.evaluate(int((bad_from + timedelta(minutes=minute)).timestamp()))
        found = incidents(stack, slo)
        assert [k for k, _, _ in found] == ["slo_slow_burn"]
        _, opened, resolved = found[0]
        # 6 h at 10x passes 6x over 6 h after 3.6 h.
        assert bad_from + timedelta(hours=3.5) <= opened <= bad_from + timedelta(hours=3.8)
        assert bad_from + timedelta(hours=6) < resolved <= bad_from + timedelta(hours=6, minutes=35)
        assert [b["event"] for b in receiver.bodies()] == ["open", "resolve"]
    finally:
        receiver.close()
