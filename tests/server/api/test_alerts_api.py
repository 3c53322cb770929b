"""The alerts API: rules and channels lifecycle, bad input by name, the SSRF guard, the docs,
and everything of a key's alerts gone with the key."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.db import utcnow
from server.keys.api_keys import delete_key, lookup_key
from server.models import alert_channels, alert_deliveries, alert_incidents, alert_rules
from tests.server.api.test_monitors_api import auth

PUBLIC = "http://1.1.1.1/hook"


def test_lifecycle(stack):
    client, key = stack.client, stack.new_key()
    channel = client.post(
        "/api/alerts/channels",
        json={"kind": "webhook", "name": "ops", "url": PUBLIC},
        headers=auth(key),
    )
    assert channel.status_code == 201, channel.get_json()
    channel = channel.get_json()
    assert channel["kind"] == "webhook" and channel["target"] == PUBLIC
    assert len(channel["secret"]) == 64  # shown once...
    listed = client.get("/api/alerts/channels", headers=auth(key)).get_json()
    assert [c["id"] for c in listed] == [channel["id"]] and "secret" not in listed[0]  # ...only

    body = {
        "kind": "error_rate",
        "name": "Errors",
        "threshold": 10,
        "window_minutes": 5,
        "min_requests": 20,
        "channel_ids": [channel["id"]],
    }
    created = client.post("/api/alerts", json=body, headers=auth(key))
    assert created.status_code == 201, created.get_json()
    rule = created.get_json()
    assert rule["state"] == "ok" and rule["channel_ids"] == [channel["id"]]
    assert rule["threshold"] == 10 and rule["include_4xx"] is False
    assert client.get(f"/api/alerts/{rule['id']}", headers=auth(key)).get_json() == rule
    assert client.get("/api/alerts", headers=auth(key)).get_json() == [rule]
    assert client.get("/api/alerts/incidents", headers=auth(key)).get_json() == []

    # Another key sees none of it.
    other = stack.new_key()
    assert client.get("/api/alerts", headers=auth(other)).get_json() == []
    assert client.get(f"/api/alerts/{rule['id']}", headers=auth(other)).status_code == 404
    assert client.delete(f"/api/alerts/{rule['id']}", headers=auth(other)).status_code == 404
    foreign = client.post(
        "/api/alerts", json={**body, "channel_ids": [channel["id"]]}, headers=auth(other)
    )
    assert foreign.status_code == 400 and "channel_ids" in foreign.get_json()["message"]

    changed = client.patch(
        f"/api/alerts/{rule['id']}", json={"threshold": 25, "channel_ids": []}, headers=auth(key)
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["threshold"] == 25 and changed.get_json()["channel_ids"] == []
    assert changed.get_json()["min_requests"] == 20  # what was not sent stays
    refused = client.patch(f"/api/alerts/{rule['id']}", json={"threshold": 250}, headers=auth(key))
    assert refused.status_code == 400 and "threshold" in refused.get_json()["message"]
    wrong_kind = client.patch(
        f"/api/alerts/{rule['id']}", json={"kind": "monitor_down"}, headers=auth(key)
    )
    assert wrong_kind.status_code == 400 and "consecutive" in wrong_kind.get_json()["message"]
    assert client.get(f"/api/alerts/{rule['id']}", headers=auth(key)).get_json()["threshold"] == 25
    other_patch = client.patch(f"/api/alerts/{rule['id']}", json={"name": "x"}, headers=auth(other))
    assert other_patch.status_code == 404

    assert client.delete(f"/api/alerts/{rule['id']}", headers=auth(key)).status_code == 204
    assert client.get("/api/alerts", headers=auth(key)).get_json() == []
    assert client.delete(f"/api/alerts/{rule['id']}", headers=auth(key)).status_code == 404
    gone = client.delete(f"/api/alerts/channels/{channel['id']}", headers=auth(key))
    assert gone.status_code == 204
    assert client.get("/api/alerts/channels", headers=auth(key)).get_json() == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "kind"),
        ({"kind": "cpu"}, "kind"),
        ({"kind": "error_rate", "window_minutes": 5}, "threshold"),
        ({"kind": "error_rate", "threshold": 10}, "window_minutes"),
        ({"kind": "error_rate", "threshold": 101, "window_minutes": 5}, "threshold"),
        ({"kind": "error_rate", "threshold": "lots", "window_minutes": 5}, "threshold"),
        ({"kind": "error_rate", "threshold": 5, "window_minutes": 0}, "window_minutes"),
        (
            {"kind": "error_rate", "threshold": 5, "window_minutes": 5, "min_requests": 0},
            "min_requests",
        ),
        (
            {"kind": "latency_p95", "threshold": 300, "window_minutes": 5, "endpoint": "items"},
            "endpoint",
        ),
        ({"kind": "monitor_down", "consecutive": 3}, "monitor_id"),
        ({"kind": "monitor_down", "monitor_id": 999999, "consecutive": 3}, "monitor_id"),
        ({"kind": "monitor_down", "monitor_id": 1}, "consecutive"),
        ({"kind": "no_traffic"}, "window_minutes"),
        ({"kind": "no_traffic", "window_minutes": 10, "channel_ids": [424242]}, "channel_ids"),
        ({"kind": "no_traffic", "window_minutes": 10, "colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_refused_by_name(stack, body, named):
    key = stack.new_key()
    response = stack.client.post("/api/alerts", json=body, headers=auth(key))
    assert response.status_code == 400, response.get_json()
    assert named in response.get_json()["message"]
    assert stack.client.get("/api/alerts", headers=auth(key)).get_json() == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"kind": "pager"}, "kind"),
        ({"kind": "webhook"}, "url"),
        ({"kind": "slack", "url": "ftp://1.1.1.1/x"}, "http"),
        ({"kind": "webhook", "url": PUBLIC, "email": "a@example.com"}, "email"),
        ({"kind": "email", "email": "not-an-address"}, "email"),
        ({"kind": "email", "email": "ops@example.com"}, "SMTP_URL"),
    ],
)
def test_bad_channels_are_refused_by_name(stack, body, named):
    key = stack.new_key()
    response = stack.client.post("/api/alerts/channels", json=body, headers=auth(key))
    assert response.status_code == 400, response.get_json()
    assert named in response.get_json()["message"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest"]
)
def test_private_webhook_targets_are_refused_naming_the_setting(stack, url):
    key = stack.new_key()
    for kind in ("webhook", "slack"):
        response = stack.client.post(
            "/api/alerts/channels", json={"kind": kind, "url": url}, headers=auth(key)
        )
        assert response.status_code == 400
        assert "MONITOR_ALLOW_PRIVATE" in response.get_json()["message"]


def test_a_private_smtp_host_is_refused_naming_the_setting(make_stack):
    stack = make_stack(SMTP_URL="smtp://user:pw@127.0.0.1:2525", SMTP_FROM="a@example.com")
    key = stack.new_key()
    response = stack.client.post(
        "/api/alerts/channels",
        json={"kind": "email", "email": "ops@example.com"},
        headers=auth(key),
    )
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert "MONITOR_ALLOW_PRIVATE" in message and "pw" not in message


def test_private_targets_are_allowed_when_the_operator_says_so(make_stack):
    stack = make_stack(MONITOR_ALLOW_PRIVATE=True)
    key = stack.new_key()
    response = stack.client.post(
        "/api/alerts/channels",
        json={"kind": "slack", "url": "http://127.0.0.1:9/hook"},
        headers=auth(key),
    )
    assert response.status_code == 201 and response.get_json()["secret"] is None


def test_a_key_is_required(stack):
    client = stack.client
    rule = {"kind": "no_traffic", "window_minutes": 5}
    channel = {"kind": "slack", "url": PUBLIC}
    for method, path, body in (
        ("get", "/api/alerts", None),
        ("post", "/api/alerts", rule),
        ("get", "/api/alerts/1", None),
        ("delete", "/api/alerts/1", None),
        ("patch", "/api/alerts/1", {"name": "x"}),
        ("get", "/api/alerts/incidents", None),
        ("get", "/api/alerts/channels", None),
        ("post", "/api/alerts/channels", channel),
        ("delete", "/api/alerts/channels/1", None),
        ("post", "/api/alerts/channels/1/test", None),
        ("get", "/api/alerts/channels/1/test", None),
    ):
        assert getattr(client, method)(path, json=body).status_code == 401, path
        wrong = getattr(client, method)(path, json=body, headers=auth("nope"))
        assert wrong.status_code == 401, path


def test_everything_goes_with_the_key(stack):
    client, key = stack.client, stack.new_key()
    channel = client.post(
        "/api/alerts/channels", json={"kind": "webhook", "url": PUBLIC}, headers=auth(key)
    ).get_json()
    rule = client.post(
        "/api/alerts",
        json={"kind": "no_traffic", "window_minutes": 30, "channel_ids": [channel["id"]]},
        headers=auth(key),
    ).get_json()
    tested = client.post(f"/api/alerts/channels/{channel['id']}/test", headers=auth(key))
    assert tested.status_code == 202 and tested.get_json()["event"] == "test"
    with stack.engine.begin() as conn:
        key_id = lookup_key(conn, key)
        conn.execute(
            alert_incidents.insert().values(
                key_id=key_id, rule_id=rule["id"], started_at=utcnow(), summary="x"
            )
        )
    assert owned_rows(stack, key_id) == [1, 1, 1, 1]
    assert client.delete("/api/data", headers=auth(key)).status_code in (200, 204)
    assert owned_rows(stack, key_id) == [0, 0, 0, 0]


def owned_rows(stack, key_id) -> list[int]:
    with stack.engine.connect() as conn:
        return [
            conn.execute(
                select(func.count()).select_from(table).where(table.c.key_id == key_id)
            ).scalar()
            for table in (alert_rules, alert_channels, alert_incidents, alert_deliveries)
        ]


def test_deleting_a_key_deletes_its_rules(stack):
    """Retention's path (server.lake.erase), not only DELETE /api/data."""
    client, key = stack.client, stack.new_key()
    client.post("/api/alerts", json={"kind": "no_traffic", "window_minutes": 5}, headers=auth(key))
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    assert owned_rows(stack, key_id)[0] == 1
    delete_key(key_id, stack.engine, stack.config)
    assert owned_rows(stack, key_id)[0] == 0


def test_the_api_is_documented(stack):
    spec = stack.client.get("/api/openapi.json").get_json()
    for path in (
        "/api/alerts",
        "/api/alerts/{rule_id}",
        "/api/alerts/incidents",
        "/api/alerts/channels",
        "/api/alerts/channels/{channel_id}",
        "/api/alerts/channels/{channel_id}/test",
    ):
        assert path in spec["paths"], path
    post = spec["paths"]["/api/alerts"]["post"]
    assert {"201", "400", "401", "409"} <= set(post["responses"])
    assert post["security"] == [{"ApiKey": []}]


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "smtp://host:notaport"])
def test_a_malformed_smtp_url_stops_the_start_naming_it(tmp_path, url):
    from server.config import Config, ConfigError

    with pytest.raises(ConfigError, match="SMTP_URL"):
        Config.from_env(environ={"SMTP_URL": url, "DATA_DIR": str(tmp_path), "TESTING": "1"})


def test_smtp_settings_never_show_the_password():
    from server.config import parse_smtp_url

    settings = parse_smtp_url("smtps://alerts%40example.com:p%40ss@mail.example.com")
    assert (settings.username, settings.password) == ("alerts@example.com", "p@ss")
    assert settings.port == 465 and "p@ss" not in repr(settings) and "p@ss" not in str(settings)


def test_the_start_up_note_names_the_smtp_server_but_not_its_password(tmp_path):
    from server.config import Config
    from server.runtime.startup import notes

    config = Config.from_env(
        environ={"SMTP_URL": "smtp://ops:hunter2@mail.example.com", "DATA_DIR": str(tmp_path)},
        TESTING=True,
    )
    said = " ".join(note.message for note in notes(config))
    assert "smtp://mail.example.com:587" in said and "hunter2" not in said
