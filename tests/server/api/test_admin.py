"""The operators' RQ dashboard at /admin/rq: behind ADMIN_TOKEN, or absent (404) and logged."""

from __future__ import annotations

import base64
import logging

import pytest

from tests.conftest import postgres_stack, sqlite_stack

TOKEN = "operators-only-7f3a"


def basic(user: str, password: str) -> dict:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


@pytest.fixture
def admin_stack(pg_url, redis_url, tmp_path):
    return postgres_stack(pg_url, redis_url, tmp_path, ADMIN_TOKEN=TOKEN)


def test_refused_without_the_token(admin_stack):
    client = admin_stack.client
    for headers in (
        {},
        basic("admin", "wrong"),
        basic(TOKEN, ""),  # the token as user name is not the password
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Basic not-base64!"},
    ):
        for path in (
            "/admin/rq/",
            "/admin/rq/0/data/queues.json",
            "/admin/rq/static/css/bootstrap.min.css",
        ):
            response = client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["WWW-Authenticate"].startswith("Basic")
            assert TOKEN not in response.get_data(as_text=True)


def test_served_with_the_token(admin_stack):
    client = admin_stack.client
    for headers in (basic("anyone", TOKEN), basic("", TOKEN), {"Authorization": f"Bearer {TOKEN}"}):
        page = client.get("/admin/rq/", headers=headers)
        assert page.status_code == 200
        assert "RQ" in page.get_data(as_text=True)
        queues = client.get("/admin/rq/0/data/queues.json", headers=headers)
        assert queues.status_code == 200
        names = {q["name"] for q in queues.get_json()["queues"]}
        assert names <= {"lake", "ingest", "monitors", "maintenance", "alerts"}


def test_the_rest_of_the_app_needs_no_admin_token(admin_stack):
    assert admin_stack.client.get("/api/health").status_code == 200


def test_without_a_token_it_is_404_and_the_log_says_why(pg_url, redis_url, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="server.admin"):
        stack = postgres_stack(pg_url, redis_url, tmp_path)
    assert stack.client.get("/admin/rq/").status_code == 404
    assert stack.client.get("/admin/rq/", headers=basic("x", "")).status_code == 404
    assert "ADMIN_TOKEN is not set" in caplog.text


def test_embedded_mode_has_none_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="server.admin"):
        stack = sqlite_stack(tmp_path, ADMIN_TOKEN=TOKEN)
    assert stack.client.get("/admin/rq/", headers=basic("x", TOKEN)).status_code == 404
    assert "no REDIS_URL" in caplog.text
    assert TOKEN not in caplog.text


def test_a_foreign_page_cannot_use_the_operators_remembered_credentials(admin_stack):
    """Browsers resend HTTP basic credentials by themselves: a cross-site POST is refused."""
    from redis import Redis
    from rq import Queue

    redis = Redis.from_url(admin_stack.config.REDIS_URL)
    Queue("maintenance", connection=redis).enqueue("server.queue.call_path", "os.getpid")
    url = "/admin/rq/queue/maintenance/queued/empty"
    auth = basic("ops", TOKEN)
    foreign = admin_stack.client.post(url, headers={**auth, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert Queue("maintenance", connection=redis).count == 1
    own = admin_stack.client.post(url, headers={**auth, "Origin": "http://localhost"})
    assert own.status_code == 200
    assert Queue("maintenance", connection=redis).count == 0
