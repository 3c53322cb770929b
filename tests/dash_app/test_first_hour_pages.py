"""The pages a stranger meets in the first hour: a new key's overview says how to send the
first request (with this server's address) until data arrives; the alert form says where
the channels to notify come from while there are none; the share-link form's boxes are
as wide as their examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.dash_app.helpers import find_component, ingest, known_rows
from tests.dash_app.test_alerts_page import call
from tests.dash_app.test_callback_forgery import ENDPOINT, outputs_of, server_callbacks
from tests.dash_app.test_session import render_page, sign_in


def overview(client, period: str = "30d", whole: bool = False) -> dict:
    """The overview's refresh, as the page asks for it once its filters are read (`whole`:
    with what it set elsewhere in the page, its sideUpdate)."""
    (spec,) = [s for s in server_callbacks(client) if "ov-summary.children" in s["output"]]
    values = {"ov-filters.data": f"?period={period}", "url.pathname": "/dashboard/"}
    answer = client.post(
        ENDPOINT,
        json={
            "output": spec["output"],
            "outputs": outputs_of(spec),
            "inputs": [
                {
                    "id": d["id"],
                    "property": d["property"],
                    "value": values.get(f"{d['id']}.{d['property']}"),
                }
                for d in spec["inputs"]
            ],  # fmt: skip
            "state": [
                {
                    "id": d["id"],
                    "property": d["property"],
                    "value": values.get(f"{d['id']}.{d['property']}"),
                }
                for d in spec["state"]
            ],  # fmt: skip
            "changedPropIds": ["ov-filters.data"],
        },
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return answer.get_json() if whole else answer.get_json()["response"]


def show_alerts(client, tick: int) -> dict:
    """The alerts page's refresh (its tables, and the form's channels and monitors)."""
    inputs = [
        {"id": "al-tick", "property": "n_intervals", "value": tick},
        {"id": "al-changed", "property": "data", "value": 0},
    ]
    return call(client, "al-tick", inputs, {})


def test_a_new_keys_overview_says_how_to_send_the_first_request(sqlite_app):
    key = sqlite_app.new_key()
    assert sign_in(sqlite_app.client, key).status_code == 303
    shown = json.dumps(overview(sqlite_app.client))
    assert "ov-first-request" in shown and "send the first one" in shown
    # The snippet names this server (as the browser reached it), never the key itself.
    assert 'config.server_url = \\"http://localhost\\"' in shown
    assert "http://localhost/api/log-request" in shown
    assert key not in shown
    ingest(sqlite_app, key, known_rows(datetime.now(UTC)))
    shown = json.dumps(overview(sqlite_app.client))
    assert "ov-first-request" not in shown
    # Data, but none in the period asked for: the usual note, not the first-request one.
    shown = json.dumps(overview(sqlite_app.client, "24h"))
    assert "ov-first-request" not in shown


def test_the_alert_form_says_where_channels_come_from_while_there_are_none(sqlite_app):
    key = sqlite_app.new_key()
    assert sign_in(sqlite_app.client, key).status_code == 303
    shown = show_alerts(sqlite_app.client, 1)
    assert "No channels yet" in json.dumps(shown["al-rule-no-channels"])
    from server.alerts.rules import create_channel
    from server.keys.api_keys import lookup_key

    with sqlite_app.engine.begin() as conn:
        create_channel(conn, lookup_key(conn, key), "slack", "ops", "https://hooks.example/x")
    shown = show_alerts(sqlite_app.client, 2)
    assert shown["al-rule-no-channels"]["children"] is None
    assert "ops" in json.dumps(shown["al-rule-channels"])


def test_the_alert_form_shows_only_the_fields_of_the_chosen_kind(sqlite_app):
    from dash_app.pages.alerts import FIELDS, KIND_FIELDS, field_styles

    for kind, used in KIND_FIELDS.items():
        shown = {name for name, style in zip(FIELDS, field_styles(kind), strict=True) if not style}
        assert shown == set(used), kind


def test_the_share_forms_boxes_are_as_wide_as_their_examples(sqlite_app):
    key = sqlite_app.new_key()
    assert sign_in(sqlite_app.client, key).status_code == 303
    page = render_page(sqlite_app.client, "/dashboard/settings")["page"]["children"]
    for name in ("label", "hostname", "endpoint"):
        box = find_component(page, f"share-{name}")["props"]
        width = int(box["style"]["width"].removesuffix("ch"))
        assert width >= len(box["placeholder"]) + 2, (name, box)
