"""Sign-in by pasted key, the session cookie (a token the server looks up), sign-out and the
CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from dash_app.session import SESSION_ID
from server.keys.api_keys import lookup_key
from server.keys.sessions import hash_token
from server.models import dashboard_sessions
from server.stats.filters import Filters, window_for
from tests.dash_app.helpers import Expected, ingest, known_rows


def render_page(client, pathname: str = "/dashboard/", search: str = "") -> dict:
    """What the browser does to show a page: call the router callback; its outputs."""
    outputs = [("page", "children"), ("nav", "children"), ("page-id", "data")]
    response = client.post(
        "/dashboard/_dash-update-component",
        json={
            "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": [{"id": "url", "property": "pathname", "value": pathname}],
            "state": [
                {"id": "url", "property": "search", "value": search},
                {"id": "page-id", "property": "data", "value": None},
                {"id": "url", "property": "href", "value": f"http://localhost{pathname}{search}"},
                {"id": "url", "property": "hash", "value": ""},
            ],
            "changedPropIds": ["url.pathname"],
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()["response"]


def form_values(tree, name: str) -> list:
    """Values of the inputs called `name` anywhere in a rendered component tree."""
    found = []
    if isinstance(tree, dict):
        props = tree.get("props", {})
        if props.get("name") == name:
            found.append(props.get("value"))
        for value in tree.values():
            found += form_values(value, name)
    elif isinstance(tree, list):
        for item in tree:
            found += form_values(item, name)
    return found


def form_token(client, pathname: str = "/dashboard/") -> str:
    """The CSRF token the page's forms carry (sign-in and create-key, or sign-out when
    signed in): one token for every form of the session."""
    tokens = set(form_values(render_page(client, pathname), "csrf_token"))
    assert len(tokens) == 1, tokens
    return tokens.pop()


def sign_in(client, key: str, next_query: str = ""):
    data = {"api_key": key, "next": next_query, "csrf_token": form_token(client)}
    return client.post("/dashboard/sign-in", data=data)


def sign_out(client):
    return client.post("/dashboard/sign-out", data={"csrf_token": form_token(client)})


def test_dashboard_without_slash_redirects(sqlite_app):
    response = sqlite_app.client.get("/dashboard")
    assert response.status_code == 308
    assert response.headers["Location"] == "dashboard/"  # relative: works behind a prefix
    assert sqlite_app.client.get("/dashboard/").status_code == 200


def test_wrong_key_is_refused_with_a_message(sqlite_app):
    response = sign_in(sqlite_app.client, "not-a-key")
    assert response.status_code == 303
    assert response.headers["Location"] == "./?signin=failed"
    with sqlite_app.client.session_transaction() as session:
        assert SESSION_ID not in session


def test_sign_in_keeps_only_the_key_id_in_a_safe_cookie(sqlite_app):
    key = sqlite_app.new_key()
    response = sign_in(sqlite_app.client, key, "?period=7d&location=US")
    assert response.status_code == 303
    assert response.headers["Location"] == "./?period=7d&location=US"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert key not in cookie
    with sqlite_app.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    with sqlite_app.client.session_transaction() as session:
        token = session[SESSION_ID]
        assert key not in str(dict(session))
    with sqlite_app.engine.connect() as conn:
        stored = conn.execute(select(dashboard_sessions)).one()
    # The server keeps the token's hash only, with the key it opens.
    assert stored.key_id == key_id and bytes(stored.token_hash) == hash_token(token)
    assert token.encode() not in bytes(stored.token_hash)
    response = sign_out(sqlite_app.client)
    assert response.status_code == 303
    with sqlite_app.client.session_transaction() as session:
        assert SESSION_ID not in session


def test_only_a_query_string_rides_along(sqlite_app):
    key = sqlite_app.new_key()
    response = sign_in(sqlite_app.client, key, "//evil.example.com/")
    assert response.headers["Location"] == "./"


def test_a_deleted_key_signs_the_session_out(sqlite_app):
    key = sqlite_app.new_key()
    sign_in(sqlite_app.client, key)
    sqlite_app.client.delete("/api/data", headers={"X-AUTH-TOKEN": key})
    response = sqlite_app.client.get("/dashboard/export.csv")
    assert response.status_code == 401


def test_export_needs_a_session(sqlite_app):
    assert sqlite_app.client.get("/dashboard/export.csv").status_code == 401
    assert sqlite_app.client.get("/dashboard/export.csv?demo=1").status_code == 401


@pytest.mark.parametrize("sort_rows", [200_000, 1], ids=["one-sort", "a-sort-a-day"])
def test_csv_export_holds_the_filtered_rows(stack, monkeypatch, sort_rows):
    from server.lake import pages as lake_rows

    # The export sorts a few days at a time (server.lake.pages.STREAM_SORT_ROWS); with one
    # row as the limit, each of the rows' three days is sorted alone.
    monkeypatch.setattr(lake_rows, "STREAM_SORT_ROWS", sort_rows)
    now = datetime.now(UTC)
    rows = known_rows(now)
    key = stack.new_key()
    ingest(stack, key, rows)
    sign_in(stack.client, key)
    filters = Filters(exclude_bots=True).with_click("location", "US")
    response = stack.client.get("/dashboard/export.csv" + filters.to_query())
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    exported = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    window = window_for(filters.period)
    expected = Expected(rows, filters, window.since, window.until)
    assert len(exported) == expected.requests > 0
    assert {r["location"] for r in exported} == {"US"}
    assert sorted(r["created_at"] for r in exported) == sorted(
        datetime.fromisoformat(r["created_at"]).isoformat() for r in expected.rows
    )
    stamps = [r["created_at"] for r in exported]
    assert stamps == sorted(stamps, reverse=True)  # newest first


def test_a_deleted_keys_session_never_opens_the_next_keys_data(stack):
    """SQLite handed a deleted key's id to the next key, and the session held only the id."""
    first = stack.new_key()
    with stack.engine.connect() as conn:
        first_id = lookup_key(conn, first)
    sign_in(stack.client, first)
    assert stack.client.get("/dashboard/export.csv").status_code == 200
    assert stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": first}).status_code == 204

    second = stack.new_key()
    with stack.engine.connect() as conn:
        assert lookup_key(conn, second) != first_id  # ids never repeat
    ingest(stack, second, known_rows(datetime.now(UTC)))
    export = stack.client.get("/dashboard/export.csv")
    assert export.status_code == 401
    with stack.client.session_transaction() as session:
        assert SESSION_ID not in session


def test_a_session_cookie_opens_only_what_the_server_holds(sqlite_app):
    key = sqlite_app.new_key()
    sign_in(sqlite_app.client, key)
    assert sqlite_app.client.get("/dashboard/export.csv").status_code == 200
    # A cookie edited to another token (were the cookie secret ever out) opens nothing.
    for forged in ("x" * 43, 7, None, ["a"], "x" * 5000):
        with sqlite_app.client.session_transaction() as session:
            session[SESSION_ID] = forged
        assert sqlite_app.client.get("/dashboard/export.csv").status_code == 401


def test_sign_in_refuses_a_form_without_its_token(sqlite_app):
    """Login CSRF: a foreign page posting its own key must not start a session."""
    key = sqlite_app.new_key()
    client = sqlite_app.client
    for token in (None, "", "forged-token"):
        data = {"api_key": key, **({"csrf_token": token} if token is not None else {})}
        response = client.post("/dashboard/sign-in", data=data)
        assert response.status_code == 303
        assert response.headers["Location"] == "./?signin=expired"
        with client.session_transaction() as session:
            assert SESSION_ID not in session
    page = render_page(client, search="?signin=expired")
    assert "expired" in str(page["page"]) and "paste your key" in str(page["page"])
    # Another browser's token is no use in this one.
    other = sqlite_app.app.test_client()
    stolen = form_token(other)
    form_token(client)
    response = client.post("/dashboard/sign-in", data={"api_key": key, "csrf_token": stolen})
    assert response.headers["Location"] == "./?signin=expired"
    assert sign_in(client, key).headers["Location"] == "./"


def test_sign_out_needs_the_token_and_sign_in_renews_it(sqlite_app):
    key = sqlite_app.new_key()
    client = sqlite_app.client
    before = form_token(client)
    sign_in(client, key)
    after = form_token(client)
    assert after != before
    assert client.post("/dashboard/sign-out", data={"csrf_token": before}).status_code == 400
    with client.session_transaction() as session:
        assert SESSION_ID in session
    assert sign_out(client).status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_state_changing_requests_from_another_origin_are_refused(sqlite_app, headers):
    key = sqlite_app.new_key()
    client = sqlite_app.client
    data = {"api_key": key, "csrf_token": form_token(client)}
    response = client.post("/dashboard/sign-in", data=data, headers=headers)
    assert response.status_code == 403
    assert "did not come from this server" in response.get_data(as_text=True)
    with client.session_transaction() as session:
        assert SESSION_ID not in session
    # Our own pages, and clients that are not browsers, get through.
    own = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/dashboard/sign-in", data=data, headers=own).status_code == 303
    # The JSON API takes no cookie, so a browser on another origin may call it.
    assert client.post("/api/keys", headers=headers).status_code == 201


def _layout(client, referrer: str | None) -> dict:
    headers = {"Referer": referrer} if referrer else {}
    response = client.get("/dashboard/_dash-layout", headers=headers)
    assert response.status_code == 200
    # It holds the viewer's page: no cache keeps it, and none may serve it to another.
    assert response.headers["Cache-Control"] == "no-store"
    assert {"Cookie", "Referer"} <= set(response.vary)
    return response.get_json()


def _find(tree, component_id: str):
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == component_id:
            return tree
        return next((f for v in tree.values() if (f := _find(v, component_id))), None)
    if isinstance(tree, list):
        return next((f for v in tree if (f := _find(v, component_id))), None)
    return None


ROUTER_OUTPUTS = (("page", "children"), ("nav", "children"), ("page-id", "data"))


def test_the_loaded_page_comes_with_the_layout_and_the_router_leaves_it(sqlite_app):
    """The layout asked for by a loaded page holds that page (its callbacks leave at once,
    without the router's round trip); the router then answers no_update for it, and a
    layout asked for by no page (no Referer, another site's) is the empty frame."""
    client = sqlite_app.client
    page = "http://localhost/dashboard/"
    signed_out = _layout(client, page)
    assert form_values(signed_out, "api_key") == [None]  # the sign-in form, in the layout
    sign_in(client, sqlite_app.new_key())
    layout = _layout(client, page + "?period=7d&location=US")
    page_id = _find(layout, "page-id")["props"]["data"]
    assert page_id.startswith("key:overview:")
    assert _find(layout, "ov-summary") is not None
    assert _find(layout, "ov-period")["props"]["value"] == "7d"
    url = _find(layout, "ov-url")["props"]
    assert url["search"] == "?period=7d&location=US" and url["hash"] == ""
    # The router, called as the page's load calls it, leaves the page as it came.
    response = client.post(
        "/dashboard/_dash-update-component",
        json={
            "output": "..page.children...nav.children...page-id.data..",
            "outputs": [{"id": i, "property": p} for i, p in ROUTER_OUTPUTS],
            "inputs": [{"id": "url", "property": "pathname", "value": "/dashboard/"}],
            "state": [
                {"id": "url", "property": "search", "value": "?period=7d&location=US"},
                {"id": "page-id", "property": "data", "value": page_id},
                {"id": "url", "property": "href", "value": page + "?period=7d&location=US"},
                {"id": "url", "property": "hash", "value": ""},
            ],
            "changedPropIds": ["url.pathname"],
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert response.get_json()["response"] == {}  # no_update for every output
    for referrer in (None, "http://evil.example.com/dashboard/", "http://localhost/api/data"):
        frame = _layout(client, referrer)
        assert _find(frame, "page-id")["props"].get("data") is None
        assert _find(frame, "ov-summary") is None
