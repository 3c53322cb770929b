"""Caps on everything a key can make, each a 409 naming the cap, holding when many
requests ask at once (on PostgreSQL 24 concurrent POST /api/alerts after 45 rules left 53
with a cap of 50)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from server.keys.api_keys import lookup_key
from server.models import alert_channels, alert_rules, key_masks, monitors, share_links


def count(stack, table, key) -> int:
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.key_id == key_id)
        ).scalar()


def at_once(stack, requests: list) -> list:
    """Send (method, path, json) requests at the same moment, each from a client of its
    own; their answers."""
    start = threading.Barrier(len(requests))

    def send(request):
        method, path, body, headers = request
        client = stack.app.test_client()
        start.wait()
        return getattr(client, method)(path, json=body, headers=headers)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def rule(i: int) -> dict:
    return {"kind": "error_rate", "name": f"r{i}", "threshold": 5, "window_minutes": 5}


def test_24_rules_at_once_never_pass_the_cap_of_50(stack):
    key = stack.new_key()
    auth = {"X-AUTH-TOKEN": key}
    for i in range(45):
        assert stack.client.post("/api/alerts", json=rule(i), headers=auth).status_code == 201
    answers = at_once(stack, [("post", "/api/alerts", rule(100 + i), auth) for i in range(24)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 5 + [409] * 19, codes
    assert count(stack, alert_rules, key) == 50
    refused = next(a for a in answers if a.status_code == 409)
    assert "50 alert rules" in refused.json["message"]


@pytest.mark.parametrize(
    ("kind", "table", "limit", "setting"),
    [
        ("share", share_links, 5, "SHARE_LIMIT"),
        ("monitor", monitors, 3, "MONITOR_LIMIT"),
        ("channel", alert_channels, 20, None),
        ("mask", key_masks, 100, None),
    ],
)
def test_each_cap_is_a_409_naming_it_and_holds_at_once(make_stack, kind, table, limit, setting):
    stack = make_stack(SHARE_LIMIT=5, MONITOR_LIMIT=3, MONITOR_ALLOW_PRIVATE=True)
    key = stack.new_key()
    auth = {"X-AUTH-TOKEN": key}

    def request(i: int):
        return {
            "share": ("post", "/api/shares", {"label": f"l{i}"}, auth),
            "monitor": ("post", "/api/monitors", {"url": f"http://127.0.0.1:9/m{i}"}, auth),
            "channel": (
                "post",
                "/api/alerts/channels",
                {"kind": "slack", "name": f"c{i}", "url": f"http://127.0.0.1:9/c{i}"},
                auth,
            ),
            "mask": ("post", "/api/masks", {"kind": "header", "pattern": f"^x-m{i}$"}, auth),
        }[kind]

    for i in range(limit - 2):
        method, path, body, headers = request(i)
        answer = getattr(stack.client, method)(path, json=body, headers=headers)
        assert answer.status_code == 201, answer.json
    answers = at_once(stack, [request(1000 + i) for i in range(10)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 2 + [409] * 8, [a.json for a in answers]
    assert count(stack, table, key) == limit
    message = next(a for a in answers if a.status_code == 409).json["message"]
    assert str(limit) in message
    if setting:
        assert setting in message


def test_revoked_and_expired_links_leave_room_and_are_pruned(make_stack):
    stack = make_stack(SHARE_LIMIT=2)
    key = stack.new_key()
    auth = {"X-AUTH-TOKEN": key}
    made = [stack.client.post("/api/shares", json={}, headers=auth) for _ in range(2)]
    assert [m.status_code for m in made] == [201, 201]
    full = stack.client.post("/api/shares", json={}, headers=auth)
    assert full.status_code == 409
    assert "2 share links" in full.json["message"] and "SHARE_LIMIT" in full.json["message"]
    for _round in range(4):
        listed = stack.client.get("/api/shares", headers=auth).json
        active = [s for s in listed if s["state"] == "active"]
        assert (
            stack.client.delete(f"/api/shares/{active[0]['id']}", headers=auth).status_code == 204
        )
        assert stack.client.post("/api/shares", json={}, headers=auth).status_code == 201
    # Revoked links stay listed, but only as many as the cap: the table does not grow.
    listed = stack.client.get("/api/shares", headers=auth).json
    assert sum(s["state"] == "active" for s in listed) == 2
    assert sum(s["state"] == "revoked" for s in listed) <= 2


def test_the_settings_page_says_the_share_cap(make_stack):
    from tests.dash_app.test_session import form_token, sign_in

    stack = make_stack(SHARE_LIMIT=1)
    key = stack.new_key()
    client = stack.client
    sign_in(client, key)

    def share():
        data = {"csrf_token": form_token(client), "action": "share", "label": "x"}
        return client.post("/dashboard/settings", data=data)

    assert share().status_code == 200  # the page that shows the new link
    refused = share()
    assert refused.status_code == 303
    page = client.get("/dashboard/settings")
    assert page.status_code == 200
    with client.session_transaction() as session:
        flashes = session.get("_flashes", [])
    assert any("1 share links" in text and "SHARE_LIMIT" in text for _k, text in flashes)
    assert count(stack, share_links, key) == 1
