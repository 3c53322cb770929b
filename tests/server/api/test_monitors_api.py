"""The monitors API: lifecycle, bad input, limits, the SSRF guard, pings and uptime, the docs.

No check runs in these tests: monitors are created and read, never requested.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.keys.api_keys import lookup_key
from server.monitors.checks import store_ping
from server.monitors.probe import Outcome

# A public address literal: accepted without resolving any name, and never contacted here.
PUBLIC = "http://1.1.1.1"


def auth(key):
    return {"X-AUTH-TOKEN": key}


def test_lifecycle(stack):
    client, key = stack.client, stack.new_key()
    created = client.post(
        "/api/monitors", json={"url": f"{PUBLIC}/health", "method": "HEAD"}, headers=auth(key)
    )
    assert created.status_code == 201, created.get_json()
    monitor = created.get_json()
    assert monitor["url"] == f"{PUBLIC}/health" and monitor["method"] == "HEAD"
    assert monitor["latest"] is None
    assert monitor["uptime"] == {"24h": None, "7d": None, "30d": None}
    datetime.fromisoformat(monitor["created_at"])

    listed = client.get("/api/monitors", headers=auth(key))
    assert listed.status_code == 200 and listed.get_json() == [monitor]
    pings = client.get(f"/api/monitors/{monitor['id']}/pings", headers=auth(key))
    assert pings.status_code == 200 and pings.get_json() == []

    bad = client.post("/api/monitors", json={"url": "ftp://1.1.1.1/"}, headers=auth(key))
    assert bad.status_code == 400 and "http" in bad.get_json()["message"]

    deleted = client.delete(f"/api/monitors/{monitor['id']}", headers=auth(key))
    assert deleted.status_code == 204 and "Content-Type" not in deleted.headers
    assert client.get("/api/monitors", headers=auth(key)).get_json() == []
    again = client.delete(f"/api/monitors/{monitor['id']}", headers=auth(key))
    assert again.status_code == 404
    gone = client.get(f"/api/monitors/{monitor['id']}/pings", headers=auth(key))
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "url"),
        ({"url": ""}, "url"),
        ({"url": 42}, "url"),
        ({"url": f"{PUBLIC}/", "method": "POST"}, "method"),
        ({"url": f"{PUBLIC}/", "method": "get"}, "method"),
        ({"url": f"{PUBLIC}/", "interval": 5}, "interval"),
        ({"url": f"{PUBLIC}/" + "a" * 2048}, "url"),
        ({"url": "javascript:alert(1)"}, "http"),
        ({"url": "file:///etc/passwd"}, "http"),
        ({"url": "http://"}, "host"),
        ({"url": "http://user:secret@1.1.1.1/"}, "Credentials"),
        ({"url": "http://1.1.1.1:99999/"}, "malformed"),
        ({"url": "http://1.1.1.1/a b"}, "spaces"),
    ],
)
def test_bad_input_is_refused(stack, body, named):
    key = stack.new_key()
    response = stack.client.post("/api/monitors", json=body, headers=auth(key))
    assert response.status_code == 400, response.get_json()
    assert named in response.get_json()["message"]
    assert stack.client.get("/api/monitors", headers=auth(key)).get_json() == []


def test_the_longest_url_is_accepted(stack):
    key = stack.new_key()
    url = f"{PUBLIC}/" + "a" * (2048 - len(PUBLIC) - 1)
    assert len(url) == 2048
    response = stack.client.post("/api/monitors", json={"url": url}, headers=auth(key))
    assert response.status_code == 201, response.get_json()


def test_a_key_is_required(stack):
    assert stack.client.get("/api/monitors").status_code == 401
    assert stack.client.post("/api/monitors", json={"url": f"{PUBLIC}/"}).status_code == 401
    assert stack.client.delete("/api/monitors/1").status_code == 401
    assert stack.client.get("/api/monitors/1/pings").status_code == 401
    wrong = auth("not-a-key")
    assert stack.client.get("/api/monitors", headers=wrong).status_code == 401


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.8.9.10:8080/admin",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/",
        "http://[fd00:ec2::254]/",
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://100.64.0.1/",
        "https://localhost/",  # a name that resolves to loopback
        "http://LocalHost:8000/",
    ],
)
def test_the_guard_refuses_non_public_addresses(stack, url):
    key = stack.new_key()
    response = stack.client.post("/api/monitors", json={"url": url}, headers=auth(key))
    assert response.status_code == 400, response.get_json()
    assert "public addresses" in response.get_json()["message"]
    assert stack.client.get("/api/monitors", headers=auth(key)).get_json() == []


def test_the_allow_setting_lets_a_private_network_be_monitored(make_stack):
    stack = make_stack(MONITOR_ALLOW_PRIVATE=True)
    key = stack.new_key()
    for url in ("http://127.0.0.1:8000/health", "http://localhost/", "http://10.0.0.1/"):
        response = stack.client.post("/api/monitors", json={"url": url}, headers=auth(key))
        assert response.status_code == 201, (url, response.get_json())
    # Still http(s) only.
    ftp = stack.client.post("/api/monitors", json={"url": "ftp://10.0.0.1/"}, headers=auth(key))
    assert ftp.status_code == 400
    for monitor in stack.client.get("/api/monitors", headers=auth(key)).get_json():
        stack.client.delete(f"/api/monitors/{monitor['id']}", headers=auth(key))


def test_limit_and_duplicates_are_409(make_stack):
    stack = make_stack(MONITOR_LIMIT=2)
    key, other = stack.new_key(), stack.new_key()
    post = stack.client.post
    assert post("/api/monitors", json={"url": f"{PUBLIC}/a"}, headers=auth(key)).status_code == 201
    duplicate = post("/api/monitors", json={"url": f"{PUBLIC}/a"}, headers=auth(key))
    assert duplicate.status_code == 409 and "already monitors" in duplicate.get_json()["message"]
    head = post("/api/monitors", json={"url": f"{PUBLIC}/a", "method": "HEAD"}, headers=auth(key))
    assert head.status_code == 201
    over = post("/api/monitors", json={"url": f"{PUBLIC}/b"}, headers=auth(key))
    assert over.status_code == 409 and "2 monitors" in over.get_json()["message"]
    # The limit and the duplicates are per key.
    assert (
        post("/api/monitors", json={"url": f"{PUBLIC}/a"}, headers=auth(other)).status_code == 201
    )


@pytest.mark.parametrize("monitor_id", [0, 2**31, 2**63, 10**30])
def test_ids_no_monitor_can_have_are_404(stack, monitor_id):
    key = stack.new_key()
    path = f"/api/monitors/{monitor_id}"
    assert stack.client.delete(path, headers=auth(key)).status_code == 404
    assert stack.client.get(f"{path}/pings", headers=auth(key)).status_code == 404


def test_keys_see_only_their_own_monitors(stack):
    owner, stranger = stack.new_key(), stack.new_key()
    created = stack.client.post("/api/monitors", json={"url": f"{PUBLIC}/"}, headers=auth(owner))
    monitor_id = created.get_json()["id"]
    assert stack.client.get("/api/monitors", headers=auth(stranger)).get_json() == []
    path = f"/api/monitors/{monitor_id}"
    assert stack.client.delete(path, headers=auth(stranger)).status_code == 404
    assert stack.client.get(f"{path}/pings", headers=auth(stranger)).status_code == 404
    assert stack.client.delete(path, headers=auth(owner)).status_code == 204


def test_pings_uptime_and_latest(stack):
    key = stack.new_key()
    created = stack.client.post("/api/monitors", json={"url": f"{PUBLIC}/"}, headers=auth(key))
    monitor_id = created.get_json()["id"]
    now = datetime.now(UTC).replace(microsecond=0)
    history = [  # (age, status, error): 2 of 3 up in 24 h, 2 of 6 in 7 d, 2 of 8 in 30 d
        (timedelta(minutes=5), 200, None),
        (timedelta(hours=2), None, "timeout"),
        (timedelta(hours=20), 301, None),
        (timedelta(days=2), 503, None),
        (timedelta(days=3), 404, None),
        (timedelta(days=6), None, "dns"),
        (timedelta(days=10), None, "connection refused"),
        (timedelta(days=20), None, "tls"),
        (timedelta(days=40), 200, None),  # outside every window
    ]
    for age, status, error in history:
        moment = now - age
        outcome = Outcome(status, 30 if status else None, error)
        assert store_ping(stack.engine, monitor_id, moment, moment, outcome)
    # The same round again stores nothing.
    moment = now - history[0][0]
    assert not store_ping(stack.engine, monitor_id, moment, moment, Outcome(500, 1, None))

    monitor = stack.client.get("/api/monitors", headers=auth(key)).get_json()[0]
    assert monitor["uptime"] == {"24h": 66.67, "7d": 33.33, "30d": 25.0}
    assert monitor["latest"]["status"] == 200 and monitor["latest"]["error"] is None

    pings_url = f"/api/monitors/{monitor_id}/pings"
    every = stack.client.get(pings_url, headers=auth(key)).get_json()
    assert [p["error"] or p["status"] for p in every] == [s or e for _, s, e in history]
    assert every[1] == {
        "created_at": (now - timedelta(hours=2)).isoformat(),
        "status": None,
        "response_time": None,
        "error": "timeout",
    }
    since = (now - timedelta(days=4)).isoformat()
    until = (now - timedelta(hours=1)).isoformat()
    window = stack.client.get(
        pings_url, query_string={"from": since, "to": until}, headers=auth(key)
    )
    assert [p["status"] or p["error"] for p in window.get_json()] == ["timeout", 301, 503, 404]
    day = (now - timedelta(days=10)).date().isoformat()
    one_day = stack.client.get(pings_url, query_string={"from": day, "to": day}, headers=auth(key))
    assert [p["error"] for p in one_day.get_json()] == ["connection refused"]
    limited = stack.client.get(pings_url, query_string={"limit": 2}, headers=auth(key))
    assert len(limited.get_json()) == 2


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"since": "2026-01-01"}, "since"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "after"),
    ],
)
def test_bad_ping_queries(stack, query, named):
    key = stack.new_key()
    created = stack.client.post("/api/monitors", json={"url": f"{PUBLIC}/"}, headers=auth(key))
    url = f"/api/monitors/{created.get_json()['id']}/pings"
    response = stack.client.get(url, query_string=query, headers=auth(key))
    assert response.status_code == 400
    assert named in response.get_json()["message"]


def test_deleting_the_key_data_deletes_monitors(stack):
    key = stack.new_key()
    created = stack.client.post("/api/monitors", json={"url": f"{PUBLIC}/"}, headers=auth(key))
    monitor_id = created.get_json()["id"]
    moment = datetime.now(UTC)
    store_ping(stack.engine, monitor_id, moment, moment, Outcome(200, 3, None))
    assert stack.client.delete("/api/data", headers=auth(key)).status_code == 204
    with stack.engine.connect() as conn:
        assert lookup_key(conn, key) is None
        from sqlalchemy import func, select

        from server.models import monitors, pings

        assert (
            conn.execute(
                select(func.count()).select_from(monitors).where(monitors.c.id == monitor_id)
            ).scalar_one()
            == 0
        )
        assert (
            conn.execute(
                select(func.count()).select_from(pings).where(pings.c.monitor_id == monitor_id)
            ).scalar_one()
            == 0
        )


def test_the_openapi_documents_every_route_and_error(sqlite_app):
    spec = sqlite_app.client.get("/api/openapi.json").get_json()
    paths = spec["paths"]
    expected = {
        ("/api/monitors", "get"): {"200", "401"},
        ("/api/monitors", "post"): {"201", "400", "401", "409"},
        ("/api/monitors/{monitor_id}", "delete"): {"204", "401", "404"},
        ("/api/monitors/{monitor_id}/pings", "get"): {"200", "400", "401", "404"},
    }
    for (path, method), codes in expected.items():
        operation = paths[path][method]
        assert codes <= set(operation["responses"]), (path, method)
        assert operation["summary"]
        assert operation["security"] == [{"ApiKey": []}]
    names = {p["name"] for p in paths["/api/monitors/{monitor_id}/pings"]["get"]["parameters"]}
    assert {"from", "to", "limit"} <= names
