"""The month-closed webhook: set through the API, then the month closes (the job run at a
round an hour and more past its end, on a real RQ worker with PostgreSQL, in-process on
SQLite): a real receiver on 127.0.0.1 gets the frozen usage once, signed as alert
webhooks are; a failed POST is retried and then sent once; the month is never sent twice;
a month closed before the webhook was set is not sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.keys.api_keys import lookup_key
from server.queue import declared
from server.usage import closing
from server.usage.models import usage_months
from tests.helpers import post_batch
from tests.server.alerts.test_alerts import Receiver, alert_stack, verify
from tests.server.usage.test_usage import expected, generated

__all__ = ["alert_stack"]  # the fixture, shared


def auth(key):
    return {"X-AUTH-TOKEN": key}


def run_close(stack, moment: datetime) -> None:
    """One round of the periodic job, as the scheduler runs it."""
    round_ts = int(moment.timestamp())
    if stack.config.embedded_queue:
        closing.close_months(round_ts)
        return
    stack.app.extensions["job_queue"].enqueue(declared(closing.close_months), round_ts)
    stack.process_jobs()


def next_month(moment: datetime) -> datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


@pytest.fixture
def failing_then_ok():
    found = Receiver(status=500)
    yield found
    found.close()


def test_a_closed_month_is_posted_once_signed_retried_on_failure(alert_stack, failing_then_ok):
    stack, receiver = alert_stack(), failing_then_ok
    key = stack.new_key()
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month, closes = now.strftime("%Y-%m"), next_month(now)
    # This month's rows (and some of the month before, which must not count).
    rows = [r for r in generated(month_start, now, 600, 9) if r["created_at"] < now.isoformat()]
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()

    for bad in ({"url": "ftp://example.com/x"}, {"url": ""}, {"link": receiver.url}):
        answer = stack.client.put("/api/usage/webhook", json=bad, headers=auth(key))
        assert answer.status_code in (400, 422), bad
    assert stack.client.get("/api/usage/webhook", headers=auth(key)).status_code == 404
    made = stack.client.put("/api/usage/webhook", json={"url": receiver.url}, headers=auth(key))
    assert made.status_code == 200, made.get_json()
    secret = made.get_json()["secret"]
    assert made.get_json()["url"] == receiver.url and made.get_json()["notices"] == []

    # Not yet final (its last hour's grace): nothing; then the first round after it.
    run_close(stack, closes + timedelta(minutes=30))
    assert receiver.received == []
    run_close(stack, closes + timedelta(hours=1, minutes=1))
    assert len(receiver.received) == 1  # tried, refused with a 500
    state = stack.client.get("/api/usage/webhook", headers=auth(key)).get_json()
    (notice,) = state["notices"]
    assert (notice["month"], notice["status"], notice["attempts"]) == (month, "pending", 1)
    assert notice["last_error"] == "HTTP 500"

    # Before its retry is due: nothing; once due, it is sent; later rounds send nothing.
    receiver.status = 200
    run_close(stack, closes + timedelta(hours=1, minutes=1, seconds=30))
    assert len(receiver.received) == 1
    for later in (timedelta(hours=1, minutes=3), timedelta(hours=2), timedelta(days=3)):
        run_close(stack, closes + later)
    assert len(receiver.received) == 2
    headers, body = receiver.received[1]
    verify(secret, headers, body)
    assert headers["X-Delivery-Id"] == receiver.received[0][0]["X-Delivery-Id"]  # the same one
    sent = json.loads(body)
    assert sent["event"] == "usage.month_closed" and sent["month"] == month
    for group_by in ("consumer", "route", "status_class"):
        part = sent["usage"][group_by]
        want = expected(rows, month_start, closes, group_by)
        assert part["final"] is True and part["group_by"] == group_by
        assert {r["name"]: (r["requests"], r["errors"]) for r in part["rows"]} == want
        assert part["requests"] == sum(n for n, _ in want.values()) > 100
    # Frozen once per grouping: every later answer is the one sent.
    with stack.engine.connect() as conn:
        frozen = conn.execute(
            select(usage_months.c.group_by, usage_months.c.requests)
            .where(usage_months.c.key_id == lookup_key(conn, key))
        ).all()  # fmt: skip
    assert sorted(g for g, _ in frozen) == ["consumer", "route", "status_class"]
    (notice,) = stack.client.get("/api/usage/webhook", headers=auth(key)).get_json()["notices"]
    assert (notice["status"], notice["attempts"], notice["last_error"]) == ("sent", 2, None)

    # Replaced: a new secret; the month is still not sent again.
    again = stack.client.put("/api/usage/webhook", json={"url": receiver.url}, headers=auth(key))
    assert again.get_json()["secret"] != secret
    run_close(stack, closes + timedelta(days=4))
    assert len(receiver.received) == 2
    assert stack.client.delete("/api/usage/webhook", headers=auth(key)).status_code == 204
    assert stack.client.delete("/api/usage/webhook", headers=auth(key)).status_code == 404


def test_a_month_closed_before_the_webhook_was_set_is_not_sent(alert_stack):
    stack, receiver = alert_stack(), Receiver()
    try:
        key = stack.new_key()
        made = stack.client.put("/api/usage/webhook", json={"url": receiver.url}, headers=auth(key))
        assert made.status_code == 200
        # The month before this one closed an hour after this month began: before now.
        run_close(stack, datetime.now(UTC))
        assert receiver.received == []
        assert made.get_json()["notices"] == []
    finally:
        receiver.close()
