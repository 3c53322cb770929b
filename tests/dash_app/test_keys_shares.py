"""The dashboard's key forms (create a key, settings) and share links, through the real
app: its forms, its Dash callbacks as the browser calls them, and its CSV export."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from server.db import utcnow
from server.keys.api_keys import lookup_key
from server.models import api_keys, share_links
from server.stats.filters import Filters, window_for
from tests.dash_app.helpers import Expected, ingest, known_rows
from tests.dash_app.helpers import find_component as find
from tests.dash_app.test_session import form_token, form_values, render_page, sign_in

SECRET = re.compile(r'id="new-secret">([^<]+)<')


def auth(key: str) -> dict:
    return {"X-AUTH-TOKEN": key}


def callback(client, output: str, values: dict, changed: str | None = None) -> dict:
    """Call the Dash callback whose outputs include `output` ('id.prop') as the browser
    does, with `values` for its inputs and state by 'id.prop'; its outputs by id.

    `changed` names the input that fired ('id.prop'; the first by default), and picks the
    callback when two write `output`. A pattern-matching input's value is its list of
    {id, property, value}, by its id as the callback map spells it.
    """
    app = client.application.extensions["dash_app"]
    names = [k for k in app.callback_map if output in
             [o.split("@")[0] for o in k.strip(".").split("...")]]  # fmt: skip
    if changed is not None:
        names = [k for k in names if any(_same_input(i, changed)
                 for i in app.callback_map[k]["inputs"])]  # fmt: skip
    name = names[0]
    spec = app.callback_map[name]
    outputs = [dict(zip(("id", "property"), o.split("@")[0].rsplit(".", 1), strict=True))
               for o in name.strip(".").split("...")]  # fmt: skip

    def given(items):
        return [
            values.get(f"{i['id']}.{i['property']}", [])
            if i["id"].startswith("{")
            else {**i, "value": values.get(f"{i['id']}.{i['property']}")}
            for i in items
        ]

    first = f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"
    response = client.post(
        "/dashboard/_dash-update-component",
        json={
            "output": name,
            "outputs": outputs if len(outputs) > 1 else outputs[0],
            "inputs": given(spec["inputs"]),
            "state": given(spec["state"]),
            "changedPropIds": [changed or first],
        },
    )
    assert response.status_code in (200, 204), response.get_data(as_text=True)[:500]
    return response.get_json()["response"] if response.status_code == 200 else {}


def _same_input(spec_input: dict, changed: str) -> bool:
    """Whether `changed` ('id.prop') fires this input (a pattern-matching one by its type)."""
    component, prop = changed.rsplit(".", 1)
    if spec_input["id"].startswith("{") and component.startswith("{"):
        return json.loads(spec_input["id"])["type"] == json.loads(component)["type"]
    return (spec_input["id"], spec_input["property"]) == (component, prop)


def overview(client, pathname: str, query: str = "") -> dict:
    return callback(
        client, "ov-summary.children", {"ov-filters.data": query, "url.pathname": pathname}
    )


def requests_shown(answer: dict) -> int | None:
    stat = find(answer["ov-summary"]["children"], "ov-requests")
    if stat is None:
        return None
    return int(stat["props"]["children"][1]["props"]["children"].replace(",", ""))


def explorer(client, pathname: str) -> dict:
    return callback(client, "ex-rows.data", {"ex-page.data": 0, "url.pathname": pathname})


def make_share(client, key: str, **body) -> dict:
    response = client.post("/api/shares", headers=auth(key), json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def settings_post(client, action: str, token: str | None = "page", **fields):
    if token == "page":
        token = form_token(client, "/dashboard/settings")
    data = {"action": action, **fields}
    if token is not None:
        data["csrf_token"] = token
    return client.post("/dashboard/settings", data=data)


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


# --- share links -----------------------------------------------------------------------------


@pytest.fixture
def shared(stack):
    """Key A's known rows, key B's other rows, and a link to A fixed to a host and 2xx."""
    now = datetime.now(UTC)
    rows = known_rows(now)
    key, other = stack.new_key(), stack.new_key()
    ingest(stack, key, rows)
    ingest(stack, other, rows[:10])
    link = make_share(
        stack.client, key, hostname="api.example.com", filters={"status_class": "2xx"}
    )
    return stack, key, other, rows, link


def test_a_share_link_shows_only_its_keys_rows_under_its_fixed_filters(shared):
    stack, key, other, rows, link = shared
    client = stack.client
    window = window_for(Filters().period)
    fixed = Filters(hostname="api.example.com").with_click("status_class", "2xx")
    expected = Expected(rows, fixed, window.since, window.until).requests
    everything = Expected(rows, Filters(), window.since, window.until).requests
    assert 0 < expected < everything

    # Whoever opens it, signed in with another key or not, sees the link's key.
    sign_in(client, other)
    answer = overview(client, link["path"])
    assert requests_shown(answer) == expected
    assert [o["value"] for o in answer["ov-hostname"]["options"]] == ["api.example.com"]
    assert "Shows: Hostname: api.example.com, Status class: 2xx" in str(answer["ov-empty"])
    # The viewer's own filters narrow it further but never lift the fixed ones.
    assert requests_shown(overview(client, link["path"], "?hostname=eu.example.com")) == 0
    assert requests_shown(overview(client, link["path"], "?status_class=5xx")) == 0
    assert requests_shown(overview(client, link["path"], "?params=1&ids=1")) == expected

    # The export link of the page is the share's, and holds exactly those rows.
    href = answer["ov-export"]["href"]
    assert href == f"{link['path']}/export.csv"
    export = client.get(href)
    assert export.status_code == 200
    exported = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert len(exported) == expected
    assert {r["hostname"] for r in exported} == {"api.example.com"}
    assert all(200 <= int(r["status"]) < 300 for r in exported)
    assert len(list(csv.DictReader(io.StringIO(client.get(href + "?status=500").get_data(
        as_text=True))))) == 0  # fmt: skip

    # The explorer: the same restrictions on every row.
    rows_shown = explorer(client, link["path"] + "/explorer")["ex-rows"]["data"]
    assert len(rows_shown) == min(expected, 50)
    assert {r["hostname"] for r in rows_shown} == {"api.example.com"}
    assert all(200 <= r["status"] < 300 for r in rows_shown)


def test_a_share_link_never_shows_settings_monitors_or_the_key(shared):
    stack, key, _other, _rows, link = shared
    client = stack.client
    page = render_page(client, link["path"])
    assert find(page["page"], "ov-summary") is not None
    labels = [str(item["props"].get("children")) for item in page["nav"]["children"]]
    assert labels == ["Overview", "Explorer", "Errors", "Shared view, read-only"]
    for hidden in ("/settings", "/monitors", "/consumers", "/alerts"):
        assert "No such page." in str(render_page(client, link["path"] + hidden)["page"])
    assert key not in str(page) and link["token"] not in str(page["page"])
    assert client.post("/dashboard/settings", data={"action": "name"}).status_code == 303


def test_a_revoked_link_stops_at_once_even_in_an_open_page(shared):
    stack, key, _other, _rows, link = shared
    client = stack.client
    render_page(client, link["path"])
    assert requests_shown(overview(client, link["path"])) > 0
    assert client.delete(f"/api/shares/{link['id']}", headers=auth(key)).status_code == 204

    answer = overview(client, link["path"])
    assert requests_shown(answer) is None
    assert "This share link was revoked or never existed." in str(answer["ov-empty"])
    assert explorer(client, link["path"] + "/explorer")["ex-rows"]["data"] == []
    page = client.get(link["path"])
    assert page.status_code == 404
    assert "revoked or never existed" in page.get_data(as_text=True)
    assert client.get(link["path"] + "/explorer").status_code == 404
    assert client.get(link["path"] + "/export.csv").status_code == 404
    assert "revoked or never existed" in str(render_page(client, link["path"])["page"])


def test_an_expired_link_answers_410_naming_the_expiry(sqlite_app):
    client = sqlite_app.client
    key = sqlite_app.new_key()
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    link = make_share(client, key, expires_at=soon)
    assert client.get(link["path"]).status_code == 200
    ended = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    with sqlite_app.engine.begin() as conn:
        conn.execute(
            update(share_links).where(share_links.c.id == link["id"]).values(expires_at=ended)
        )
    page = client.get(link["path"])
    assert page.status_code == 410
    assert "This share link expired on 2026-01-02 03:04 UTC." in page.get_data(as_text=True)
    assert "expired on 2026-01-02 03:04 UTC" in str(overview(client, link["path"])["ov-empty"])
    assert client.get(link["path"] + "/export.csv").status_code == 410
    (item,) = client.get("/api/shares", headers=auth(key)).get_json()
    assert item["state"] == "expired"


def test_an_unknown_token_is_a_404(sqlite_app):
    page = sqlite_app.client.get("/dashboard/s/not-a-token")
    assert page.status_code == 404
    assert "revoked or never existed" in page.get_data(as_text=True)


# --- create a key ----------------------------------------------------------------------------


def test_create_a_key_shows_it_once_with_the_snippet_and_signs_in(sqlite_app):
    client = sqlite_app.client
    token = form_token(client)
    keys_before = count(sqlite_app.engine, api_keys)
    response = client.post("/dashboard/create-key", data={"csrf_token": token})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    key = SECRET.search(body).group(1)
    assert "from api_analytics.fastapi import Analytics" in body
    assert f'app.add_middleware(Analytics, api_key="{key}")' in body
    assert 'id="copy-secret"' in body
    assert key not in response.headers.get("Set-Cookie", "")
    with sqlite_app.engine.connect() as conn:
        assert lookup_key(conn, key) is not None
    assert client.get("/dashboard/export.csv").status_code == 200  # signed in
    with client.session_transaction() as session:
        assert key not in str(dict(session))

    # Reloading the answer posts the form again: refused, no key shown, none made.
    again = client.post("/dashboard/create-key", data={"csrf_token": token})
    assert again.status_code == 303
    assert again.headers["Location"] == "./?signin=expired"
    assert key not in again.get_data(as_text=True)
    assert count(sqlite_app.engine, api_keys) == keys_before + 1


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_create_a_key_needs_the_forms_token(sqlite_app, token):
    client = sqlite_app.client
    form_token(client)
    data = {} if token is None else {"csrf_token": token}
    response = client.post("/dashboard/create-key", data=data)
    assert response.status_code == 303
    assert count(sqlite_app.engine, api_keys) == 0
    assert client.get("/dashboard/export.csv").status_code == 401
    cross = client.post(
        "/dashboard/create-key",
        data={"csrf_token": form_token(client)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert count(sqlite_app.engine, api_keys) == 0


# --- settings --------------------------------------------------------------------------------


def test_settings_need_a_session_and_are_not_in_the_demo(sqlite_app):
    client = sqlite_app.client
    page = render_page(client, "/dashboard/settings")
    assert find(page["page"], "signin-key") is not None
    assert "No such page." in str(render_page(client, "/dashboard/demo/settings")["page"])
    response = client.post("/dashboard/settings", data={"action": "rotate"})
    assert response.status_code == 303 and response.headers["Location"] == "./"


def test_every_settings_form_needs_its_token(sqlite_app):
    client = sqlite_app.client
    key = sqlite_app.new_key()
    sign_in(client, key)
    forms = {
        "name": {"name": "Evil"},
        "rotate": {},
        "share": {"label": "x"},
        "delete": {"confirm": "DELETE"},
    }
    for action, fields in forms.items():
        for token in (None, "forged"):
            response = settings_post(client, action, token, **fields)
            assert response.status_code == 303, action
            assert response.headers["Location"] == "settings"
    page = render_page(client, "/dashboard/settings")
    assert "This form had expired" in str(page["page"])
    about = client.get("/api/keys/current", headers=auth(key))
    assert about.status_code == 200  # not rotated, not deleted
    assert about.get_json()["name"] is None
    assert client.get("/api/shares", headers=auth(key)).get_json() == []
    # A form from another origin is refused before it is read.
    token = form_token(client, "/dashboard/settings")
    cross = client.post(
        "/dashboard/settings",
        data={"action": "name", "name": "Evil", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert client.get("/api/keys/current", headers=auth(key)).get_json()["name"] is None


def test_settings_name_rotate_share_and_delete(sqlite_app, caplog):
    caplog.set_level(logging.DEBUG)
    client = sqlite_app.client
    key = sqlite_app.new_key()
    sign_in(client, key)

    assert settings_post(client, "name", name="").headers["Location"] == "settings"
    assert "The name is empty" in str(render_page(client, "/dashboard/settings")["page"])
    settings_post(client, "name", name="y" * 101)
    assert "101 characters long" in str(render_page(client, "/dashboard/settings")["page"])
    settings_post(client, "name", name="Shop API")
    assert client.get("/api/keys/current", headers=auth(key)).get_json()["name"] == "Shop API"
    header = callback(client, "api-name.children", {"url.pathname": "/dashboard/"})
    assert header["api-name"]["children"] == "Shop API"

    rotated = settings_post(client, "rotate")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new = SECRET.search(rotated.get_data(as_text=True)).group(1)
    assert new != key and "ingest only" in rotated.get_data(as_text=True)
    # The session moved to the new key; the old one ingests, and nothing else.
    assert client.get("/dashboard/export.csv").status_code == 200
    assert client.get("/api/data", headers=auth(key)).status_code == 401
    assert client.get("/api/data", headers=auth(new)).status_code == 200
    from tests.helpers import post_batch, row

    assert post_batch(client, key, [row()]).status_code == 201
    other = sqlite_app.app.test_client()
    refused = sign_in(other, key)
    assert refused.headers["Location"] == "./?signin=rotated"
    assert "was rotated" in str(render_page(other, search="?signin=rotated")["page"])
    assert "ingest only until" in str(render_page(client, "/dashboard/settings")["page"])

    bad = settings_post(client, "share", location="USA")
    assert bad.status_code == 303
    assert "two-letter country code" in str(render_page(client, "/dashboard/settings")["page"])
    made = settings_post(
        client, "share", label="Team", hostname="api.example.com", status_class="5xx",
        expires_days="7",
    )  # fmt: skip
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    url = SECRET.search(made.get_data(as_text=True)).group(1)
    assert url.startswith("http://localhost/dashboard/s/")
    path = url.removeprefix("http://localhost")
    assert client.get(path).status_code == 200
    page = render_page(client, "/dashboard/settings")["page"]
    (share_id,) = form_values(page, "share_id")
    assert "Hostname: api.example.com, Status class: 5xx" in str(page)
    settings_post(client, "revoke", share_id=share_id)
    assert client.get(path).status_code == 404
    assert "revoked" in str(render_page(client, "/dashboard/settings")["page"])

    settings_post(client, "delete", confirm="delete it")
    assert "type DELETE" in str(render_page(client, "/dashboard/settings")["page"])
    assert client.get("/api/keys/current", headers=auth(new)).status_code == 200
    done = settings_post(client, "delete", confirm="DELETE")
    assert done.headers["Location"] == "./?signin=deleted"
    assert client.get("/api/keys/current", headers=auth(new)).status_code == 401
    assert count(sqlite_app.engine, share_links) == 0
    assert client.get("/dashboard/export.csv").status_code == 401

    # Not one secret in any log line of all that.
    for secret in (key, new, path.rsplit("/", 1)[1]):
        assert secret not in caplog.text
