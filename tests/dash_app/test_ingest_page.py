"""The ingest health page through Dash's callback endpoint: what to check and the
snippets while nothing has arrived; then the last batch, the refusals and the rows."""

from __future__ import annotations

from tests.dash_app.helpers import find_component
from tests.dash_app.test_keys_shares import callback
from tests.dash_app.test_session import sign_in
from tests.helpers import payload, row

AT = {"url.pathname": "/dashboard/ingest"}


def test_the_ingest_page(sqlite_app):
    client = sqlite_app.client
    key = sqlite_app.new_key()
    sign_in(client, key)
    nothing = callback(client, "ih-body.children", AT)["ih-body"]["children"]
    assert find_component(nothing, "ih-nothing") is not None
    text = str(nothing)
    assert "Nothing has arrived" in text and "api_analytics.fastapi" in text
    assert "api_analytics.django" in text and "config.server_url" in text

    rows = [row(), row(status="abc", password="hunter2")]
    client.post("/api/log-request", json=payload(key, rows, 0, "FastAPI"),
                headers={"User-Agent": "api-analytics-middleware/1.0"})  # fmt: skip
    shown = callback(client, "ih-body.children", AT)["ih-body"]["children"]
    text = str(shown)
    assert "FastAPI · api-analytics-middleware/1.0" in text
    assert "status" in str(find_component(shown, "ih-reasons"))
    refused = str(find_component(shown, "ih-refused"))
    assert "status:" in refused and "hunter2" not in refused and "[masked]" in refused


def test_a_share_link_sees_no_ingest_page():
    from dash_app import route

    assert route("s/token/ingest") == ("share", None)
    assert route("ingest") == ("key", "ingest")
