"""The settings page's masking patterns, the explorer's request details, the alerts page's
error kinds and the overview's User ID click, through the real app as the browser calls it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from server.keys.api_keys import lookup_key
from server.stats.errors import occurrences
from server.stats.filters import Filters, window_for
from tests.dash_app.error_traffic import SECRET, error_rows, ingest_errors
from tests.dash_app.helpers import find_component as find
from tests.dash_app.test_alerts_page import call
from tests.dash_app.test_keys_shares import auth, callback, make_share, settings_post
from tests.dash_app.test_session import render_page, sign_in
from tests.helpers import post_batch, row


def settings_text(client) -> str:
    return str(render_page(client, "/dashboard/settings")["page"])


def test_masking_patterns_are_added_listed_applied_and_deleted(sqlite_app):
    stack, client = sqlite_app, sqlite_app.client
    key = stack.new_key()
    sign_in(client, key)
    assert "No patterns of your own yet." in settings_text(client)
    # Refused with a message: no token, a bad kind, a bad expression, a NUL, nothing.
    settings_post(client, "mask", None, kind="header", pattern="x-tenant")
    assert "This form had expired" in settings_text(client)
    for kind, pattern, message in (
        ("cookie", "x", "'kind' must be one of header, field, query"),
        ("header", "(", "not a regular expression"),
        ("header", "a\x00b", "NUL character"),
        ("field", "  ", "'pattern' is empty"),
        ("query", "x" * 201, "at most 200"),
    ):
        answer = settings_post(client, "mask", kind=kind, pattern=pattern)
        assert answer.status_code == 303 and answer.headers["Location"] == "settings"
        assert message in settings_text(client), pattern
    assert "No patterns of your own yet." in settings_text(client)

    settings_post(client, "mask", kind="header", pattern="x-tenant")
    page = render_page(client, "/dashboard/settings")["page"]
    assert "Masking header names matching 'x-tenant' from now on." in str(page)
    (mask,) = client.get("/api/masks", headers=auth(key)).get_json()
    assert find(page, f"mask-row-{mask['id']}") is not None
    # It applies to what is logged from now on.
    captured = {"headers": [["x-tenant-id", "t-81"], ["accept", "json"]]}
    sent = row(status=500, request=captured,
               exception={"type": "ValueError", "message": "bad", "stack": []})  # fmt: skip
    assert post_batch(client, key, [sent]).status_code == 201
    stack.process_jobs()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    (found,) = occurrences(key_id, 1, Filters(), window_for("30d"))
    assert found["request"]["headers"] == [["x-tenant-id", "[masked]"], ["accept", "json"]]

    for forged in ("abc", "99999999999999999999", str(mask["id"] + 1), ""):
        settings_post(client, "unmask", mask_id=forged)
        assert "No such pattern for this key." in settings_text(client), forged
    settings_post(client, "unmask", mask_id=str(mask["id"]))
    assert "Deleted the pattern" in settings_text(client)
    assert client.get("/api/masks", headers=auth(key)).get_json() == []


@pytest.fixture
def explored(sqlite_app):
    stack = sqlite_app
    key = stack.new_key()
    ingest_errors(stack, key, error_rows(datetime.now(UTC), count=120))
    sign_in(stack.client, key)
    return stack, key


def explorer_rows(client, pathname="/dashboard/explorer") -> list[dict]:
    answer = callback(client, "ex-rows.data", {"ex-page.data": 0, "url.pathname": pathname})
    return answer["ex-rows"]["data"]


def details(client, rows, index, pathname="/dashboard/explorer") -> str:
    answer = callback(client, "ex-detail.children", {
        "ex-rows.active_cell": {"row": index, "column": 0},
        "ex-rows.derived_viewport_data": rows, "ex-page.data": 0,
        "url.pathname": pathname})  # fmt: skip
    return json.dumps(answer["ex-detail"])


def test_explorer_rows_without_details_say_so_and_forged_ones_are_answered(explored):
    stack, _key = explored
    client = stack.client
    rows = explorer_rows(client)
    plain = next(i for i, r in enumerate(rows) if r["status"] == 200)
    assert "carried no exception" in details(client, rows, plain)
    for cell, forged in (("x", rows), ({"row": 0}, "rows"), ({"row": 0}, [{"detail": [1]}]),
                         ({"row": 0}, [{"detail": "x1"}]), ({"row": 7}, [])):  # fmt: skip
        answer = callback(client, "ex-detail.children", {"ex-rows.active_cell": cell,
                          "ex-rows.derived_viewport_data": forged, "url.pathname": 3})  # fmt: skip
        assert answer["ex-detail"]["children"]["props"]["children"], cell


def test_explorer_shows_a_requests_exception_validation_and_masked_captures(explored):
    stack, key = explored
    client = stack.client
    rows = explorer_rows(client)
    failed = next(i for i, r in enumerate(rows) if r["status"] >= 500)
    drawn = details(client, rows, failed)
    assert "Most recent call last" in drawn and "[masked]" in drawn and SECRET not in drawn
    invalid = next(i for i, r in enumerate(rows) if r["status"] == 422)
    assert "body." in details(client, rows, invalid)
    # A share link shows only the details of rows it shows.
    link = make_share(client, key, filters={"status_class": "2xx"})
    assert "not on this page" in details(client, rows, failed, link["path"] + "/explorer")


def test_rule_form_shows_each_kinds_fields_and_creates_error_rules(sqlite_app):
    client = sqlite_app.client
    sign_in(client, sqlite_app.new_key())
    page = render_page(client, "/dashboard/alerts")
    token = find(page["page"]["children"], "al-csrf")["props"]["data"]
    for kind, shown in (("new_error", {"window"}), ("error_regression", {"window"}),
                        ("monitor_down", {"monitor", "k"}),
                        ("error_rate", {"threshold", "window", "min", "4xx"})):  # fmt: skip
        styles = callback(client, "al-f-window.style", {"al-rule-kind.value": kind})
        visible = {c.removeprefix("al-f-") for c, v in styles.items() if v["style"] == {}}
        assert visible == shown, kind
    options = [o["value"] for o in find(page["page"], "al-rule-kind")["props"]["options"]]
    assert {"new_error", "error_regression"} <= set(options)
    for kind, words in (("new_error", "first seen in the last 15 min"),
                        ("error_regression", "occurs again")):  # fmt: skip
        made = call(client, "al-rule-create",
                    [{"id": "al-rule-create", "property": "n_clicks", "value": 1}],
                    {"al-csrf": token, "al-rule-kind": kind, "al-rule-window": 15,
                     "al-rule-name": kind, "al-rule-threshold": 7, "al-changed": 0})  # fmt: skip
        assert made["al-rule-msg"]["children"] == f"Rule '{kind}' created."
        rules = callback(client, "al-rules.children", {"al-changed.data": 1})
        assert words in json.dumps(rules["al-rules"])


def test_overview_user_id_click_becomes_a_chip(explored):
    stack, _key = explored
    client = stack.client
    values = {"ov-url.search": "?period=7d", "ov-user-ids.active_cell": {"row": 0, "column": 0},
              "ov-user-ids.derived_viewport_data": [{"user_id": "user_001", "n": 9}]}  # fmt: skip
    synced = callback(client, "ov-filters.data", values, "ov-user-ids.active_cell")
    assert synced["ov-filters"]["data"] == "?period=7d&user_id=user_001"
    assert "User id: user_001" in json.dumps(synced["ov-chips"])
    values["ov-user-ids.derived_viewport_data"] = "forged"
    synced = callback(client, "ov-filters.data", values, "ov-user-ids.active_cell")
    assert synced["ov-filters"]["data"] == "?period=7d"
    panels = callback(client, "ov-summary.children", {"ov-filters.data": "?period=7d",
                      "url.pathname": "/dashboard/"})  # fmt: skip
    assert panels["ov-user-ids"]["data"] and panels["ov-status-links"]["children"]
    # Forged values of the wrong type: the defaults, not a 500.
    forged = callback(client, "ov-filters.data", {"ov-url.search": ["?x"],
                      "ov-period.value": ["7d"]}, "ov-period.value")  # fmt: skip
    assert forged["ov-filters"]["data"] == ""
    assert callback(client, "ov-summary.children", {"ov-filters.data": {"a": 1},
                    "url.pathname": 5})["ov-user-ids"]["data"]  # fmt: skip
    rows = callback(client, "ex-rows.data", {"ex-page.data": "2", "ex-next.n_clicks": 1,
                    "url.pathname": "/dashboard/explorer"})  # fmt: skip
    assert rows["ex-page-label"]["children"] == "Rows 1–50"
