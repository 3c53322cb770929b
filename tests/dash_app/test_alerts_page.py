"""The alerts page through Dash's own callback endpoint: signed-in only, and every callback
that changes something refuses a request without the page's CSRF token."""

from __future__ import annotations

from sqlalchemy import func, select

from server.keys.api_keys import lookup_key
from server.models import alert_channels, alert_rules
from tests.dash_app.helpers import find_component
from tests.dash_app.test_session import render_page, sign_in


def find(tree, component_id):
    """The props of the component with this id anywhere in a rendered tree."""
    component = find_component(tree, component_id)
    return None if component is None else component.get("props", {})


def call(client, trigger: str, inputs: list[dict], state: dict):
    """Fire the callback `trigger` starts, as the browser does; its JSON response."""
    deps = client.get("/dashboard/_dash-dependencies").get_json()
    (spec,) = [d for d in deps if any(i["id"] == trigger for i in d["inputs"])]
    outputs = []
    for part in spec["output"].strip(".").split("..."):
        component, prop = part.rsplit(".", 1)
        outputs.append({"id": component, "property": prop.split("@")[0]})
    response = client.post(
        "/dashboard/_dash-update-component",
        json={
            "output": spec["output"],
            "outputs": outputs,
            "inputs": inputs,
            "state": [
                {"id": s["id"], "property": s["property"], "value": state.get(s["id"])}
                for s in spec["state"]
            ],
            "changedPropIds": [f"{trigger}.n_clicks"],
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()["response"]


def create_rule(client, token):
    return call(
        client,
        "al-rule-create",
        [{"id": "al-rule-create", "property": "n_clicks", "value": 1}],
        {
            "al-csrf": token,
            "al-rule-name": "Errors",
            "al-rule-kind": "error_rate",
            "al-rule-threshold": 5,
            "al-rule-window": 10,
            "al-rule-min": 20,
            "al-rule-channels": [],
            "al-changed": 0,
        },
    )


def count(stack, table, key_id):
    with stack.engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.key_id == key_id)
        return conn.execute(query).scalar()


def test_state_changing_callbacks_need_the_pages_token(sqlite_app):
    stack, client = sqlite_app, sqlite_app.client
    key = stack.new_key()
    assert sign_in(client, key).status_code == 303
    page = render_page(client, "/dashboard/alerts")
    token = find(page["page"]["children"], "al-csrf")["data"]
    assert token
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)

    for forged in (None, "", "not-the-token"):
        refused = create_rule(client, forged)
        assert "Refused" in str(refused["al-rule-msg"]["children"])
        channel = call(
            client,
            "al-ch-create",
            [{"id": "al-ch-create", "property": "n_clicks", "value": 1}],
            {"al-csrf": forged, "al-ch-kind": "slack", "al-ch-target": "http://1.1.1.1/x"},
        )
        assert "Refused" in str(channel["al-ch-msg"]["children"])
    assert count(stack, alert_rules, key_id) == 0
    assert count(stack, alert_channels, key_id) == 0

    created = create_rule(client, token)
    assert created["al-rule-msg"]["children"] == "Rule 'Errors' created."
    assert count(stack, alert_rules, key_id) == 1
    with stack.engine.connect() as conn:
        rule_id = conn.execute(
            select(alert_rules.c.id).where(alert_rules.c.key_id == key_id)
        ).scalar()

    delete = [{"id": {"type": "al-rule-del", "index": rule_id}, "property": "n_clicks", "value": 1}]
    inputs = [delete, [], []]
    deps = client.get("/dashboard/_dash-dependencies").get_json()
    (spec,) = [d for d in deps if "al-rule-del" in str(d["inputs"])]
    body = {
        "output": spec["output"],
        "outputs": [
            {"id": "al-ch-msg", "property": "children"},
            {"id": "al-changed", "property": "data"},
        ],
        "inputs": inputs,
        "changedPropIds": [f'{{"index":{rule_id},"type":"al-rule-del"}}.n_clicks'],
    }

    def press(with_token):
        state = [
            {"id": "al-csrf", "property": "data", "value": with_token},
            {"id": "al-changed", "property": "data", "value": 1},
        ]
        answer = client.post("/dashboard/_dash-update-component", json={**body, "state": state})
        return answer.get_data(as_text=True)

    for forged in (None, "stale"):
        assert "Refused" in press(forged)
    assert count(stack, alert_rules, key_id) == 1
    assert "Rule deleted." in press(token)
    assert count(stack, alert_rules, key_id) == 0


def test_a_bad_rule_is_refused_on_the_page_naming_the_field(sqlite_app):
    client = sqlite_app.client
    assert sign_in(client, sqlite_app.new_key()).status_code == 303
    page = render_page(client, "/dashboard/alerts")
    token = find(page["page"]["children"], "al-csrf")["data"]
    answer = call(
        client,
        "al-rule-create",
        [{"id": "al-rule-create", "property": "n_clicks", "value": 1}],
        {"al-csrf": token, "al-rule-kind": "latency_p95", "al-rule-window": 5},
    )
    assert "threshold" in str(answer["al-rule-msg"]["children"])


def test_the_page_is_for_signed_in_keys_only(sqlite_app):
    client = sqlite_app.client
    signed_out = render_page(client, "/dashboard/alerts")
    assert find(signed_out["page"]["children"], "al-csrf") is None
    assert "Sign in" in str(signed_out["page"])
    demo = render_page(client, "/dashboard/demo/alerts")
    assert find(demo["page"]["children"], "al-csrf") is None
    assert sign_in(client, sqlite_app.new_key()).status_code == 303
    page = render_page(client, "/dashboard/alerts")
    assert find(page["page"]["children"], "al-csrf") is not None
    assert "Alerts" in str(page["nav"])


def test_a_release_regression_rule_is_made_on_the_page_as_through_the_api(sqlite_app):
    from dash_app.pages.alerts import FIELDS, field_styles

    client = sqlite_app.client
    key = sqlite_app.new_key()
    assert sign_in(client, key).status_code == 303
    shown = dict(zip(FIELDS, field_styles("release_regression"), strict=True))
    assert [f for f, style in shown.items() if style == {}] == ["threshold", "window", "min"]
    page = render_page(client, "/dashboard/alerts")
    token = find(page["page"]["children"], "al-csrf")["data"]
    answer = call(
        client,
        "al-rule-create",
        [{"id": "al-rule-create", "property": "n_clicks", "value": 1}],
        {
            "al-csrf": token,
            "al-rule-name": "Release",
            "al-rule-kind": "release_regression",
            "al-rule-window": 30,
            "al-rule-channels": [],
            "al-changed": 0,
        },  # fmt: skip
    )
    assert "Rule 'Release' created." in str(answer["al-rule-msg"]["children"])
    (rule,) = client.get("/api/alerts", headers={"X-AUTH-TOKEN": key}).get_json()
    assert (rule["kind"], rule["window_minutes"], rule["threshold"], rule["min_requests"]) == (
        "release_regression", 30, 10, 30)  # fmt: skip
    listed = call(
        client, "al-tick", [{"id": "al-tick", "property": "n_intervals", "value": 1},
                            {"id": "al-changed", "property": "data", "value": 1}], {},
    )  # fmt: skip
    assert "an endpoint worse beyond noise by 10% or more" in str(listed["al-rules"])
