"""Who may make keys (SIGNUP open, closed, invite), the operators' commands and admin API,
invitations used once, and key creation rate limited per client address."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from server.config import Config, ConfigError
from server.db import utcnow
from server.models import api_keys, invites
from tests.dash_app.test_session import form_token, render_page

ADMIN = {"Authorization": "Bearer operator-secret"}


def keys_stored(stack) -> int:
    with stack.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(api_keys)).scalar()


def works(stack, key: str) -> bool:
    return stack.client.get("/api/keys/current", headers={"X-AUTH-TOKEN": key}).status_code == 200


def test_production_closes_sign_up_unless_told_otherwise():
    base = {"APP_ENV": "production", "DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": "s"}
    assert Config.from_env(base).SIGNUP == "closed"
    assert Config.from_env({**base, "SIGNUP": "invite"}).SIGNUP == "invite"
    assert Config.from_env({}).SIGNUP == "open"
    with pytest.raises(ConfigError, match="SIGNUP must be open, closed or invite, not 'maybe'"):
        Config.from_env({"SIGNUP": "maybe"})
    with pytest.raises(ConfigError, match="KEY_CREATE_PER_HOUR must be 0 or more"):
        Config.from_env({"KEY_CREATE_PER_HOUR": "-1"})

    # A start says which, once (a closed instance's POST /api/keys is a 403).
    from server.runtime.startup import notes

    said = [n.message for n in notes(Config.from_env(base))]
    assert any(m.startswith("SIGNUP=closed: only operators make keys") for m in said), said
    said = [n.message for n in notes(Config.from_env({}))]
    assert any(m.startswith("SIGNUP=open: anyone may create a key, at most 10") for m in said)


def test_open_sign_up_is_todays_behaviour(make_stack):
    stack = make_stack()
    assert stack.client.post("/api/keys").status_code == 201
    assert stack.client.get("/api/generate").status_code == 200
    named = stack.client.post("/api/keys", json={"name": "Shop API"})
    assert named.status_code == 201
    about = stack.client.get("/api/keys/current", headers={"X-AUTH-TOKEN": named.json["api_key"]})
    assert about.json["name"] == "Shop API"
    assert "create-key" in str(render_page(stack.client)["page"])


def test_closed_sign_up_leaves_key_making_to_the_operator(make_stack):
    stack = make_stack(SIGNUP="closed", ADMIN_TOKEN="operator-secret")
    client = stack.client
    before = keys_stored(stack)
    for answer in (client.post("/api/keys"), client.get("/api/generate")):
        assert answer.status_code == 403
        assert "Sign-up is closed" in answer.json["message"]
        assert "flask --app wsgi keys create" in answer.json["message"]
    # The dashboard offers no Create a key, and refuses the form if it is posted anyway.
    page = str(render_page(client)["page"])
    assert "create-key" not in page and "operator makes the keys" in page
    forged = client.post("/dashboard/create-key", data={"csrf_token": form_token(client)})
    assert forged.status_code == 403
    assert keys_stored(stack) == before

    made = client.post("/api/admin/keys", json={"name": "Shop API"}, headers=ADMIN)
    assert made.status_code == 201 and made.json["name"] == "Shop API"
    assert works(stack, made.json["api_key"])
    listed = client.get("/api/admin/keys", headers=ADMIN).json
    assert (made.json["id"], "Shop API") in [(k["id"], k["name"]) for k in listed]
    assert made.json["api_key"] not in str(listed)
    assert client.delete(f"/api/admin/keys/{made.json['id']}", headers=ADMIN).status_code == 204
    assert not works(stack, made.json["api_key"])
    assert client.delete(f"/api/admin/keys/{made.json['id']}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Og=="}]
)
def test_the_admin_api_takes_only_the_operators_token(sqlite_app, tmp_path, headers):
    from tests.conftest import sqlite_stack

    off = sqlite_app.client.post("/api/admin/keys", headers=headers)
    assert off.status_code == 404 and "ADMIN_TOKEN" in off.json["message"]
    (tmp_path / "admin").mkdir()
    stack = sqlite_stack(tmp_path / "admin", ADMIN_TOKEN="operator-secret")
    answer = stack.client.post("/api/admin/keys", headers=headers)
    assert answer.status_code == 401
    assert "ADMIN_TOKEN" in answer.json["message"]
    assert stack.client.post("/api/admin/invites", headers=headers).status_code == 401
    assert stack.client.get("/api/admin/keys", headers=headers).status_code == 401
    assert keys_stored(stack) == 0


def test_the_operators_commands(tmp_path):
    from tests.conftest import sqlite_stack

    stack = sqlite_stack(tmp_path, SIGNUP="invite")
    runner = stack.app.test_cli_runner()
    made = runner.invoke(args=["keys", "create", "--name", "Shop API"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert works(stack, key)
    bad = runner.invoke(args=["keys", "create", "--name", "x" * 101])
    assert bad.exit_code != 0 and "at most 100" in bad.output
    listed = runner.invoke(args=["keys", "list"])
    assert "Shop API" in listed.output and key not in listed.output

    invited = runner.invoke(args=["keys", "invite", "--label", "Bob", "--url", "https://a.example"])
    assert invited.exit_code == 0, invited.output
    link = invited.stdout.strip().splitlines()[-1]
    assert link.startswith("https://a.example/dashboard/invite#")
    token = link.split("#", 1)[1]
    answer = stack.client.post("/api/keys", json={"invite": token})
    assert answer.status_code == 201
    about = stack.client.get("/api/keys/current", headers={"X-AUTH-TOKEN": answer.json["api_key"]})
    assert about.json["name"] == "Bob"  # the invitation's label names the key
    assert "used" in runner.invoke(args=["keys", "invites"]).output

    another = runner.invoke(args=["keys", "invite"]).stdout.strip().splitlines()[-1]
    assert runner.invoke(args=["keys", "revoke-invite", "2"]).exit_code == 0
    refused = stack.client.post("/api/keys", json={"invite": another.split("#", 1)[1]})
    assert refused.status_code == 403
    deleted = runner.invoke(args=["keys", "delete", "1", "--yes"])
    assert deleted.exit_code == 0 and not works(stack, key)


def test_an_invitation_makes_one_key_once(make_stack):
    stack = make_stack(SIGNUP="invite", ADMIN_TOKEN="operator-secret")
    client = stack.client
    before = keys_stored(stack)
    without = client.post("/api/keys")
    assert without.status_code == 403 and "by invitation" in without.json["message"]
    assert client.get("/api/generate").status_code == 403

    made = client.post("/api/admin/invites", json={"label": "Alice", "days": 2}, headers=ADMIN)
    assert made.status_code == 201
    token, path = made.json["token"], made.json["path"]
    assert path == f"/dashboard/invite#{token}" and made.json["state"] == "pending"
    with stack.engine.connect() as conn:
        stored = conn.execute(
            select(invites.c.token_hash).where(invites.c.id == made.json["id"])
        ).scalar()
    assert token.encode() not in bytes(stored)

    first = client.post("/api/keys", json={"invite": token, "name": "Alice's API"})
    assert first.status_code == 201 and works(stack, first.json["api_key"])
    again = client.post("/api/keys", json={"invite": token})
    assert again.status_code == 403 and "used already" in again.json["message"]
    assert client.post("/api/keys", json={"invite": "guessed"}).status_code == 403
    listed = client.get("/api/admin/invites", headers=ADMIN).json
    (used,) = [i for i in listed if i["id"] == made.json["id"]]
    assert used["state"] == "used" and used["key_id"] is not None
    assert token not in str(listed)

    expiring = client.post("/api/admin/invites", headers=ADMIN).json
    with stack.engine.begin() as conn:
        conn.execute(
            update(invites)
            .where(invites.c.id == expiring["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.post("/api/keys", json={"invite": expiring["token"]}).status_code == 403
    revoked = client.post("/api/admin/invites", headers=ADMIN).json
    assert client.delete(f"/api/admin/invites/{revoked['id']}", headers=ADMIN).status_code == 204
    assert client.post("/api/keys", json={"invite": revoked["token"]}).status_code == 403
    assert keys_stored(stack) == before + 1


def test_an_invitation_link_in_the_browser(sqlite_app, tmp_path):
    from tests.conftest import sqlite_stack

    (tmp_path / "invite").mkdir()
    stack = sqlite_stack(tmp_path / "invite", SIGNUP="invite", ADMIN_TOKEN="operator-secret")
    client = stack.client
    token = client.post("/api/admin/invites", headers=ADMIN).json["token"]
    page = client.get("/dashboard/invite")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert 'name="invite"' in html and "location.hash" in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    shown = client.post("/dashboard/invite", data={"csrf_token": csrf, "invite": token})
    assert shown.status_code == 200
    key = re.search(r'<code id="new-secret">([^<]+)</code>', shown.get_data(as_text=True))[1]
    assert works(stack, key)
    # Signed in: the session opens the key's dashboard.
    assert client.get("/dashboard/export.csv").status_code == 200
    # The page's reload posts the same form again: refused, no second key.
    reload = client.post("/dashboard/invite", data={"csrf_token": csrf, "invite": token})
    assert reload.status_code == 400
    assert keys_stored(stack) == 1
    # Open sign-up takes no invitations (there is nothing to invite to).
    assert sqlite_app.client.post("/dashboard/invite", data={}).status_code == 403


def test_key_creation_is_rate_limited_per_address(make_stack):
    stack = make_stack(KEY_CREATE_PER_HOUR=3, ADMIN_TOKEN="operator-secret")
    client = stack.client
    before = keys_stored(stack)
    assert client.post("/api/keys").status_code == 201
    assert client.get("/api/generate").status_code == 200
    token = form_token(client)
    assert client.post("/dashboard/create-key", data={"csrf_token": token}).status_code == 200
    for refused in (
        client.post("/api/keys"),
        client.get("/api/generate"),
        client.post("/dashboard/create-key", data={"csrf_token": form_token(client)}),
    ):
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert "KEY_CREATE_PER_HOUR" in refused.get_data(as_text=True)
    # Another address is counted on its own; operators are not counted at all.
    other = client.post("/api/keys", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert other.status_code == 201
    assert client.post("/api/admin/keys", headers=ADMIN).status_code == 201
    assert keys_stored(stack) == before + 5
