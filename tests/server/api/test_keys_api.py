"""The key's own API: describe and name it, rotate it with a grace period for ingest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from server.config import Config, ConfigError
from server.db import utcnow
from server.keys.api_keys import hash_key
from server.models import api_keys
from tests.conftest import sqlite_stack
from tests.helpers import post_batch, row


def auth(key: str) -> dict:
    return {"X-AUTH-TOKEN": key}


def rows_stored(stack, key: str) -> int:
    stack.process_jobs()
    response = stack.client.get("/api/data", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return len(response.get_json())


def test_current_key_is_described_and_named(stack):
    key = stack.new_key()
    client = stack.client
    about = client.get("/api/keys/current", headers=auth(key))
    assert about.status_code == 200
    body = about.get_json()
    assert body["name"] is None
    assert body["rotation"] == {"previous_key_valid_until": None}
    assert body["created_at"] and body["last_used_at"]
    assert key not in about.get_data(as_text=True)
    assert "hash" not in about.get_data(as_text=True)

    renamed = client.patch("/api/keys/current", headers=auth(key), json={"name": "  Shop API "})
    assert renamed.status_code == 200
    assert renamed.get_json()["name"] == "Shop API"
    assert client.get("/api/keys/current", headers=auth(key)).get_json()["name"] == "Shop API"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": ""}, "The name is empty"),
        ({"name": "   "}, "The name is empty"),
        ({"name": "x" * 101}, "101 characters long: at most 100"),
        ({}, "Invalid field 'name': Missing data"),
        ({"name": 7}, "Invalid field 'name': Not a valid string"),
        ({"name": "ok", "owner": "me"}, "Unknown field 'owner'"),
    ],
)
def test_a_bad_name_is_refused_with_its_reason(sqlite_app, body, message):
    key = sqlite_app.new_key()
    response = sqlite_app.client.patch("/api/keys/current", headers=auth(key), json=body)
    assert response.status_code == 400
    assert message in response.get_json()["message"]
    assert sqlite_app.client.get("/api/keys/current", headers=auth(key)).get_json()["name"] is None


def test_the_key_api_needs_a_key(sqlite_app):
    client = sqlite_app.client
    assert client.get("/api/keys/current").status_code == 401
    assert client.patch("/api/keys/current", json={"name": "x"}).status_code == 401
    assert client.post("/api/keys/rotate").status_code == 401
    assert client.post("/api/keys/rotate", headers=auth("not-a-key")).status_code == 401


def test_rotation_the_old_key_ingests_during_the_grace_period_and_then_stops(stack):
    old = stack.new_key()
    assert post_batch(stack.client, old, [row(path="/before")]).status_code == 201

    rotated = stack.client.post("/api/keys/rotate", headers=auth(old))
    assert rotated.status_code == 201
    new = rotated.get_json()["api_key"]
    assert new != old
    until = rotated.get_json()["previous_key_valid_until"]
    assert until is not None

    # The old key: ingest yes (into the same key's data), everything else no, and says why.
    assert post_batch(stack.client, old, [row(path="/during")]).status_code == 201
    for method, path in (("GET", "/api/data"), ("GET", "/api/keys/current")):
        refused = stack.client.open(path, method=method, headers=auth(old))
        assert refused.status_code == 401
        assert "rotated" in refused.get_json()["message"]
        assert "ingest only" in refused.get_json()["message"]
    assert stack.client.post("/api/keys/rotate", headers=auth(old)).status_code == 401
    assert rows_stored(stack, new) == 2
    described = stack.client.get("/api/keys/current", headers=auth(new)).get_json()
    assert described["rotation"]["previous_key_valid_until"] == until

    # The grace period ends (moved into the past rather than waited for).
    with stack.engine.begin() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.key_hash == hash_key(new))
            .values(previous_key_expires_at=utcnow() - timedelta(seconds=1))
        )
    late = post_batch(stack.client, old, [row(path="/after")])
    assert late.status_code == 401
    assert late.get_json()["message"] == "Unknown or revoked API key."
    assert rows_stored(stack, new) == 2
    assert stack.client.get("/api/keys/current", headers=auth(new)).get_json()["rotation"] == {
        "previous_key_valid_until": None
    }


def test_rotating_twice_keeps_only_the_latest_previous_key(sqlite_app):
    client = sqlite_app.client
    first = sqlite_app.new_key()
    second = client.post("/api/keys/rotate", headers=auth(first)).get_json()["api_key"]
    third = client.post("/api/keys/rotate", headers=auth(second)).get_json()["api_key"]
    assert post_batch(client, first, [row()]).status_code == 401
    assert post_batch(client, second, [row()]).status_code == 201
    assert post_batch(client, third, [row()]).status_code == 201
    assert rows_stored(sqlite_app, third) == 2


def test_no_grace_period_ends_the_old_key_at_once(tmp_path):
    stack = sqlite_stack(tmp_path, KEY_ROTATION_GRACE_HOURS=0)
    old = stack.new_key()
    rotated = stack.client.post("/api/keys/rotate", headers=auth(old)).get_json()
    assert rotated["previous_key_valid_until"] is None
    assert post_batch(stack.client, old, [row()]).status_code == 401
    assert post_batch(stack.client, rotated["api_key"], [row()]).status_code == 201


def test_the_grace_period_comes_from_the_config(tmp_path):
    stack = sqlite_stack(tmp_path, KEY_ROTATION_GRACE_HOURS=2)
    old = stack.new_key()
    before = utcnow()
    stack.client.post("/api/keys/rotate", headers=auth(old))
    with stack.engine.connect() as conn:
        until = conn.execute(select(api_keys.c.previous_key_expires_at)).scalar()
    assert (
        timedelta(hours=2)
        <= until.replace(tzinfo=before.tzinfo) - before
        < timedelta(hours=2, minutes=1)
    )
    assert Config.from_env(environ={}, TESTING=True).KEY_ROTATION_GRACE_HOURS == 24
    with pytest.raises(ConfigError, match="KEY_ROTATION_GRACE_HOURS must be 0 or more"):
        Config.from_env(environ={"KEY_ROTATION_GRACE_HOURS": "-1"}, TESTING=True)


def test_the_key_endpoints_are_in_the_openapi(sqlite_app):
    spec = sqlite_app.client.get("/api/openapi.json").get_json()
    assert {"get", "patch"} <= set(spec["paths"]["/api/keys/current"])
    assert "post" in spec["paths"]["/api/keys/rotate"]
    rotate = spec["paths"]["/api/keys/rotate"]["post"]
    assert "ingest only" in rotate["description"]
    assert "401" in rotate["responses"]
