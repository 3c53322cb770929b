"""/api/health: the database and the queue (200 or 503), plus queue depth and the batch backlog."""

from __future__ import annotations

from tests.helpers import post_batch, row, web_write_fails


def test_healthy_and_idle(stack):
    response = stack.client.get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["database"], body["queue"]) == ("ok", "ok")
    assert body["queue_depth"] == 0
    assert body["oldest_batch_age_seconds"] is None


def test_a_waiting_batch_shows_in_depth_and_age(pg_app, monkeypatch):
    web_write_fails(monkeypatch)  # the batch is staged for a worker
    key = pg_app.new_key()
    assert post_batch(pg_app.client, key, [row()]).status_code == 201
    waiting = pg_app.client.get("/api/health").get_json()
    assert waiting["queue_depth"] == 1
    assert waiting["oldest_batch_age_seconds"] >= 0
    pg_app.process_jobs()
    done = pg_app.client.get("/api/health").get_json()
    assert (done["queue_depth"], done["oldest_batch_age_seconds"]) == (0, None)


def test_queue_down_is_503_and_depth_unknown(pg_app, redis_server):
    redis_server.stop()
    try:
        response = pg_app.client.get("/api/health")
        assert response.status_code == 503
        body = response.get_json()
        assert body["database"] == "ok" and body["queue"].startswith("down")
        assert body["queue_depth"] is None
    finally:
        redis_server.start()


def test_the_openapi_documents_the_new_fields(sqlite_app):
    spec = sqlite_app.client.get("/api/openapi.json").get_json()
    schema = spec["components"]["schemas"]["Health"]["properties"]
    assert {"database", "queue", "queue_depth", "oldest_batch_age_seconds"} <= set(schema)
