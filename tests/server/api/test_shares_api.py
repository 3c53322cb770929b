"""Share links through the API: create (token once), list, revoke, refuse bad input."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from server.keys.shares import hash_token, redact_share_paths
from server.models import share_links


def auth(key: str) -> dict:
    return {"X-AUTH-TOKEN": key}


def create(client, key: str, **body):
    response = client.post("/api/shares", headers=auth(key), json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_share_lifecycle(stack):
    client = stack.client
    key = stack.new_key()
    expires = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    made = create(
        client,
        key,
        label="Support",
        hostname="api.example.com",
        filters={"status_class": "5xx", "location": "us", "endpoint": "get /v1/users"},
        expires_at=expires.isoformat(),
    )
    token = made["token"]
    assert made["path"] == f"/dashboard/s/{token}"
    assert len(token) >= 43
    assert made["filters"] == {
        "status_class": "5xx",
        "location": "US",
        "endpoint": "GET /v1/users",
    }
    assert made["state"] == "active"
    assert datetime.fromisoformat(made["expires_at"]) == expires
    with stack.engine.connect() as conn:
        stored = conn.execute(
            select(share_links.c.token_hash).where(share_links.c.id == made["id"])
        ).scalar_one()
    assert bytes(stored) == hash_token(token)  # the hash, never the token

    listed = client.get("/api/shares", headers=auth(key))
    assert listed.status_code == 200
    assert token not in listed.get_data(as_text=True)
    (item,) = listed.get_json()
    assert {k: item[k] for k in ("id", "label", "hostname", "state")} == {
        "id": made["id"],
        "label": "Support",
        "hostname": "api.example.com",
        "state": "active",
    }
    assert "token" not in item and "token_hash" not in item

    assert client.get(made["path"]).status_code == 200
    assert client.delete(f"/api/shares/{made['id']}", headers=auth(key)).status_code == 204
    assert client.get(made["path"]).status_code == 404
    (item,) = client.get("/api/shares", headers=auth(key)).get_json()
    assert item["state"] == "revoked" and item["revoked_at"]
    # Revoking again changes nothing.
    assert client.delete(f"/api/shares/{made['id']}", headers=auth(key)).status_code == 204


def test_a_key_sees_and_revokes_only_its_own_links(stack):
    client = stack.client
    mine, theirs = stack.new_key(), stack.new_key()
    made = create(client, mine)
    assert client.get("/api/shares", headers=auth(theirs)).get_json() == []
    refused = client.delete(f"/api/shares/{made['id']}", headers=auth(theirs))
    assert refused.status_code == 404
    assert refused.get_json()["message"] == f"No share link {made['id']} for this key."
    assert client.get(made["path"]).status_code == 200
    assert client.delete("/api/shares/99999", headers=auth(mine)).status_code == 404
    assert client.delete(f"/api/shares/{2**31}", headers=auth(mine)).status_code == 404
    assert client.get("/api/shares").status_code == 401
    assert client.post("/api/shares", json={}).status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"filters": {"status": "abc"}}, "Filter 'status' must be an HTTP status"),
        ({"filters": {"status": "700"}}, "from 100 to 599, not '700'"),
        ({"filters": {"status_class": "6xx"}}, "Filter 'status_class' must be 1xx to 5xx"),
        ({"filters": {"location": "USA"}}, "two-letter country code"),
        ({"filters": {"endpoint": "/v1/users"}}, "a method and a path"),
        ({"filters": {"user": "8.8.8.8"}}, "Unknown filter 'user'"),
        ({"filters": {"status": ["500"]}}, "Filter 'status' must be text"),
        ({"filters": ["status"]}, "Invalid field 'filters'"),
        ({"label": "x" * 101}, "'label' is 101 characters long; at most 100"),
        ({"hostname": "a b"}, "'hostname' 'a b' holds a space"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "'expires_at' is in the past"),
        ({"expires_at": "2030-01-01T00:00:00"}, "Invalid field 'expires_at'"),
        ({"expires_at": "soon"}, "Invalid field 'expires_at'"),
        ({"token": "mine"}, "Unknown field 'token'"),
    ],
)
def test_bad_input_is_refused_with_its_reason(sqlite_app, body, message):
    key = sqlite_app.new_key()
    response = sqlite_app.client.post("/api/shares", headers=auth(key), json=body)
    assert response.status_code == 400, response.get_json()
    assert message in response.get_json()["message"]
    with sqlite_app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(share_links)).scalar() == 0


def test_deleting_the_keys_data_deletes_its_links(stack):
    key = stack.new_key()
    made = create(stack.client, key)
    assert stack.client.delete("/api/data", headers=auth(key)).status_code == 204
    with stack.engine.connect() as conn:
        gone = select(func.count()).where(share_links.c.id == made["id"])
        assert conn.execute(gone).scalar() == 0
    assert stack.client.get(made["path"]).status_code == 404


def test_a_request_that_raises_is_logged_without_its_token(sqlite_app, caplog):
    """Flask logs the path of a request that raised: a share link's token must not show."""
    app = sqlite_app.app
    token = "Tok3n-" + "x" * 40

    def boom():
        raise RuntimeError("failed")

    app.add_url_rule("/dashboard/s/<token>/boom", "boom", boom)
    app.testing = False  # answer a 500 and log it, as in production
    with caplog.at_level(logging.ERROR):
        assert sqlite_app.client.get(f"/dashboard/s/{token}/boom").status_code == 500
    assert "Exception on /dashboard/s/[redacted]/boom [GET]" in caplog.text
    assert token not in caplog.text


def test_share_paths_are_redacted():
    token = "AbC_-123xyz"
    assert redact_share_paths(f"GET /dashboard/s/{token}/explorer?period=7d HTTP/1.1") == (
        "GET /dashboard/s/[redacted]/explorer?period=7d HTTP/1.1"
    )
    assert redact_share_paths(f"http://h:8000/dashboard/s/{token}") == (
        "http://h:8000/dashboard/s/[redacted]"
    )
    assert redact_share_paths("/dashboard/settings") == "/dashboard/settings"
