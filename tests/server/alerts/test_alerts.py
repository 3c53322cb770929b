"""Alerts end to end: real traffic crosses a threshold, a real local webhook receiver checks
the signature, a real SMTP server (aiosmtpd, STARTTLS and a login) gets the mail, a
stopped local server is reported down after K checks; on SQLite with the in-process
jobs and on PostgreSQL with a real RQ worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from bench.services import free_port
from server.alerts import evaluation, sending
from server.lake.lock import LOCKS
from server.models import alert_deliveries, alert_incidents
from server.monitors.checks import check_monitor
from server.queue import declared
from tests.helpers import post_batch, row
from tests.targets import TargetServer


def auth(key):
    return {"X-AUTH-TOKEN": key}


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every POST and answers `status`."""

    def __init__(self, status: int = 200, hold: threading.Event | None = None) -> None:
        self.status = status
        self.received: list[tuple[dict, bytes]] = []
        # Until `hold` is set, each request is recorded and then left waiting for its answer.
        self.hold = hold
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _headers, body in self.received]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


class Smtp:
    """aiosmtpd on 127.0.0.1: STARTTLS required (a trustme certificate), then a login."""

    USER, PASSWORD = "alerts", "s3cret-pw"

    def __init__(self, tmp_path, monkeypatch, *, implicit_tls: bool = False) -> None:
        import trustme
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        authority = trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(server_context)
        # The sender builds its context from the defaults: make them trust this CA.
        ca_file = tmp_path / "smtp-ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        self.messages = []
        outer = self

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            ) == (outer.USER, outer.PASSWORD)
            return AuthResult(success=ok)

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                from email import message_from_bytes, policy

                assert session.authenticated
                outer.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        port = free_port()
        if implicit_tls:  # smtps://: TLS from the first byte
            tls = {"ssl_context": server_context, "auth_require_tls": False}
        else:
            tls = {"tls_context": server_context, "require_starttls": True}
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=port, authenticator=authenticate, **tls
        )
        self.controller.start()
        scheme = "smtps" if implicit_tls else "smtp"
        self.url = f"{scheme}://{self.USER}:{self.PASSWORD}@127.0.0.1:{port}"


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    server = Smtp(tmp_path, monkeypatch)
    yield server
    server.controller.stop()


@pytest.fixture
def alert_stack(make_stack, geoip_db):
    """A stack whose alerts may reach this machine's own test servers, on each backend."""

    def build(**overrides):
        return make_stack(**{"MONITOR_ALLOW_PRIVATE": True, "GEOIP_DB": geoip_db, **overrides})

    return build


def evaluate(stack, round_ts: int) -> None:
    """One evaluation round as the scheduler runs it: on a real RQ worker with Redis."""
    if stack.config.embedded_queue:
        evaluation.evaluate(round_ts)
        return
    queue = stack.app.extensions["job_queue"]
    queue.enqueue(declared(evaluation.evaluate), round_ts)
    stack.process_jobs()  # the evaluation, then the sending it asks for


def run_sending(stack) -> None:
    """The periodic sending round (retries come due here)."""
    if stack.config.embedded_queue:
        sending.send_due()
        return
    queue = stack.app.extensions["job_queue"]
    queue.enqueue(declared(sending.send_due))
    stack.process_jobs()


def webhook(stack, key, url) -> dict:
    response = stack.client.post(
        "/api/alerts/channels",
        json={"kind": "webhook", "name": "ops", "url": url},
        headers=auth(key),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_rule(stack, key, **fields) -> dict:
    response = stack.client.post("/api/alerts", json=fields, headers=auth(key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def verify(secret: str, headers: dict, body: bytes) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature"], expected)


def test_an_error_rate_incident_notifies_once_open_and_once_resolved(alert_stack, receiver):
    stack = alert_stack()
    key = stack.new_key()
    channel = webhook(stack, key, receiver.url)
    rule = add_rule(
        stack,
        key,
        kind="error_rate",
        name="Errors",
        threshold=20,
        window_minutes=5,
        min_requests=10,
        channel_ids=[channel["id"]],
    )
    now = datetime.now(UTC)
    moment = (now - timedelta(seconds=30)).isoformat()
    rows = [row(status=500 if i < 4 else 200, created_at=moment) for i in range(10)]
    rows.append(row(status=404, created_at=moment))  # a 4xx is no error for this rule
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()

    start = int(now.timestamp())
    evaluate(stack, start)
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    verify(channel["secret"], headers, body)
    opened = json.loads(body)
    assert opened["event"] == "open" and opened["rule"]["id"] == rule["id"]
    assert opened["incident"]["value"] == pytest.approx(100 * 4 / 11)
    assert opened["text"].startswith("FIRING: Errors") and "4 of 11 requests" in opened["text"]
    state = stack.client.get(f"/api/alerts/{rule['id']}", headers=auth(key)).get_json()
    assert state["state"] == "firing"

    # Still failing a minute later, and the same round run again: no storm.
    evaluate(stack, start + 60)
    evaluate(stack, start)
    run_sending(stack)
    assert len(receiver.received) == 1

    # Ten minutes on the window holds no request: too few to call it failing.
    evaluate(stack, start + 600)
    evaluate(stack, start + 660)
    assert [b["event"] for b in receiver.bodies()] == ["open", "resolve"]
    headers, body = receiver.received[1]
    verify(channel["secret"], headers, body)
    resolved = json.loads(body)
    assert resolved["text"].startswith("RESOLVED: Errors")
    assert resolved["incident"]["id"] == opened["incident"]["id"]
    assert resolved["delivery_id"] != opened["delivery_id"]

    (incident,) = stack.client.get("/api/alerts/incidents", headers=auth(key)).get_json()
    assert incident["resolved_at"] is not None and incident["value"] == pytest.approx(400 / 11)
    assert [(d["event"], d["status"], d["attempts"]) for d in incident["deliveries"]] == [
        ("open", "sent", 1),
        ("resolve", "sent", 1),
    ]
    assert incident["deliveries"][0]["attempt_log"][0]["ok"] is True


def test_latency_p95_of_one_endpoint(alert_stack, receiver):
    stack = alert_stack()
    key = stack.new_key()
    channel = webhook(stack, key, receiver.url)
    add_rule(
        stack,
        key,
        kind="latency_p95",
        threshold=300,
        window_minutes=5,
        endpoint="GET /items/{id}",
        channel_ids=[channel["id"]],
    )
    moment = (datetime.now(UTC) - timedelta(seconds=20)).isoformat()
    slow = [row(path=f"/items/{i}", response_time=1000, created_at=moment) for i in range(5)]
    fast_elsewhere = [row(path="/health", response_time=5, created_at=moment) for _ in range(50)]
    post_batch(stack.client, key, slow + fast_elsewhere)
    stack.process_jobs()
    evaluate(stack, int(time.time()))
    (opened,) = receiver.bodies()
    assert opened["incident"]["value"] == 1000 and "GET /items/{id}" in opened["text"]


def test_a_stopped_server_is_reported_down_after_k_checks(alert_stack, receiver, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    stack = alert_stack(SMTP_URL=smtp.url, SMTP_FROM="alerts@example.com")
    key = stack.new_key()
    hook = webhook(stack, key, receiver.url)
    mail = stack.client.post(
        "/api/alerts/channels",
        json={"kind": "email", "email": "ops@example.com"},
        headers=auth(key),
    ).get_json()
    target = TargetServer().__enter__()
    monitor = stack.client.post(
        "/api/monitors", json={"url": target.url("/ok")}, headers=auth(key)
    ).get_json()
    add_rule(
        stack,
        key,
        kind="monitor_down",
        name="Shop down",
        monitor_id=monitor["id"],
        consecutive=2,
        channel_ids=[hook["id"], mail["id"]],
    )
    start = int(time.time()) // 60 * 60
    check_monitor(monitor["id"], start)
    evaluate(stack, start + 1)
    target.__exit__(None, None, None)  # the server stops
    check_monitor(monitor["id"], start + 60)
    evaluate(stack, start + 61)
    assert receiver.received == [] and smtp.messages == []  # one failed check is not enough
    check_monitor(monitor["id"], start + 120)
    evaluate(stack, start + 121)
    check_monitor(monitor["id"], start + 180)
    evaluate(stack, start + 181)
    (opened,) = receiver.bodies()
    assert opened["event"] == "open" and opened["rule"]["name"] == "Shop down"
    assert "2 failed checks in a row" in opened["text"] and "connection refused" in opened["text"]
    (message,) = smtp.messages
    assert message["To"] == "ops@example.com" and message["From"] == "alerts@example.com"
    assert "FIRING" in message["Subject"] and "Shop down" in message.get_content()
    assert smtp.PASSWORD not in caplog.text and hook["secret"] not in caplog.text


def test_a_restart_mid_incident_sends_each_notification_once(alert_stack, receiver):
    stack = alert_stack()
    key = stack.new_key()
    channel = webhook(stack, key, receiver.url)
    rule = add_rule(
        stack,
        key,
        kind="error_rate",
        threshold=10,
        window_minutes=5,
        min_requests=2,
        channel_ids=[channel["id"]],
    )
    moment = (datetime.now(UTC) - timedelta(seconds=10)).isoformat()
    post_batch(stack.client, key, [row(status=503, created_at=moment) for _ in range(3)])
    stack.process_jobs()
    start = int(time.time())

    # The evaluation commits the incident and its delivery; the worker dies before sending:
    # the job asking for the send is lost with it (or never ran, embedded).
    lose_the_send(stack, start, rule["id"])
    assert receiver.received == []

    # The restarted worker evaluates again: the incident is open already, nothing is added.
    evaluate(stack, start + 60)
    with stack.engine.connect() as conn:
        deliveries = select(func.count()).select_from(alert_deliveries)
        incidents = select(func.count()).select_from(alert_incidents)
        assert (
            conn.execute(deliveries.where(alert_deliveries.c.channel_id == channel["id"])).scalar()
            == 1
        )
        assert conn.execute(incidents.where(alert_incidents.c.rule_id == rule["id"])).scalar() == 1
    run_sending(stack)
    run_sending(stack)
    assert [b["event"] for b in receiver.bodies()] == ["open"]


def lose_the_send(stack, start: int, rule_id: int) -> None:
    """Run the evaluation alone, as a worker killed right after its commit leaves it."""
    from unittest import mock

    with (
        mock.patch.object(evaluation, "queue"),
        mock.patch.object(evaluation, "send_due"),
    ):
        counts = evaluation.evaluate(start)
    # (Other tests' rules share the PostgreSQL database: this rule's incident is the one.)
    assert counts["opened"] >= 1
    with stack.engine.connect() as conn:
        opened = conn.execute(
            select(func.count())
            .select_from(alert_incidents)
            .where(alert_incidents.c.rule_id == rule_id, alert_incidents.c.resolved_at.is_(None))
        ).scalar()
    assert opened == 1


def test_a_sender_killed_after_taking_a_delivery_leaves_it_to_the_next(alert_stack, receiver):
    stack = alert_stack()
    key = stack.new_key()
    channel = webhook(stack, key, receiver.url)
    with stack.engine.begin() as conn:
        from server.alerts.deliveries import add_deliveries
        from server.keys.api_keys import lookup_key

        (delivery_id,) = add_deliveries(conn, lookup_key(conn, key), None, [channel["id"]], "test")
    now = datetime.now(UTC)
    assert sending._claim(delivery_id, now)  # ... and the sender dies here
    assert sending.send_due(now) == 0  # leased: nobody sends it twice meanwhile
    assert receiver.received == []
    assert sending.send_due(now + sending.SEND_LEASE) == 1
    assert sending.send_due(now + 2 * sending.SEND_LEASE) == 0
    (test,) = receiver.bodies()
    assert test["event"] == "test" and test["delivery_id"] == delivery_id


def test_a_failing_webhook_is_retried_with_backoff_then_recorded_failed(alert_stack):
    failing = Receiver(status=500)
    try:
        stack = alert_stack()
        key = stack.new_key()
        channel = webhook(stack, key, failing.url)
        sent = stack.client.post(f"/api/alerts/channels/{channel['id']}/test", headers=auth(key))
        assert sent.status_code == 202 and sent.get_json()["status"] == "pending"
        stack.process_jobs()  # the first attempt
        assert len(failing.received) == 1
        # From the first attempt's own time (a worker's teardown may take a while here).
        (first,) = stack.client.get(
            f"/api/alerts/channels/{channel['id']}/test", headers=auth(key)
        ).get_json()
        t0 = datetime.fromisoformat(first["attempt_log"][0]["at"])
        assert sending.send_due(t0 + timedelta(seconds=30)) == 0  # not due for a minute
        assert len(failing.received) == 1
        moment = t0 + timedelta(seconds=70)
        for pause in (timedelta(minutes=5), timedelta(minutes=15)):
            sending.send_due(moment)
            moment += pause + timedelta(seconds=10)
        sending.send_due(moment)
        assert len(failing.received) == 4
        sending.send_due(moment + timedelta(days=1))
        assert len(failing.received) == 4  # given up on
        (delivery,) = stack.client.get(
            f"/api/alerts/channels/{channel['id']}/test", headers=auth(key)
        ).get_json()
        assert delivery["status"] == "failed" and delivery["attempts"] == 4
        assert delivery["last_error"] == "HTTP 500"
        assert [a["ok"] for a in delivery["attempt_log"]] == [False] * 4
        gaps = [
            datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"])
            for a, b in zip(delivery["attempt_log"], delivery["attempt_log"][1:], strict=False)
        ]
        assert gaps[0] >= timedelta(minutes=1) and gaps[1] >= timedelta(minutes=5)
    finally:
        failing.close()


def test_no_traffic_fires_only_when_the_window_is_usually_busy(alert_stack, receiver):
    stack = alert_stack()
    busy, quiet = stack.new_key(), stack.new_key()
    now = int(time.time())
    for key, days in ((busy, range(1, 5)), (quiet, range(1, 4))):
        channel = webhook(stack, key, receiver.url)
        add_rule(stack, key, kind="no_traffic", window_minutes=30, channel_ids=[channel["id"]])
        # Traffic in the same half hour on 4 (busy) or 3 (quiet) of the previous 7 days.
        moments = [datetime.fromtimestamp(now - d * 86400 - 600, UTC).isoformat() for d in days]
        post_batch(stack.client, key, [row(created_at=m) for m in moments])
    stack.process_jobs()
    evaluate(stack, now)
    (opened,) = receiver.bodies()
    assert opened["event"] == "open" and "on 4 of the previous 7 days" in opened["text"]
    # A request arrives: the silence is over.
    post_batch(
        stack.client, busy, [row(created_at=datetime.fromtimestamp(now - 5, UTC).isoformat())]
    )
    stack.process_jobs()
    evaluate(stack, now + 60)
    assert [b["event"] for b in receiver.bodies()] == ["open", "resolve"]


def test_a_test_email_over_implicit_tls(alert_stack, tmp_path, monkeypatch):
    server = Smtp(tmp_path, monkeypatch, implicit_tls=True)
    try:
        stack = alert_stack(SMTP_URL=server.url, SMTP_FROM="alerts@example.com")
        key = stack.new_key()
        mail = stack.client.post(
            "/api/alerts/channels",
            json={"kind": "email", "name": "team", "email": "team@example.com"},
            headers=auth(key),
        ).get_json()
        sent = stack.client.post(f"/api/alerts/channels/{mail['id']}/test", headers=auth(key))
        assert sent.status_code == 202
        stack.process_jobs()
        (message,) = server.messages
        assert message["To"] == "team@example.com" and "test" in message["Subject"]
        (delivery,) = stack.client.get(
            f"/api/alerts/channels/{mail['id']}/test", headers=auth(key)
        ).get_json()
        assert delivery["status"] == "sent" and delivery["attempts"] == 1
    finally:
        server.controller.stop()


def test_a_worker_killed_mid_send_resends_the_same_delivery_and_nothing_more(
    pg_url, redis_url, tmp_path, geoip_db, monkeypatch
):
    """A real `python -m worker` is SIGKILLed while its notification is on the wire."""
    from tests.conftest import postgres_stack
    from tests.server.ingest.test_faults import start_worker, wait_for

    stack = postgres_stack(
        pg_url, redis_url, tmp_path, MONITOR_ALLOW_PRIVATE=True, GEOIP_DB=geoip_db
    )
    release = threading.Event()
    receiver = Receiver(hold=release)
    worker = None
    try:
        key = stack.new_key()
        channel = webhook(stack, key, receiver.url)
        rule = add_rule(
            stack, key, kind="error_rate", threshold=10, window_minutes=5, min_requests=2,
            channel_ids=[channel["id"]],
        )  # fmt: skip
        moment = (datetime.now(UTC) - timedelta(seconds=10)).isoformat()
        post_batch(stack.client, key, [row(status=500, created_at=moment) for _ in range(3)])
        stack.process_jobs()
        start = int(time.time())
        queue = stack.app.extensions["job_queue"]
        queue.enqueue(declared(evaluation.evaluate), start)
        monkeypatch.setenv("SECRET_KEY", stack.config.SECRET_KEY)  # it signs with this
        monkeypatch.setenv("MONITOR_ALLOW_PRIVATE", "1")
        worker = start_worker(stack)
        wait_for(lambda: receiver.received, timeout=60)  # the worker waits for the answer...
        os.killpg(worker.pid, signal.SIGKILL)  # ... and dies
        worker.wait(10)
        release.set()

        def deliveries():
            with stack.engine.connect() as conn:
                return conn.execute(
                    select(alert_deliveries.c.status, alert_deliveries.c.attempts).where(
                        alert_deliveries.c.channel_id == channel["id"]
                    )
                ).all()

        assert [tuple(d) for d in deliveries()] == [("pending", 0)]

        # The restarted worker evaluates again and runs the sending it asks for: the
        # incident is open, and the delivery is still leased to the dead sender.
        evaluate(stack, start + 60)
        assert len(receiver.received) == 1
        with stack.engine.connect() as conn:
            incidents = select(func.count()).where(alert_incidents.c.rule_id == rule["id"])
            assert conn.execute(incidents).scalar() == 1
        # Once the lease is over, the same delivery goes again, with its id: a receiver
        # that has seen that X-Delivery-Id drops it.
        later = datetime.now(UTC) + sending.SEND_LEASE
        assert sending.send_due(later) == 1
        assert sending.send_due(later + timedelta(minutes=30)) == 0
        (first_headers, first), (again_headers, again) = receiver.received
        assert again == first and again_headers["X-Delivery-Id"] == first_headers["X-Delivery-Id"]
        verify(channel["secret"], again_headers, again)
        assert [tuple(d) for d in deliveries()] == [("sent", 1)]
    finally:
        release.set()
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        receiver.close()


def test_one_evaluation_at_a_time_on_postgresql(pg_app):
    from sqlalchemy import text

    lock = {"id": LOCKS["alert-evaluation"][0]}
    with pg_app.engine.connect() as other_worker:
        other_worker.execute(text("SELECT pg_advisory_lock(:id)"), lock)
        other_worker.commit()
        assert evaluation.evaluate(int(time.time()))["skipped"] is True
        other_worker.execute(text("SELECT pg_advisory_unlock(:id)"), lock)
        other_worker.commit()
    assert evaluation.evaluate(int(time.time()))["skipped"] is False


def test_a_rule_has_one_open_incident_at_most(alert_stack):
    from sqlalchemy.exc import IntegrityError

    from server.db import utcnow
    from server.keys.api_keys import lookup_key

    stack = alert_stack()
    key = stack.new_key()
    rule = add_rule(stack, key, kind="no_traffic", window_minutes=5)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    opened = {"key_id": key_id, "rule_id": rule["id"], "started_at": utcnow(), "summary": "x"}
    with stack.engine.begin() as conn:
        conn.execute(alert_incidents.insert().values(**opened))
    with pytest.raises(IntegrityError), stack.engine.begin() as conn:
        conn.execute(alert_incidents.insert().values(**opened))
    with stack.engine.begin() as conn:  # a resolved one does not count
        mine = alert_incidents.c.rule_id == rule["id"]
        conn.execute(alert_incidents.update().where(mine).values(resolved_at=utcnow()))
        conn.execute(alert_incidents.insert().values(**opened))


def failing(message: str, kind: str = "app.errors.NotFound", path: str = "/v1/orders/1") -> dict:
    return row(
        status=500,
        path=path,
        created_at=datetime.now(UTC).isoformat(),
        exception={
            "type": kind,
            "message": message,
            "stack": [{"file": "app/main.py", "line": 31, "function": "show", "in_app": True}],
        },
    )


def test_a_new_error_group_and_a_regression_each_notify(alert_stack, receiver):
    stack = alert_stack()
    key = stack.new_key()
    channel = webhook(stack, key, receiver.url)
    for kind in ("new_error", "error_regression"):
        add_rule(stack, key, kind=kind, window_minutes=5, channel_ids=[channel["id"]])
    # Traffic that fails in no new way notifies nobody.
    assert post_batch(stack.client, key, [row(status=500)]).status_code == 201
    stack.process_jobs()
    start = int(time.time())
    evaluate(stack, start)
    assert receiver.received == []

    # Two occurrences of one new group (numbers differ, the group is one), and one of an
    # ignored group: one notification, naming the group.
    rows = [failing("order 1881 not found"), failing("order 77 not found")]
    rows.append(failing("cache miss 3", kind="app.cache.Miss"))
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    groups = stack.client.get("/api/errors", headers=auth(key)).get_json()
    by_type = {g["type"]: g for g in groups}
    assert set(by_type) == {"app.errors.NotFound", "app.cache.Miss"}
    ignored = by_type["app.cache.Miss"]["id"]
    response = stack.client.patch(
        f"/api/errors/{ignored}", json={"state": "ignored"}, headers=auth(key)
    )
    assert response.status_code == 200, response.get_json()
    # A round after the rows (the machine may take seconds between `start` and them).
    second = max(start + 1, int(time.time()) + 1)
    evaluate(stack, second)
    (opened,) = receiver.bodies()
    assert opened["event"] == "open" and opened["rule"]["kind"] == "new_error"
    assert opened["incident"]["value"] == 1
    assert (
        "1 new error group in the last 5 min: "
        "app.errors.NotFound on GET /v1/orders/{id}: order {n} not found" in opened["text"]
    )
    assert "Miss" not in opened["text"]

    # The owner fixes it and marks it resolved; it occurs again: a regression.
    group = by_type["app.errors.NotFound"]["id"]
    response = stack.client.patch(
        f"/api/errors/{group}", json={"state": "resolved"}, headers=auth(key)
    )
    assert response.status_code == 200, response.get_json()
    time.sleep(0.01)
    assert post_batch(stack.client, key, [failing("order 5 not found")]).status_code == 201
    stack.process_jobs()
    found = stack.client.get(f"/api/errors/{group}", headers=auth(key)).get_json()
    assert found["state"] == "open" and found["regressions"] == 1
    third = max(second + 1, int(time.time()) + 1)
    evaluate(stack, third)
    assert [(b["event"], b["rule"]["kind"]) for b in receiver.bodies()] == [
        ("open", "new_error"),
        ("open", "error_regression"),
    ]
    assert "1 regression in the last 5 min" in receiver.bodies()[1]["text"]

    # Ten minutes on, neither window holds a new group or a regression: both resolve.
    evaluate(stack, third + 600)
    events = sorted((b["event"], b["rule"]["kind"]) for b in receiver.bodies()[2:])
    assert events == [("resolve", "error_regression"), ("resolve", "new_error")]
