"""Dashboard sessions kept on the server: a copied cookie is worth nothing after sign-out;
the settings page lists the key's sessions and ends any or all; idle and absolute
lifetimes; rotation; the API's view of them; SESSION_LIMIT."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from dash_app.session import SESSION_ID
from server.db import utcnow
from server.keys.api_keys import lookup_key
from server.models import dashboard_sessions
from tests.dash_app.helpers import find_component
from tests.dash_app.test_session import form_token, render_page, sign_in, sign_out

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def browser(stack, agent: str = FIREFOX):
    client = stack.app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    return client


def signed_in(client) -> bool:
    return client.get("/dashboard/export.csv").status_code == 200


def overview_shows_data(client) -> bool:
    """What a page's callback sees: the sign-in form, or the key's overview."""
    page = render_page(client, "/dashboard/")
    return find_component(page["page"], "signin-key") is None


def session_rows(stack, key_id=None) -> list:
    with stack.engine.connect() as conn:
        query = select(dashboard_sessions)
        if key_id is not None:
            query = query.where(dashboard_sessions.c.key_id == key_id)
        return conn.execute(query.order_by(dashboard_sessions.c.id)).all()


def settings_post(client, **fields):
    return client.post("/dashboard/settings", data={"csrf_token": form_token(client), **fields})


def test_a_copied_cookie_is_worth_nothing_after_sign_out(stack):
    key = stack.new_key()
    client = browser(stack)
    sign_in(client, key)
    copied = client.get_cookie("session").value
    assert signed_in(client) and overview_shows_data(client)
    assert sign_out(client).status_code == 303
    # The attacker's browser, replaying the cookie from before the sign-out:
    replay = browser(stack)
    replay.set_cookie("session", copied)
    assert not signed_in(replay)
    assert not overview_shows_data(replay)
    assert session_rows(stack, _key_id(stack, key)) == []


def test_the_session_row_holds_a_hash_the_agent_and_times(sqlite_app):
    key = sqlite_app.new_key()
    client = browser(sqlite_app)
    sign_in(client, key)
    (row,) = session_rows(sqlite_app)
    with client.session_transaction() as session:
        token = session[SESSION_ID]
    assert len(bytes(row.token_hash)) == 32 and token.encode() not in bytes(row.token_hash)
    assert row.user_agent == FIREFOX
    assert row.created_at == row.last_seen_at


def test_settings_list_the_sessions_and_end_one_or_all_others(stack):
    key = stack.new_key()
    key_id = _key_id(stack, key)
    mine, laptop, phone = browser(stack), browser(stack, "Laptop/1.0"), browser(stack, "Phone/2.0")
    for client in (mine, laptop, phone):
        sign_in(client, key)
    page = str(render_page(mine, "/dashboard/settings")["page"])
    assert "Laptop/1.0" in page and "Phone/2.0" in page and "this browser" in page
    rows = {row.user_agent: row.id for row in session_rows(stack, key_id)}

    ended = settings_post(mine, action="end_session", session_id=str(rows["Laptop/1.0"]))
    assert ended.status_code == 303
    assert not signed_in(laptop) and signed_in(phone) and signed_in(mine)

    assert settings_post(mine, action="end_sessions").status_code == 303
    assert not signed_in(phone) and signed_in(mine)
    assert [r.user_agent for r in session_rows(stack, key_id)] == [FIREFOX]

    # A forged id ends nothing; its own session ends this browser's.
    for forged in ("", "abc", "²", "99999999999", str(rows["Phone/2.0"])):
        settings_post(mine, action="end_session", session_id=forged)
        assert signed_in(mine)
    assert (
        settings_post(mine, action="end_session", session_id=str(rows[FIREFOX])).headers["Location"]
        == "./"
    )
    assert not signed_in(mine)


def test_idle_and_absolute_lifetimes(make_stack):
    stack = make_stack(SESSION_IDLE_DAYS=2, SESSION_MAX_DAYS=10)
    key = stack.new_key()
    key_id = _key_id(stack, key)
    idle, old = browser(stack), browser(stack, "Old/1.0")
    sign_in(idle, key)
    sign_in(old, key)
    rows = {row.user_agent: row.id for row in session_rows(stack, key_id)}
    now = utcnow()
    with stack.engine.begin() as conn:
        s = dashboard_sessions.c
        conn.execute(
            update(dashboard_sessions)
            .where(s.id == rows[FIREFOX])
            .values(last_seen_at=now - timedelta(days=2, minutes=1))
        )
        conn.execute(
            update(dashboard_sessions)
            .where(s.id == rows["Old/1.0"])
            .values(created_at=now - timedelta(days=10, minutes=1), last_seen_at=now)
        )
    assert not signed_in(idle)  # two days without a request
    assert not signed_in(old)  # used a minute ago, but signed in more than ten days ago
    assert session_rows(stack, key_id) == []  # expired rows go when they are met


def test_the_daily_retention_removes_sessions_never_used_again(sqlite_app):
    from server import upkeep

    stack = sqlite_app
    key = stack.new_key()
    key_id = _key_id(stack, key)
    gone, kept = browser(stack), browser(stack, "Old/1.0")
    sign_in(gone, key)
    sign_in(kept, key)
    with stack.engine.begin() as conn:
        s = dashboard_sessions.c
        conn.execute(
            update(dashboard_sessions)
            .where(s.user_agent == FIREFOX)
            .values(last_seen_at=utcnow() - timedelta(days=8))
        )
    with stack.app.app_context():
        assert upkeep.run_retention()["sessions"] == 1
    assert [row.user_agent for row in session_rows(stack, key_id)] == ["Old/1.0"]


def test_use_moves_last_seen_at_most_once_a_minute(sqlite_app):
    key = sqlite_app.new_key()
    client = browser(sqlite_app)
    sign_in(client, key)
    (row,) = session_rows(sqlite_app)
    assert signed_in(client)
    assert session_rows(sqlite_app)[0].last_seen_at == row.last_seen_at
    with sqlite_app.engine.begin() as conn:
        conn.execute(
            update(dashboard_sessions).values(last_seen_at=utcnow() - timedelta(minutes=5))
        )
    assert signed_in(client)
    moved = session_rows(sqlite_app)[0].last_seen_at
    assert moved > row.last_seen_at - timedelta(seconds=1)


def test_rotation_ends_the_other_sessions(stack):
    key = stack.new_key()
    key_id = _key_id(stack, key)
    mine, other = browser(stack), browser(stack, "Other/1.0")
    sign_in(mine, key)
    sign_in(other, key)
    assert settings_post(mine, action="rotate").status_code == 200
    assert signed_in(mine) and not signed_in(other)
    # Through the API (no browser of its own), every session ends.
    new_key = _rotate_api(stack, mine, key_id)
    assert not signed_in(mine)
    sign_in(other, new_key)
    assert signed_in(other)


def _rotate_api(stack, client, key_id) -> str:
    from server.keys.api_keys import rotate_key

    with stack.engine.begin() as conn:
        new_key, _until = rotate_key(conn, key_id, timedelta(0))
    return new_key


def test_the_api_lists_and_ends_the_keys_sessions(stack):
    key = stack.new_key()
    auth = {"X-AUTH-TOKEN": key}
    first, second = browser(stack, "First/1.0"), browser(stack, "Second/1.0")
    sign_in(first, key)
    sign_in(second, key)
    listed = stack.client.get("/api/keys/current/sessions", headers=auth)
    assert listed.status_code == 200
    assert {s["user_agent"] for s in listed.json} == {"First/1.0", "Second/1.0"}
    assert all(s["expires_at"] for s in listed.json)
    assert "token" not in str(listed.json) and "hash" not in str(listed.json)
    first_id = next(s["id"] for s in listed.json if s["user_agent"] == "First/1.0")
    assert (
        stack.client.delete(f"/api/keys/current/sessions/{first_id}", headers=auth).status_code
        == 204
    )
    assert not signed_in(first) and signed_in(second)
    assert (
        stack.client.delete(f"/api/keys/current/sessions/{first_id}", headers=auth).status_code
        == 404
    )
    ended = stack.client.delete("/api/keys/current/sessions", headers=auth)
    assert ended.status_code == 200 and ended.json == {"ended": 1}
    assert not signed_in(second)
    # Another key cannot see or end them.
    other = stack.new_key()
    sign_in(first, key)
    row_id = session_rows(stack, _key_id(stack, key))[0].id
    assert (
        stack.client.get("/api/keys/current/sessions", headers={"X-AUTH-TOKEN": other}).json == []
    )
    assert (
        stack.client.delete(
            f"/api/keys/current/sessions/{row_id}", headers={"X-AUTH-TOKEN": other}
        ).status_code
        == 404
    )
    assert signed_in(first)


def test_a_key_has_at_most_session_limit_sessions(make_stack):
    stack = make_stack(SESSION_LIMIT=2)
    key = stack.new_key()
    clients = [browser(stack, f"B/{i}") for i in range(3)]
    assert sign_in(clients[0], key).headers["Location"] == "./"
    assert sign_in(clients[1], key).headers["Location"] == "./"
    refused = sign_in(clients[2], key)
    assert refused.headers["Location"] == "./?signin=sessions"
    assert not signed_in(clients[2])
    page = str(render_page(clients[2], search="?signin=sessions")["page"])
    assert "SESSION_LIMIT" in page
    with stack.engine.connect() as conn:
        count = conn.execute(
            select(func.count()).where(dashboard_sessions.c.key_id == _key_id(stack, key))
        ).scalar()
    assert count == 2
    sign_out(clients[0])
    assert sign_in(clients[2], key).headers["Location"] == "./"


def _key_id(stack, key: str) -> int:
    with stack.engine.connect() as conn:
        return lookup_key(conn, key)
