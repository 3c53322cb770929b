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


def test_the_ingest_page_shows_clocks_drops_and_warnings(stack):
    """Both backends: a client whose clock runs 20 s behind, one whose process dropped
    records; each in its table, and both warned of in plain words."""
    import time

    client = stack.client
    key = stack.new_key()
    sign_in(client, key)
    late = {"User-Agent": "api-analytics-middleware/1.0", "X-Client-Time": f"{time.time() - 20}"}
    client.post("/api/log-request", json=payload(key, [row()], 0, "Flask"), headers=late)
    drops = {
        "User-Agent": "api-analytics-middleware/1.0",
        "X-Client-Time": f"{time.time()}",
        "X-Client-Drops": f"instance={'d' * 32}; buffer_full=40; refused=0; failed=3",
    }
    client.post("/api/log-request", json=payload(key, [row()], 0, "FastAPI"), headers=drops)
    client.post("/api/log-request", json=payload(key, [row()], 0, "Django"))  # sends neither
    shown = callback(client, "ih-body.children", AT)["ih-body"]["children"]
    warnings = str(find_component(shown, "ih-warnings"))
    assert "Flask · api-analytics-middleware/1.0 runs 20" in warnings
    assert "behind this server's" in warnings
    assert "(process dddddddd) dropped 40 records because its buffer was full" in warnings
    clients = str(find_component(shown, "ih-clients"))
    assert "+20." in clients and "not sent" in clients  # Django's batch had no clock
    table = str(find_component(shown, "ih-drops"))
    assert "dddddddd" in table and "'40'" in table and "'3'" in table
