"""Every callback of every page, forged as a hostile client would send it to Dash's own
endpoint: values of every wrong type, empty, huge and malformed, one input at a time and
all at once. None may answer 500, and none may store anything."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from server.keys.api_keys import lookup_key
from server.models import alert_channels, alert_rules, monitors, share_links
from tests.dash_app.helpers import find_component, ingest, known_rows
from tests.dash_app.test_session import render_page, sign_in

ENDPOINT = "/dashboard/_dash-update-component"
HUGE = "x" * 100_000
FORGED = [
    None,
    "",
    "abc",
    HUGE,
    "2024-13-45",
    "\x00",
    0,
    -1,
    1.5,
    2**70,
    True,
    [],
    [1, "a", None],
    {"a": 1},
    {"row": "x", "column_id": 5, "row_id": []},
]
# Where each page's callbacks run from (their url.pathname, unless it is the value forged).
PAGES = {
    "ov-": "/dashboard/",
    "ex-": "/dashboard/explorer",
    "mon-": "/dashboard/monitors",
    "al-": "/dashboard/alerts",
    "er-": "/dashboard/errors",
    "eg-": "/dashboard/errors/1",
    "co-": "/dashboard/consumers",
}
PATHS = ["/dashboard/demo/explorer", "/dashboard/s/forged", "/dashboard/errors/abc", "/etc"]


def server_callbacks(client) -> list[dict]:
    deps = client.get("/dashboard/_dash-dependencies").get_json()
    return [d for d in deps if not d.get("clientside_function")]


def outputs_of(spec: dict) -> list[dict]:
    found = []
    for part in spec["output"].strip(".").split("..."):
        component, prop = part.rsplit(".", 1)
        component = json.loads(component) if component.startswith("{") else component
        found.append({"id": component, "property": prop.split("@")[0]})
    return found


def entry(dep: dict, value, defaults: dict):
    """One input or state as the browser sends it; a pattern-matching one is a list of the
    components it matches (here one, with the forged value, or none)."""
    if dep["id"].startswith("{"):
        pattern = json.loads(dep["id"])
        ids = {k: ("forged" if v == ["ALL"] else v) for k, v in pattern.items()}
        return [] if value is None else [{"id": ids, "property": dep["property"], "value": value}]
    return {"id": dep["id"], "property": dep["property"], "value": value}


def page_of(spec: dict) -> str:
    text = spec["output"]
    return next((path for prefix, path in PAGES.items() if prefix in text), "/dashboard/")


def default(dep: dict, spec: dict, token: str):
    if dep["property"] == "pathname":
        return page_of(spec)
    if dep["id"].endswith("-csrf"):
        return token
    return None


def body(spec: dict, values: dict, trigger: int = 0) -> dict:
    inputs = [entry(d, values[("in", i)], {}) for i, d in enumerate(spec["inputs"])]
    state = [entry(d, values[("st", i)], {}) for i, d in enumerate(spec["state"])]
    first = spec["inputs"][trigger]
    return {
        "output": spec["output"],
        "outputs": outputs_of(spec) if len(outputs_of(spec)) > 1 else outputs_of(spec)[0],
        "inputs": inputs,
        "state": state,
        "changedPropIds": [f"{first['id']}.{first['property']}"],
    }


def forgeries(spec: dict, token: str):
    """(what, request body): each input and state alone, then all of them, each value."""
    deps = [("in", i, d) for i, d in enumerate(spec["inputs"])]
    deps += [("st", i, d) for i, d in enumerate(spec["state"])]
    base = {(kind, i): default(d, spec, token) for kind, i, d in deps}
    for kind, i, dep in deps:
        values = FORGED + (PATHS if dep["property"] == "pathname" else [])
        for value in values:
            trigger = i if kind == "in" else 0
            yield (
                f"{dep['id']}.{dep['property']}={value!r:.40}",
                body(spec, {**base, (kind, i): value}, trigger),
            )
    for value in FORGED:
        yield f"everything={value!r:.40}", body(spec, {(k, i): value for k, i, _d in deps})


def stored(stack, key_id: int) -> dict:
    with stack.engine.connect() as conn:
        return {
            table.name: conn.execute(
                select(func.count()).select_from(table).where(table.c.key_id == key_id)
            ).scalar()
            for table in (alert_rules, alert_channels, monitors, share_links)
        }


@pytest.fixture
def signed_in(sqlite_app):
    """A signed-in browser on a key with three days of traffic, and its alerts page's token."""
    key = sqlite_app.new_key()
    ingest(sqlite_app, key, known_rows(datetime.now(UTC)))
    assert sign_in(sqlite_app.client, key).status_code == 303
    page = render_page(sqlite_app.client, "/dashboard/alerts")
    token = find_component(page["page"]["children"], "al-csrf")["props"]["data"]
    with sqlite_app.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    return sqlite_app, key_id, token


def test_every_callback_takes_every_forged_value_without_a_server_error(signed_in, caplog):
    stack, key_id, token = signed_in
    client = stack.client
    specs = server_callbacks(client)
    assert len(specs) >= 15  # every page's callbacks are registered
    failures, fallbacks, sent = [], [], 0
    for spec in specs:
        for what, forged in forgeries(spec, token):
            sent += 1
            try:
                answer = client.post(ENDPOINT, json=forged)
            except Exception as exc:  # the test app lets a view's exception through: a 500
                failures.append(f"{spec['output'][:60]} {what}: {type(exc).__name__}: {exc!s:.150}")
                continue
            if answer.status_code not in (200, 204):
                text = answer.get_data(as_text=True)[:200]
                failures.append(f"{spec['output'][:60]} {what}: {answer.status_code} {text}")
            for record in caplog.records:
                if record.name == "dash_app" and record.exc_info:
                    exc = record.exc_info[1]
                    fallbacks.append(
                        f"{spec['output'][:50]} {what}: {type(exc).__name__} {exc!s:.80}"
                    )
            caplog.clear()
    assert not failures, f"{len(failures)} of {sent}:\n" + "\n".join(failures[:200])
    # Each was answered in the page by dash_app.callback_failed, but by its own check
    # is better: the message then names the control.
    assert not fallbacks, f"{len(fallbacks)} of {sent}:\n" + "\n".join(fallbacks[:300])
    assert stored(stack, key_id) == dict.fromkeys(
        ("alert_rules", "alert_channels", "monitors", "share_links"), 0
    )


def explorer(client, **values):
    (spec,) = [s for s in server_callbacks(client) if "ex-rows.data" in s["output"]]
    named = {f"{d['id']}.{d['property']}": ("in", i) for i, d in enumerate(spec["inputs"])}
    named |= {f"{d['id']}.{d['property']}": ("st", i) for i, d in enumerate(spec["state"])}
    filled = dict.fromkeys(named.values())
    filled[named["url.pathname"]] = "/dashboard/explorer"
    for name, value in values.items():
        filled[named[name]] = value
    answer = client.post(ENDPOINT, json=body(spec, filled, trigger=2))
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return answer.get_json()["response"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("ex-rt-min.value", "abc", "Min ms"),
        ("ex-rt-max.value", -5, "Max ms"),
        ("ex-rt-min.value", 2**70, "Min ms"),
        ("ex-dates.start_date", "2024-13-45", "From"),
        ("ex-dates.end_date", 12, "To"),
        ("ex-status.value", "9xx", "Status"),
        ("ex-method.value", ["GET"], "Method"),
        ("ex-path.value", HUGE, "Path"),
    ],
)
def test_a_forged_explorer_filter_is_answered_in_the_page(signed_in, field, value, says):
    stack, _key_id, _token = signed_in
    answer = explorer(stack.client, **{field: value})
    notice = str(answer["ex-empty"]["children"])
    assert says in notice, notice
    assert answer["ex-rows"]["data"] == []


def test_the_explorer_still_answers_good_filters(signed_in):
    stack, _key_id, _token = signed_in
    answer = explorer(
        stack.client,
        **{"ex-rt-min.value": 0, "ex-rt-max.value": 10_000, "ex-dates.start_date": "2020-01-01"},
    )
    assert len(answer["ex-rows"]["data"]) > 0


def test_the_endpoint_table_still_reads_the_pages_own_rows(signed_in):
    """Its store read defensively, but a real one (the class a number) still fills it."""
    stack, _key_id, _token = signed_in
    (spec,) = [
        s
        for s in server_callbacks(stack.client)
        if "ov-endpoints.data" in s["output"] and s["inputs"][0]["id"] == "ov-endpoint-tab"
    ]  # fmt: skip (the tab's callback; the panels' refresh fills the table too)
    rows = [
        {"method": "GET", "endpoint": "/v1/items", "status_class": 2, "n": 8, "rt_sum": 80},
        {"method": "GET", "endpoint": "/v1/items", "status_class": 5, "n": 2, "rt_sum": 40},
        {"method": "POST", "endpoint": "/v1/orders", "status_class": "abc", "n": 1, "rt_sum": 1},
    ]
    values = {("in", 0): "all", ("st", 0): rows}
    answer = stack.client.post(ENDPOINT, json=body(spec, values))
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    (table,) = [answer.get_json()["response"]["ov-endpoints"]["data"]]
    assert table == [
        {"endpoint": "GET /v1/items", "method": "GET", "path": "/v1/items", "n": 10.0,
         "errors": 2.0, "error_rate": 20.0, "mean_rt": 12.0},
    ]  # fmt: skip


def test_a_huge_rule_name_from_the_page_is_refused_and_not_stored(signed_in):
    from tests.dash_app.test_alerts_page import create_rule

    stack, key_id, token = signed_in
    (spec,) = [s for s in server_callbacks(stack.client) if "al-rule-msg" in s["output"]]
    state = {f"{d['id']}": d for d in spec["state"]}
    assert "al-rule-name" in state
    answer = create_rule_named(stack.client, token, HUGE)
    message = str(answer["al-rule-msg"]["children"])
    assert "name" in message and "100000 characters long: at most 100" in message
    assert stored(stack, key_id)["alert_rules"] == 0
    assert "created" in str(create_rule(stack.client, token)["al-rule-msg"]["children"])
    assert stored(stack, key_id)["alert_rules"] == 1


def create_rule_named(client, token, name):
    from tests.dash_app.test_alerts_page import call

    return call(
        client,
        "al-rule-create",
        [{"id": "al-rule-create", "property": "n_clicks", "value": 1}],
        {
            "al-csrf": token,
            "al-rule-name": name,
            "al-rule-kind": "error_rate",
            "al-rule-threshold": 5,
            "al-rule-window": 10,
            "al-rule-min": 20,
            "al-rule-channels": [],
            "al-changed": 0,
        },
    )
