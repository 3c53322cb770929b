"""The release_regression rule on generated traffic: an hour each side of a deploy, one
endpoint's response times doubled after it (fires once, names it, resolves once when a
later deploy arrives or the endpoint recovers), or nothing changed (never fires).
Evaluated as the scheduler runs it: in-process on SQLite, on a real RQ worker with
PostgreSQL; notified through a real local webhook receiver, signature checked."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server.alerts.models import release_alerts
from server.lake.export import flush
from server.models import alert_incidents
from tests.helpers import post_batch, row
from tests.server.alerts.test_alerts import add_rule, alert_stack, auth, evaluate, receiver, verify
from tests.server.alerts.test_alerts import webhook as add_webhook

__all__ = ["alert_stack", "receiver"]  # the fixtures, shared

ENDPOINTS = [("GET", "/v1/items/{n}"), ("POST", "/v1/orders"), ("GET", "/v1/users"),
             ("GET", "/health")]  # fmt: skip
SLOWED = "POST /v1/orders"


def traffic(deployed: datetime, slow_minutes: tuple[int, int] | None) -> list[dict]:
    """Two hours after the deploy and one before, ~300 requests an endpoint an hour, times
    from one skewed distribution; POST /v1/orders twice as slow during `slow_minutes`
    (minutes after the deploy), if given."""
    rng = random.Random(11)
    rows = []
    for _ in range(3600):
        minute = rng.uniform(-60, 120)
        method, path = rng.choice(ENDPOINTS)
        route = f"{method} {path.replace('{n}', '{id}')}"
        slow = slow_minutes and route == SLOWED and slow_minutes[0] <= minute < slow_minutes[1]
        base = 20 + rng.lognormvariate(3.5, 0.6)
        at = deployed + timedelta(minutes=minute)
        rows.append(row(method=method, path=path.format(n=rng.randrange(1, 99)),
                        status=500 if rng.random() < 0.01 else 200,
                        response_time=round(base * (2 if slow else 1)),
                        created_at=at.isoformat()))  # fmt: skip
    return rows


def setup(stack, receiver, slow_minutes):
    """A key with the traffic (before the deploy exported, after it hot), a deploy 3 hours
    ago, and a release_regression rule notifying the receiver."""
    key = stack.new_key()
    deployed = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    rows = traffic(deployed, slow_minutes)
    older = [r for r in rows if r["created_at"] < deployed.isoformat()]
    newer = [r for r in rows if r["created_at"] >= deployed.isoformat()]
    assert post_batch(stack.client, key, older).status_code == 201
    stack.process_jobs()
    flush()
    assert post_batch(stack.client, key, newer).status_code == 201
    stack.process_jobs()
    deploy = deploy_at(stack, key, "2.0.0", deployed)
    channel = add_webhook(stack, key, receiver.url)
    rule = add_rule(stack, key, kind="release_regression", name="Release", window_minutes=60,
                    channel_ids=[channel["id"]])  # fmt: skip
    assert (rule["threshold"], rule["min_requests"]) == (10, 30)
    return key, deployed, deploy, channel, rule


def deploy_at(stack, key, version: str, moment: datetime) -> dict:
    body = {"version": version, "time": moment.isoformat()}
    made = stack.client.post("/api/deploys", json=body, headers=auth(key))
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def rounds(stack, start: datetime, minutes) -> None:
    for m in minutes:
        evaluate(stack, int((start + timedelta(minutes=m)).timestamp()))


def incidents(stack, rule_id: int) -> list:
    with stack.engine.connect() as conn:
        return conn.execute(
            select(alert_incidents.c.started_at, alert_incidents.c.resolved_at,
                   alert_incidents.c.summary)
            .where(alert_incidents.c.rule_id == rule_id).order_by(alert_incidents.c.id)
        ).all()  # fmt: skip


def test_a_doubled_p95_fires_once_names_the_endpoint_and_a_later_deploy_resolves_it(
    alert_stack, receiver
):
    stack = alert_stack()
    key, deployed, deploy, channel, rule = setup(stack, receiver, (0, 120))
    # Before any request after it, then 5 minutes on (too few requests), then an hour on.
    rounds(stack, deployed, [0, 5])
    assert receiver.received == []
    rounds(stack, deployed, [61, 62, 70, 61])
    assert [b["event"] for b in receiver.bodies()] == ["open"]
    headers, body = receiver.received[0]
    verify(channel["secret"], headers, body)
    opened = receiver.bodies()[0]
    assert opened["rule"]["kind"] == "release_regression"
    text = opened["incident"]["summary"]
    assert "deploy 2.0.0" in text and "1 endpoint worse beyond noise" in text
    assert SLOWED in text and "p95" in text
    for other in ("GET /v1/items/{id}", "GET /v1/users", "GET /health"):
        assert other not in text
    assert 60 <= opened["incident"]["value"] <= 140  # the p95's rise, in percent (~100)
    state = stack.client.get(f"/api/alerts/{rule['id']}", headers=auth(key)).get_json()
    assert state["state"] == "firing"

    # A later deploy resolves it (once); the new deploy's hour is unchanged: nothing more.
    deploy_at(stack, key, "2.0.1", deployed + timedelta(minutes=80))
    rounds(stack, deployed, [81, 82, 100, 119])
    assert [b["event"] for b in receiver.bodies()] == ["open", "resolve"]
    (found,) = incidents(stack, rule["id"])
    assert found.resolved_at is not None
    with stack.engine.connect() as conn:
        assert conn.execute(select(release_alerts.c.deploy_id)).scalars().all() == [deploy["id"]]


def test_a_regression_that_ends_resolves_once_and_does_not_fire_again(alert_stack, receiver):
    stack = alert_stack()
    _key, deployed, _deploy, _channel, rule = setup(stack, receiver, (0, 60))
    rounds(stack, deployed, [61])
    assert [b["event"] for b in receiver.bodies()] == ["open"]
    # From minute 60 it answers as before: the latest hour is back within noise.
    rounds(stack, deployed, [90, 119, 121, 122, 125])
    assert [b["event"] for b in receiver.bodies()] == ["open", "resolve"]
    (found,) = incidents(stack, rule["id"])
    resolved = datetime.fromisoformat(receiver.bodies()[1]["incident"]["resolved_at"])
    # The latest hour holds little of the slow stretch by minute 119 (at 90, half of it).
    assert deployed + timedelta(minutes=90) <= resolved <= deployed + timedelta(minutes=119)


def test_an_unchanged_release_never_fires(alert_stack, receiver):
    stack = alert_stack()
    _key, deployed, _deploy, _channel, rule = setup(stack, receiver, None)
    rounds(stack, deployed, [5, 30, 61, 62, 90, 119])
    assert receiver.received == [] and incidents(stack, rule["id"]) == []


def test_the_rule_is_checked_like_the_others(alert_stack):
    stack = alert_stack()
    key = stack.new_key()
    for bad, field in (({"window_minutes": 0}, "window_minutes"),
                       ({"window_minutes": 60, "threshold": -1}, "threshold"),
                       ({"window_minutes": 60, "min_requests": 0}, "min_requests"),
                       ({}, "window_minutes")):  # fmt: skip
        answer = stack.client.post(
            "/api/alerts", json={"kind": "release_regression", **bad}, headers=auth(key)
        )
        assert answer.status_code in (400, 422) and field in str(answer.get_json()), bad
    made = add_rule(stack, key, kind="release_regression", window_minutes=30, threshold=25,
                    min_requests=100)  # fmt: skip
    assert (made["threshold"], made["min_requests"], made["window_minutes"]) == (25, 100, 30)
    assert made["state"] == "ok"
