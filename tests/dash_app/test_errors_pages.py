"""The errors, error group and consumers pages through the real app and Dash's callback
endpoint, as the browser calls them: what each viewer sees, state changes with the page's
token, and forged values answered with a message, never a 500."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from server.keys.api_keys import lookup_key
from server.models import error_groups
from tests.dash_app.error_traffic import SECRET, error_rows, failures_by_type, ingest_errors
from tests.dash_app.helpers import find_component as find
from tests.dash_app.test_keys_shares import callback, make_share
from tests.dash_app.test_session import render_page, sign_in

WEEK = "?period=7d"


@pytest.fixture
def seeded(sqlite_app):
    """A signed-in browser of a key with realistic error traffic."""
    stack = sqlite_app
    rows = error_rows(datetime.now(UTC))
    key = stack.new_key()
    ingest_errors(stack, key, rows)
    assert sign_in(stack.client, key).status_code == 303
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    return stack, key, key_id, rows


def errors_page(client, query=WEEK + "&state=all", pathname="/dashboard/errors") -> dict:
    return callback(client, "er-groups.children", {"er-query.data": query,
                    "url.pathname": pathname})  # fmt: skip


def group_page(client, group_id, query=WEEK, base="/dashboard") -> dict:
    values = {"eg-query.data": query, "eg-changed.data": 0,
              "url.pathname": f"{base}/errors/{group_id}"}  # fmt: skip
    return callback(client, "eg-head.children", values)


def links(tree) -> list[dict]:
    """The props of every link (dcc.Link) in a rendered tree."""
    if isinstance(tree, list):
        return [found for item in tree for found in links(item)]
    if not isinstance(tree, dict):
        return []
    own = [tree["props"]] if tree.get("type") == "Link" else []
    return own + [found for value in tree.values() for found in links(value)]


def group_ids(answer: dict) -> dict:
    """{type: id} of the groups table's links."""
    return {
        link["children"]: int(link["href"].split("/errors/")[1].split("?")[0])
        for link in links(answer["er-groups"])
    }


def press(client, group_id, state, token, pathname=None) -> dict:
    """A click on the group page's button that sets `state`."""
    button = {"type": "eg-state", "state": state}
    changed = json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"
    values = {
        '{"state":["ALL"],"type":"eg-state"}.n_clicks': [
            {"id": button, "property": "n_clicks", "value": 1}
        ],
        "eg-csrf.data": token,
        "eg-changed.data": 0,
        "url.pathname": pathname or f"/dashboard/errors/{group_id}",
    }
    return callback(client, "eg-msg.children", values, changed)


def test_errors_page_lists_groups_and_validation_errors_with_links(seeded):
    stack, _key, _key_id, rows = seeded
    client = stack.client
    page = render_page(client, "/dashboard/errors")
    assert find(page["page"], "er-groups") is not None
    labels = [str(item["props"].get("children")) for item in page["nav"]["children"][:7]]
    assert labels[:5] == ["Overview", "Explorer", "Errors", "Consumers", "Uptime"]
    answer = errors_page(client)
    ids = group_ids(answer)
    assert set(ids) == set(failures_by_type(rows))
    assert f'"/dashboard/errors/{ids["KeyError"]}?period=7d"' in json.dumps(answer)
    assert "int_parsing" in json.dumps(answer["er-validation"])
    # The URL keeps the page's choices; a bad one is the default.
    synced = callback(client, "er-query.data", {"er-url.search": "?period=7d&state=x&sort=users"})
    assert synced["er-query"]["data"] == "?period=7d&sort=users"
    assert synced["er-state"]["value"] == "open"


def test_group_page_shows_the_stack_and_the_masked_request_and_changes_state(seeded):
    stack, _key, key_id, _rows = seeded
    client = stack.client
    group_id = group_ids(errors_page(client))["app.payments.CardDeclined"]
    page = render_page(client, f"/dashboard/errors/{group_id}")
    token = find(page["page"], "eg-csrf")["props"]["data"]
    answer = group_page(client, group_id)
    drawn = json.dumps(answer)
    assert "app.payments.CardDeclined" in json.dumps(answer["eg-head"])
    assert "app/payments/service.py" in json.dumps(answer["eg-stack"])
    assert "frame in-app" in json.dumps(answer["eg-stack"])
    assert "[masked]" in json.dumps(answer["eg-capture"]) and SECRET not in drawn
    assert '"Resolve"' in drawn and '"Ignore"' in drawn
    # Another occurrence, picked in the table.
    rows = answer["eg-occurrences"]["data"]
    picked = callback(client, "eg-capture.children", {
        "eg-occurrences.active_cell": {"row": 2, "column": 0},
        "eg-occurrences.derived_viewport_data": rows, "eg-query.data": WEEK,
        "url.pathname": f"/dashboard/errors/{group_id}"}, "eg-occurrences.active_cell")  # fmt: skip
    assert rows[2]["path"] in json.dumps(picked["eg-stack"])

    assert "Marked resolved." in json.dumps(press(client, group_id, "resolved", token))
    with stack.engine.connect() as conn:
        stored = conn.execute(error_groups.select().where(error_groups.c.id == group_id)).first()
    assert stored.state == "resolved" and stored.resolved_at
    assert '"Reopen"' in json.dumps(group_page(client, group_id)["eg-head"])
    # Refused: a stale token, a forged state, the demo's path (read-only), another group.
    for forged_token, state, path, message in (
        ("stale", "ignored", None, "Refused"),
        (token, "gone", None, "Not a state"),
        (token, ["open"], None, "Not a state"),
        (token, "ignored", f"/dashboard/demo/errors/{group_id}", "read-only"),
        (token, "ignored", "/dashboard/errors/999999", "No such error group"),
    ):
        answer = press(client, group_id, state, forged_token, path)
        assert message in json.dumps(answer), (state, path)
    with stack.engine.connect() as conn:
        assert conn.execute(
            error_groups.select().where(error_groups.c.key_id == key_id, error_groups.c.state
                                        == "ignored")).first() is None  # fmt: skip


def test_consumers_page_links_to_the_overview_filtered_by_them(seeded):
    client = seeded[0].client
    answer = callback(client, "co-consumers.children", {"co-query.data": WEEK,
                      "url.pathname": "/dashboard/consumers"})  # fmt: skip
    drawn = json.dumps(answer)
    assert '"/dashboard/?period=7d&consumer=cus_acme"' in drawn
    assert '"/dashboard/?period=7d&consumer_group=enterprise"' in drawn
    assert "Acme Inc" in drawn


def test_forged_values_get_a_message_never_a_500(seeded):
    stack, _key, _key_id, _rows = seeded
    client = stack.client
    for query in (12, ["?period=7d"], {"a": 1}, "?period=nope&state=%00&sort=;drop"):
        assert "er-groups" in errors_page(client, query)
        assert "co-consumers" in callback(
            client, "co-consumers.children", {"co-query.data": query, "url.pathname": 7}
        )
    synced = callback(client, "er-query.data", {"er-url.search": ["x"], "er-period.value": ["7d"],
                      "er-state.value": {"a": 1}}, "er-period.value")  # fmt: skip
    assert synced["er-query"]["data"] == ""
    for path in (12, None, "/dashboard/errors/abc", "/dashboard/errors/" + "9" * 30):
        answer = callback(client, "eg-head.children", {"eg-query.data": WEEK, "url.pathname": path})
        assert "No such error group" in json.dumps(answer["eg-head"]), path
    for cell, rows in (("x", "y"), ({"row": 0}, [{"detail": "9" * 30}]), ({"row": "0"}, [])):
        callback(client, "eg-capture.children", {"eg-occurrences.active_cell": cell,
                 "eg-occurrences.derived_viewport_data": rows,
                 "url.pathname": "/dashboard/errors/1"}, "eg-occurrences.active_cell")  # fmt: skip
    gone = callback(client, "eg-capture.children", {
        "eg-occurrences.active_cell": {"row": 0}, "eg-occurrences.derived_viewport_data":
        [{"detail": "123"}], "eg-query.data": WEEK, "url.pathname": "/dashboard/errors/1"},
        "eg-occurrences.active_cell")  # fmt: skip
    assert "no longer in this period" in json.dumps(gone)
    for kind in (5, ["new_error"], None, "bogus"):
        styles = callback(client, "al-f-window.style", {"al-rule-kind.value": kind})
        assert styles["al-f-window"]["style"] == {}


def test_a_share_link_sees_errors_under_its_restrictions_and_no_consumers(seeded):
    stack, key, _key_id, _rows = seeded
    client = stack.client
    ids = group_ids(errors_page(client))
    link = make_share(client, key, filters={"endpoint": "POST /v1/payments"})
    page = render_page(client, link["path"] + "/errors")
    labels = [str(item["props"].get("children")) for item in page["nav"]["children"]]
    assert labels == ["Overview", "Explorer", "Errors", "Shared view, read-only"]
    assert "No such page." in str(render_page(client, link["path"] + "/consumers")["page"])
    shown = group_ids(errors_page(client, pathname=link["path"] + "/errors"))
    assert shown == {"app.payments.CardDeclined": ids["app.payments.CardDeclined"]}
    assert json.dumps(errors_page(client, pathname=link["path"] + "/errors")).count(
        f"{link['path']}/errors/"
    )
    base = link["path"]
    visible = group_page(client, ids["app.payments.CardDeclined"], base=base)
    assert "app/payments/service.py" in json.dumps(visible["eg-stack"])
    assert '"Resolve"' not in json.dumps(visible)  # read-only
    # A group the link does not show is no group at all, even by a guessed id.
    hidden = group_page(client, ids["KeyError"], base=base)
    assert "No such error group" in json.dumps(hidden["eg-head"])
    assert "KeyError" not in json.dumps(hidden)
