"""GET /api/ingest/health: a key with nothing yet says what to check; a batch's accepted
and refused rows show at once, counted per day with the refusals by field; the client
named by framework and User-Agent; the newest 100 refused rows kept, secrets masked."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from server.ingest_health.models import ingest_days
from server.keys.api_keys import lookup_key
from tests.helpers import payload, row


def auth(key):
    return {"X-AUTH-TOKEN": key}


def send(stack, key, rows, framework="Flask", agent="api-analytics-middleware/9.9.1"):
    return stack.client.post(
        "/api/log-request", json=payload(key, rows, 0, framework), headers={"User-Agent": agent}
    )


def written(stack, key: str) -> list[tuple]:
    """The key's day rows as written (PostgreSQL's database is the session's: other
    tests' keys have theirs)."""
    d = ingest_days.c
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        found = conn.execute(select(d.batches, d.accepted, d.refused).where(d.key_id == key_id))
        return [tuple(r) for r in found]


def health(stack, key) -> dict:
    response = stack.client.get("/api/ingest/health", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_what_arrived_and_what_was_refused(stack):
    key = stack.new_key()
    empty = health(stack, key)
    assert empty["last_batch"] is None and empty["clients"] == [] and empty["refused_rows"] == []
    assert len(empty["days"]) == 14 and all(d["accepted"] == 0 for d in empty["days"])
    assert any("API key" in c for c in empty["checks"])

    bad_status = row(
        status="abc",
        path="/v1/pay?api_key=sk_live_123&page=2",
        password="hunter2",
        request={
            "headers": [["Authorization", "Bearer t0k"]],
            "query": "token=q5ecret",
            "body": '{"card": "4242", "amount": 3}',
            "body_type": "application/json",
        },
    )
    no_path = row(path=None, status=99)
    assert send(stack, key, [row(), row(), bad_status, row(), no_path]).status_code == 201
    # Written by the process's own flusher within a second or two, no reader needed.
    deadline = time.monotonic() + 10
    while not written(stack, key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert written(stack, key) == [(1, 3, 2)]
    found = health(stack, key)
    today = found["days"][-1]
    assert (today["batches"], today["accepted"], today["refused"]) == (1, 3, 2)
    assert today["reasons"] == {"status": 2, "path": 1}
    assert found["last_batch"]["framework"] == "Flask"
    assert found["last_batch"]["client"] == "api-analytics-middleware/9.9.1"
    assert (found["last_batch"]["accepted"], found["last_batch"]["refused"]) == (3, 2)
    assert found["checks"] == []
    newest, older = found["refused_rows"]
    assert (newest["index"], older["index"]) == (4, 2)
    assert older["reason"].startswith("status:") and "path:" in newest["reason"]
    shown = json.dumps(older["row"])
    for secret in ("sk_live_123", "hunter2", "t0k", "q5ecret", "4242"):
        assert secret not in shown
    assert older["row"]["path"].startswith("/v1/pay?api_key=") and "page=2" in shown

    # Every row refused: a 400, counted as a refused batch.
    assert send(stack, key, [no_path] * 120, framework="Django", agent="curl/8").status_code == 400
    found = health(stack, key)
    today = found["days"][-1]
    assert (today["batches"], today["batches_refused"], today["refused"]) == (2, 1, 122)
    assert found["last_batch"]["client"] == "curl/8" and found["last_batch"]["accepted"] == 0
    assert len(found["clients"]) == 2
    assert len(found["refused_rows"]) == 100
    assert {r["framework"] for r in found["refused_rows"]} == {"Django"}
    assert health(stack, stack.new_key())["last_batch"] is None  # each key its own
    assert stack.client.get("/api/ingest/health").status_code == 401


def test_reasons_of_a_refusal():
    from server.ingest_health.record import reasons_of

    assert reasons_of("status: must be an integer; path: required") == ["status", "path"]
    assert reasons_of("row must be a JSON object") == ["row"]
    assert reasons_of("created_at: not ISO: 'x: y'") == ["created_at"]


def test_a_deleted_keys_counts_do_not_sink_the_others(sqlite_app):
    from server.ingest_health import record

    key = sqlite_app.new_key()
    assert send(sqlite_app, key, [row()]).status_code == 201
    refused = {"accepted": 0, "rejected": [{"index": 0, "error": "row must be a JSON object"}]}
    record.note(999_999, {"framework": "x", "requests": [{}]}, refused, None)
    found = health(sqlite_app, key)
    assert found["days"][-1]["accepted"] == 1 and found["last_batch"]["framework"] == "Flask"


def test_a_refused_rows_captured_body_is_not_kept(stack):
    """A body no mask can read (plain text, a cut JSON) is left out: a secret in it
    reaches neither the page nor the database."""
    secret = "PLAINTEXTSECRET42"
    key = stack.new_key()
    bad = row(status="oops", request={"headers": [], "body": secret * 50})
    assert send(stack, key, [bad, row()]).status_code == 201
    (refused,) = health(stack, key)["refused_rows"]
    assert refused["row"]["request"]["body"] == "[not kept]"
    with stack.engine.connect() as conn:
        from server.ingest_health.models import ingest_refusals

        stored = [str(r) for r in conn.execute(select(ingest_refusals)).all()]
    assert stored and not any(secret in r for r in stored)


def test_a_flush_returns_only_once_the_flushing_threads_write_is_in(monkeypatch):
    """The health page flushes before it reads; if the flushing thread has just taken the
    counts and is still writing them, that flush must wait for the write, not return with
    nothing to do (the page, and a key's deletion test, then saw no counts)."""
    import threading

    from server.ingest_health import record

    written, taken = [], threading.Event()

    def slow_write(engine, tally):
        taken.set()
        time.sleep(0.3)
        written.append(tally)

    monkeypatch.setattr(record, "_write", slow_write)
    monkeypatch.setattr(record, "_pending", {"engine": record.Tally()})
    flushing = threading.Thread(target=record.flush)
    flushing.start()
    assert taken.wait(5)
    record.flush()  # what the page does
    assert len(written) == 1
    flushing.join()
