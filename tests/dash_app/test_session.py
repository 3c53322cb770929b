"""Sign-in by pasted key, the session cookie, sign-out and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from dash_app.filters import Filters, window_for
from dash_app.session import SESSION_KEY
from server.auth import lookup_key
from tests.dash_app.helpers import Expected, ingest, known_rows


def sign_in(client, key: str, next_query: str = ""):
    return client.post("/dashboard/sign-in", data={"api_key": key, "next": next_query})


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
        assert SESSION_KEY not in session


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
        assert session[SESSION_KEY] == key_id
        assert key not in str(dict(session))
    response = sqlite_app.client.post("/dashboard/sign-out")
    assert response.status_code == 303
    with sqlite_app.client.session_transaction() as session:
        assert SESSION_KEY not in session


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


def test_csv_export_holds_the_filtered_rows(stack):
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
