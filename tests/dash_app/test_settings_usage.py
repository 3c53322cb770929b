"""The settings page's usage download through the real app: the form the page draws,
posted as the browser posts it with the session (no key in any URL or field), answers
byte for byte what GET /api/usage answers, for a closed month and the live one, in CSV
and JSON; without the page's token or a session it answers nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from server.alerts.notify import channel_secret
from server.keys.api_keys import lookup_key
from server.lake.export import flush
from server.usage.models import usage_webhooks
from tests.conftest import sqlite_stack
from tests.dash_app.test_keys_shares import settings_post
from tests.dash_app.test_session import render_page, sign_in
from tests.helpers import post_batch
from tests.server.usage.test_usage import closed_month, expected, generated


def auth(key: str) -> dict:
    return {"X-AUTH-TOKEN": key}


def test_the_usage_download_is_the_apis_answer_byte_for_byte(stack):
    client = stack.client
    now = datetime.now(UTC)
    start, end, month = closed_month(now)
    key = stack.new_key()
    rows = [r for r in generated(start, now, 900, 5) if r["created_at"] < now.isoformat()]
    assert post_batch(client, key, rows[:600]).status_code == 201
    stack.process_jobs()
    flush()
    assert post_batch(client, key, rows[600:]).status_code == 201
    stack.process_jobs()
    sign_in(client, key)

    page = str(render_page(client, "/dashboard/settings")["page"])
    for shown in ("usage-month", "usage-group", "usage-format", month, "Status class"):
        assert shown in page
    for when in (month, now.strftime("%Y-%m")):
        for group_by in ("consumer", "route", "status_class"):
            for form in ("csv", "json"):
                got = settings_post(client, "usage", month=when, group_by=group_by, format=form)
                assert got.status_code == 200, got.get_data(as_text=True)[:300]
                assert got.headers["Content-Disposition"] == (
                    f'attachment; filename="usage-{when}-{group_by}.{form}"'
                )
                api = client.get("/api/usage", headers=auth(key),
                                 query_string={"month": when, "group_by": group_by,
                                               "format": form})  # fmt: skip
                assert api.status_code == 200
                assert got.get_data() == api.get_data()  # the same bytes
                assert got.mimetype == api.mimetype
                if form == "json" and when == month:  # and those are exact
                    body = api.get_json()
                    assert body["final"] is True
                    want = expected(rows, start, end, group_by)
                    assert {r["name"]: (r["requests"], r["errors"]) for r in body["rows"]} == want


def test_bad_usage_fields_and_missing_tokens_download_nothing(sqlite_app):
    client = sqlite_app.client
    key = sqlite_app.new_key()
    assert settings_post(client, "usage", None, month="2026-11", group_by="route",
                         format="csv").headers["Location"] == "./"  # fmt: skip
    sign_in(client, key)
    for token in (None, "forged"):
        refused = settings_post(client, "usage", token, month="2026-11", group_by="route",
                                format="csv")  # fmt: skip
        assert refused.status_code == 303 and "Content-Disposition" not in refused.headers
    for fields, message in (
        ({"month": "2026-13", "group_by": "route", "format": "csv"}, "month must be YYYY-MM"),
        ({"month": "2026-11", "group_by": "planet", "format": "csv"}, "group_by must be one"),
        ({"month": "2026-11", "group_by": "route", "format": "xml"}, "Pick CSV or JSON"),
        ({"month": "2999-01", "group_by": "route", "format": "json"}, "not begun"),
    ):
        answer = settings_post(client, "usage", **fields)
        assert answer.status_code == 303 and answer.headers["Location"] == "settings"
        assert message in str(render_page(client, "/dashboard/settings")["page"]), fields


def test_the_month_closed_webhook_is_set_shown_and_removed_from_settings(tmp_path):
    # The receiver may be on this machine (as the alert tests' are).
    stack = sqlite_stack(tmp_path, MONITOR_ALLOW_PRIVATE=True)
    client = stack.client
    key = stack.new_key()
    sign_in(client, key)
    url = "http://127.0.0.1:9/hooks/usage"
    assert "No webhook set." in str(render_page(client, "/dashboard/settings")["page"])
    refused = settings_post(client, "usage_webhook", url="ftp://127.0.0.1/x")
    assert refused.headers["Location"] == "settings"
    assert "No webhook was set" in str(render_page(client, "/dashboard/settings")["page"])

    shown = settings_post(client, "usage_webhook", url=url)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-secret">([^<]+)<', shown.get_data(as_text=True)).group(1)
    with stack.engine.connect() as conn:
        salt = conn.execute(
            select(usage_webhooks.c.secret_salt)
            .where(usage_webhooks.c.key_id == lookup_key(conn, key))
        ).scalar_one()  # fmt: skip
    assert secret == channel_secret(stack.config.SECRET_KEY, salt)  # what signs the POSTs
    assert client.get("/api/usage/webhook", headers=auth(key)).get_json()["url"] == url
    page = str(render_page(client, "/dashboard/settings")["page"])
    assert url in page and "No month has closed since." in page and secret not in page

    assert settings_post(client, "usage_webhook_delete").headers["Location"] == "settings"
    assert client.get("/api/usage/webhook", headers=auth(key)).status_code == 404
    assert "Webhook removed." in str(render_page(client, "/dashboard/settings")["page"])
