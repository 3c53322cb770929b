"""POST /api/log-request on both backends: good batches, bad input, privacy, durability."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from server.keys.api_keys import lookup_key
from server.lake.models import requests
from server.models import api_keys, ingest_batches
from tests.helpers import (
    WEB_WRITE_FAILS,
    as_json_bytes,
    payload,
    post_batch,
    post_gzip,
    row,
    web_write_fails,
)


def stored(stack, key=None) -> int:
    with stack.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(requests)).scalar()


def data(stack, key, query=""):
    response = stack.client.get(f"/api/data{query}", headers={"X-AUTH-TOKEN": key})
    assert response.status_code == 200
    return response.get_json()


def test_key_creation_and_the_old_generate_call(stack):
    created = stack.client.post("/api/keys")
    assert created.status_code == 201
    key = created.get_json()["api_key"]
    assert len(key) >= 43  # 256 bits, base64url
    legacy = stack.client.get("/api/generate")
    assert legacy.status_code == 200
    assert isinstance(legacy.get_json(), str)
    assert legacy.get_json() != key
    with stack.engine.connect() as conn:
        hashes = conn.execute(select(api_keys.c.key_hash)).scalars().all()
    # Only hashes at rest: the plaintext appears nowhere in the table.
    assert all(key.encode() not in bytes(h) for h in hashes)
    assert all(len(h) == 32 for h in hashes)


def test_partial_batch_keeps_the_good_rows(stack):
    key = stack.new_key()
    rows = [row(path="/ok/1"), row(method="BREW"), row(path="/ok/2"), row(status=42)]
    response = post_batch(stack.client, key, rows)
    assert response.status_code == 201
    body = response.get_json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 3]
    assert "method" in body["rejected"][0]["error"]
    assert "status" in body["rejected"][1]["error"]
    stack.process_jobs()
    assert sorted(r["path"] for r in data(stack, key)) == ["/ok/1", "/ok/2"]


def test_a_batch_of_only_bad_rows_is_refused_and_stores_nothing(stack):
    key = stack.new_key()
    response = post_batch(stack.client, key, [row(status=1000), row(path="")])
    assert response.status_code == 400
    assert response.get_json()["accepted"] == 0
    assert len(response.get_json()["rejected"]) == 2
    stack.process_jobs()
    assert data(stack, key) == []


def test_alias_gzip_and_any_framework(stack):
    key = stack.new_key()
    body = as_json_bytes(payload(key, [row(path="/gz")], framework="Django 5 (custom)"))
    response = post_gzip(stack.client, body, path="/api/requests")
    assert response.status_code == 201, response.get_json()
    stack.process_jobs()
    [stored_row] = data(stack, key)
    assert stored_row["path"] == "/gz"
    assert stored_row["framework"] == "Django 5 (custom)"


def test_values_are_stored_exactly_as_sent(stack):
    key = stack.new_key()
    nasty = [
        "/users/'; DROP TABLE requests; --",
        '/quote"s/and\\backslash',
        "/ünïcödé/日本語/😀",
        "/select * from api_keys where 1=1",
    ]
    user_id = "Robert'); DELETE FROM api_keys;-- 🙂"
    response = post_batch(
        stack.client, key, [row(path=p, user_id=user_id, hostname="hôst.例え.jp") for p in nasty]
    )
    assert response.status_code == 201
    stack.process_jobs()
    rows = data(stack, key)
    assert sorted(r["path"] for r in rows) == sorted(nasty)
    assert {r["user_id"] for r in rows} == {user_id}
    assert {r["hostname"] for r in rows} == {"hôst.例え.jp"}
    assert (
        len(
            data(
                stack,
                key,
                "?user_id=" + "Robert%27)%3B%20DELETE%20FROM%20api_keys%3B--%20%F0%9F%99%82",
            )
        )
        == 4
    )


def test_long_strings_are_truncated(stack):
    key = stack.new_key()
    long_path = "/" + "a" * 600
    assert (
        post_batch(stack.client, key, [row(path=long_path, user_agent="U" * 400)]).status_code
        == 201
    )
    stack.process_jobs()
    [stored_row] = data(stack, key)
    assert stored_row["path"] == long_path[:255]
    assert stored_row["user_agent"] == "U" * 255


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "Malformed JSON"),
        (b'["a list"]', {"Content-Type": "application/json"}, 400, "JSON object"),
        (b'{"requests": [{}]}', {"Content-Type": "application/json"}, 401, "api_key"),
        (b'{"api_key": "nope", "requests": [{}]}', {"Content-Type": "application/json"}, 401,
         "Unknown or revoked"),
        (b'{"a": 1}', {"Content-Type": "text/plain"}, 415, "Content-Type"),
        (b'{"a": 1}', {}, 415, "Content-Type"),
        (b'{"a": 1}', {"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "br"),
        (b"{}", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "gzip"),
    ],
)  # fmt: skip
def test_whole_payload_errors(stack, body, headers, status, message):
    before = stored(stack)
    response = stack.client.post("/api/log-request", data=body, headers=headers)
    assert response.status_code == status
    assert message in response.get_json()["message"]
    stack.process_jobs()
    assert stored(stack) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"requests": None}, "Missing 'requests'"),
        ({"requests": "x"}, "must be a list"),
        ({"requests": []}, "empty"),
        ({"privacy_level": 7}, "privacy_level"),
        ({"framework": 3}, "framework"),
    ],
)
def test_envelope_errors_name_the_field(stack, change, message):
    key = stack.new_key()
    body = {**payload(key, [row()]), **change}
    if change.get("requests", 0) is None:
        del body["requests"]
    response = stack.client.post("/api/log-request", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["message"]
    stack.process_jobs()
    assert data(stack, key) == []


def test_size_limits(sqlite_app):
    stack = sqlite_app
    key = stack.new_key()
    settings = stack.config
    too_many = payload(key, [row()] * (settings.MAX_BATCH + 1))
    response = stack.client.post("/api/log-request", json=too_many)
    assert response.status_code == 413
    assert "Too many rows" in response.get_json()["message"]

    oversize = b'{"api_key": "k", "requests": [' + b" " * settings.MAX_BODY + b"]}"
    response = stack.client.post(
        "/api/log-request", data=oversize, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413

    # Small on the wire, huge inflated: refused without inflating it all.
    bomb = b'{"api_key": "' + key.encode() + b'", "requests": [' + b" " * (64 * 1024 * 1024) + b"]}"
    response = post_gzip(stack.client, bomb)
    assert response.status_code == 413
    assert "decompressed" in response.get_json()["message"]
    stack.process_jobs()
    assert data(stack, key) == []


@pytest.mark.parametrize("written", ["by the web", "staged"])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_privacy_levels(stack, level, written, monkeypatch):
    from server.ingest import staging

    held = []
    if written == "staged":
        web_write_fails(monkeypatch)
        # Held back from the workers (the in-process one would race this test's look).
        monkeypatch.setattr(staging, "ask_to_store", held.append)
    key = stack.new_key()
    response = post_batch(stack.client, key, [row(ip_address="81.2.69.160")], privacy_level=level)
    assert response.status_code == 201
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        staged = (
            conn.execute(select(ingest_batches.c.payload).where(ingest_batches.c.key_id == key_id))
            .scalars()
            .all()
        )
    assert len(staged) == (written == "staged")
    # Level 2 never stores the address, not even in the staging table.
    assert any(b"81.2.69.160" in bytes(p) for p in staged) is (written == "staged" and level < 2)
    monkeypatch.undo()
    for batch_id in held:
        staging.ask_to_store(batch_id)
    stack.process_jobs()
    [stored_row] = data(stack, key)
    assert stored_row["ip_address"] == ("81.2.69.160" if level == 0 else None)
    assert stored_row["location"] == ("GB" if level < 2 else None)
    with stack.engine.connect() as conn:
        leftovers = conn.execute(
            select(func.count()).where(ingest_batches.c.key_id == key_id)
        ).scalar()
        ips = (
            conn.execute(select(requests.c.ip_address).where(requests.c.key_id == key_id))
            .scalars()
            .all()
        )
    # Once stored, level 1's address is gone from every table, staging included.
    assert leftovers == 0
    assert [ip and str(ip) for ip in ips] == (["81.2.69.160"] if level == 0 else [None])


def test_a_batch_the_web_cannot_write_is_staged_and_stored_by_a_worker(stack, monkeypatch, caplog):
    """The web writes a batch's rows itself; if that fails, the batch is staged and a
    worker stores it: the client gets its 201 either way, and each row is stored once."""
    key = stack.new_key()
    rows = [row(path=f"/fallback/{i}") for i in range(5)]
    headers = {"Idempotency-Key": "fallback-1"}
    from server.ingest import staging

    held = []
    web_write_fails(monkeypatch)
    monkeypatch.setattr(staging, "ask_to_store", held.append)  # the test runs the worker
    with caplog.at_level(logging.WARNING, logger="server.api.ingest.routes"):
        first = stack.client.post("/api/log-request", json=payload(key, rows), headers=headers)
    assert first.status_code == 201 and first.get_json() == {"accepted": 5, "rejected": []}
    assert "staged for the workers" in caplog.text and WEB_WRITE_FAILS in caplog.text
    assert key not in caplog.text
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        waiting = conn.execute(
            select(ingest_batches.c.row_count).where(ingest_batches.c.key_id == key_id)
        ).scalars().all()  # fmt: skip
    assert waiting == [5]
    monkeypatch.undo()
    # The client retries (it never saw the 201): the same answer, nothing written again.
    again = stack.client.post("/api/log-request", json=payload(key, rows), headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert len(held) == 1
    staging.ask_to_store(held[0])
    stack.process_jobs()
    assert sorted(r["path"] for r in data(stack, key)) == sorted(r["path"] for r in rows)
    with stack.engine.connect() as conn:
        left = conn.execute(select(func.count()).where(ingest_batches.c.key_id == key_id))
        assert left.scalar() == 0


def test_naive_and_out_of_range_timestamps(stack):
    key = stack.new_key()
    rows = [
        row(path="/naive", created_at="2026-01-02T03:04:05"),
        row(path="/old", created_at="1999-01-01T00:00:00Z"),
        row(path="/future", created_at="2999-01-01T00:00:00Z"),
    ]
    response = post_batch(stack.client, key, rows)
    assert [r["index"] for r in response.get_json()["rejected"]] == [1, 2]
    stack.process_jobs()
    [stored_row] = data(stack, key)
    assert stored_row["created_at"] == "2026-01-02T03:04:05.000000+00:00"


def test_the_key_never_reaches_the_logs(stack, caplog):
    caplog.set_level(logging.DEBUG)
    key = stack.new_key()
    post_batch(stack.client, key, [row(), row(status=1)])
    stack.process_jobs()
    stack.client.get("/api/data?status=200", headers={"X-AUTH-TOKEN": key})
    stack.client.get("/api/data?bogus=1", headers={"X-AUTH-TOKEN": key})
    stack.client.post("/api/log-request", data=b"{", headers={"Content-Type": "application/json"})
    stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": key})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # something was logged, so the check below can fail
    assert key not in logged


def test_rate_limit_answers_429_with_retry_after(make_stack, geoip_db):
    """Counted in Redis with REDIS_URL, in the web process's memory without: the limit
    holds in the embedded mode too (it was silently off there before Flask-Limiter)."""
    stack = make_stack(GEOIP_DB=geoip_db, RATE_LIMIT_PER_MINUTE=2)
    key = stack.new_key()
    codes = [post_batch(stack.client, key, [row()]).status_code for _ in range(3)]
    limited = post_batch(stack.client, key, [row()])
    assert codes[:2] == [201, 201]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "Rate limit" in limited.get_json()["message"]
    # Another key is not affected.
    assert post_batch(stack.client, stack.new_key(), [row()]).status_code == 201


def test_health(stack):
    response = stack.client.get("/api/health")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"
    assert response.get_json()["queue"] == "ok"


def test_health_names_the_queue_when_redis_is_down(pg_app, redis_server):
    redis_server.stop()
    try:
        response = pg_app.client.get("/api/health")
        assert response.status_code == 503
        assert response.get_json()["database"] == "ok"
        assert response.get_json()["queue"].startswith("down")
    finally:
        redis_server.start()


def test_openapi_documents_every_endpoint(sqlite_app):
    spec = sqlite_app.client.get("/api/openapi.json").get_json()
    for path in (
        "/api/keys",
        "/api/generate",
        "/api/log-request",
        "/api/requests",
        "/api/data",
        "/api/health",
    ):
        assert path in spec["paths"], path
    ingest = spec["paths"]["/api/log-request"]["post"]
    assert {"201", "400", "401", "413", "415", "422", "429"} <= set(ingest["responses"])
    assert ingest["summary"] == "Ingest a batch of logged requests"
    assert sqlite_app.client.get("/api/docs").status_code == 200


def test_a_retried_batch_is_stored_once(stack):
    key = stack.new_key()
    body = payload(key, [row(path="/once"), row(path="/bad", status=1)])
    headers = {"Idempotency-Key": "batch-0001"}
    first = stack.client.post("/api/log-request", json=body, headers=headers)
    again = stack.client.post("/api/log-request", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # Another key may use the same value; so may a later batch without the header.
    other = stack.new_key()
    assert stack.client.post(
        "/api/log-request", json=payload(other, [row(path="/other")]), headers=headers
    ).get_json() == {"accepted": 1, "rejected": []}
    assert post_batch(stack.client, key, [row(path="/once")]).status_code == 201
    stack.process_jobs()
    assert sorted(r["path"] for r in data(stack, key)) == ["/once", "/once"]
    too_long = stack.client.post(
        "/api/log-request", json=body, headers={"Idempotency-Key": "x" * 129}
    )
    assert too_long.status_code == 400
    assert "Idempotency-Key" in too_long.get_json()["message"]


def test_a_retry_is_answered_without_enriching_its_rows_again(stack, monkeypatch):
    """A replay costs a lookup, not the batch's enrichment: a client retrying under load
    adds no work. Both ways a batch is taken (by column and row by row) are watched."""
    from server.ingest import pipeline

    enriched = []
    original = pipeline.enrich

    def watched(engine, key_id, framework, batch):
        enriched.append(("Columns" if batch.by_column else "Rows", len(batch)))
        return original(engine, key_id, framework, batch)

    monkeypatch.setattr(pipeline, "enrich", watched)
    key = stack.new_key()
    for odd in (False, True):  # the second batch goes row by row (a naive timestamp)
        stamp = {"created_at": "2026-01-02T03:04:05"} if odd else {}
        rows = [row(path=f"/retry/{odd}/{i}", **stamp) for i in range(3)]
        headers = {"Idempotency-Key": f"retry-{odd}"}
        first = stack.client.post("/api/log-request", json=payload(key, rows), headers=headers)
        again = stack.client.post("/api/log-request", json=payload(key, rows), headers=headers)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json() == first.get_json() == {"accepted": 3, "rejected": []}
    assert enriched == [("Columns", 3), ("Rows", 3)]  # once each, on the first try
    changed = stack.client.post(
        "/api/log-request", json=payload(key, [row(path="/other")]), headers=headers
    )
    assert changed.status_code == 422 and len(enriched) == 2
    stack.process_jobs()
    assert len(data(stack, key)) == 6


def test_the_same_idempotency_key_with_other_rows_is_refused_naming_it(stack):
    key = stack.new_key()
    headers = {"Idempotency-Key": "batch-0002"}
    body = payload(key, [row(path="/first")])
    first = stack.client.post("/api/log-request", json=body, headers=headers)
    assert first.status_code == 201
    # The very same batch, written out differently (key order, spacing): a replay.
    respelled = json.dumps(dict(reversed(list(body.items()))), indent=2)
    again = stack.client.post(
        "/api/log-request",
        data=respelled,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"

    other = stack.client.post(
        "/api/log-request", json=payload(key, [row(path="/second")]), headers=headers
    )
    assert other.status_code == 422
    message = other.get_json()["message"]
    assert "Idempotency-Key 'batch-0002' was already used for a different batch" in message
    stack.process_jobs()
    assert [r["path"] for r in data(stack, key)] == ["/first"]


def test_old_receipts_expire(stack):
    from datetime import timedelta

    from server.ingest.sweep import expire_receipts
    from server.models import ingest_receipts

    key = stack.new_key()
    body = payload(key, [row()])
    assert (
        stack.client.post(
            "/api/log-request", json=body, headers={"Idempotency-Key": "k1"}
        ).status_code
        == 201
    )
    assert expire_receipts(stack.engine, older_than=timedelta(hours=1)) == 0
    assert expire_receipts(stack.engine, older_than=timedelta(seconds=-1)) >= 1
    with stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ingest_receipts)).scalar() == 0
