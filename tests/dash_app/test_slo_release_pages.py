"""The SLO and release pages through Dash's callback endpoint: signed in, each SLO's card
with its numbers and burn-down, a deploy's comparison table, deploy markers on the
overview's activity chart; nothing of these for a share link; the figures on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dash_app import figures as made
from tests.dash_app.helpers import AsFigures, find_component
from tests.dash_app.test_keys_shares import callback
from tests.dash_app.test_session import render_page, sign_in
from tests.helpers import post_batch, row

figures = AsFigures(made)


def show(client, pathname="/dashboard/slos"):
    response = client.post(
        "/dashboard/_dash-update-component",
        json={
            "output": "slo-list.children",
            "outputs": {"id": "slo-list", "property": "children"},
            "inputs": [{"id": "slo-tick", "property": "n_intervals", "value": None}],
            "state": [{"id": "url", "property": "pathname", "value": pathname}],
            "changedPropIds": [],
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()["response"]["slo-list"]["children"]


def test_the_slo_page_shows_each_slo_and_its_burn_down(sqlite_app):
    client = sqlite_app.client
    key = sqlite_app.new_key()
    sign_in(client, key)
    assert "No SLOs yet" in str(show(client))
    moment = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    rows = [row(status=500 if i < 3 else 200, created_at=moment) for i in range(100)]
    assert post_batch(client, key, rows).status_code == 201
    sqlite_app.process_jobs()
    body = {"name": "Checkout", "objective": "availability", "target": 99, "window_days": 7}
    made = client.post("/api/slos", json=body, headers={"X-AUTH-TOKEN": key}).get_json()

    page = render_page(client, "/dashboard/slos")
    assert find_component(page["page"]["children"], "slo-list") is not None
    assert "SLOs" in str(page["nav"]["children"])
    cards = show(client)
    text = str(cards)
    assert "Checkout" in text and "99 % of requests not answered 5xx, over 7 days" in text
    assert "97.000%" in text  # 3 bad of 100
    assert "-200.0%" in text  # 3 bad against a budget of 1
    figure = find_component(cards, f"slo-burn-{made['id']}")["props"]["figure"]
    assert figure["data"][0]["y"][0] == 100.0
    assert figure["data"][0]["y"][-1] == pytest.approx(-200.0)


def test_the_burn_down_marks_the_deploys_in_its_window(sqlite_app):
    client = sqlite_app.client
    key = sqlite_app.new_key()
    sign_in(client, key)
    headers = {"X-AUTH-TOKEN": key}
    moment = datetime.now(UTC) - timedelta(hours=3)
    times = [(moment + timedelta(minutes=i)).isoformat() for i in range(100)]
    rows = [row(status=500 if i < 2 else 200, created_at=t) for i, t in enumerate(times)]
    assert post_batch(client, key, rows).status_code == 201
    sqlite_app.process_jobs()
    body = {"name": "All", "objective": "availability", "target": 99, "window_days": 7}
    made = client.post("/api/slos", json=body, headers=headers).get_json()
    scoped = {**body, "name": "Other host", "hostname": "other.example.com"}
    other = client.post("/api/slos", json=scoped, headers=headers).get_json()
    for version, when, host in (("v1", timedelta(hours=2), None),
                                ("v0", timedelta(days=9), None),  # before the window
                                ("v2", timedelta(hours=1), "api.example.com")):  # fmt: skip
        deploy = {"version": version, "time": (datetime.now(UTC) - when).isoformat()}
        if host:
            deploy["hostname"] = host
        assert client.post("/api/deploys", json=deploy, headers=headers).status_code == 201
    cards = show(client)

    def marked(slo_id):
        figure = find_component(cards, f"slo-burn-{slo_id}")["props"]["figure"]
        return sorted(a["text"] for a in figure["layout"].get("annotations", []))

    assert marked(made["id"]) == ["v1", "v2"]
    assert marked(other["id"]) == ["v1"]  # v2 went to another host


def test_the_release_page_and_the_deploy_markers(sqlite_app):
    client = sqlite_app.client
    key = sqlite_app.new_key()
    sign_in(client, key)
    at = {"url.pathname": "/dashboard/releases"}
    assert callback(client, "rel-deploy.options", at)["rel-deploy"] == {
        "options": [], "value": None}  # fmt: skip
    none = callback(client, "rel-table.children", {**at, "rel-window.value": 60})
    assert "No deploys yet" in str(none)

    deployed = datetime.now(UTC) - timedelta(minutes=90)
    rows = []
    for i in range(200):
        after = i % 2 == 1
        moment = deployed + timedelta(seconds=(1 if after else -1) * (10 + i * 15))
        slow = after and i % 4 == 1
        rows.append(row(path="/v1/orders" if i % 4 < 2 else "/v1/users",
                        response_time=(400 if slow else 20) + i % 7,
                        created_at=moment.isoformat()))  # fmt: skip
    assert post_batch(client, key, rows).status_code == 201
    sqlite_app.process_jobs()
    body = {"version": "v2.0", "time": deployed.isoformat(), "description": "orders rework"}
    made = client.post("/api/deploys", json=body, headers={"X-AUTH-TOKEN": key}).get_json()

    listed = callback(client, "rel-deploy.options", at)["rel-deploy"]
    assert listed["value"] == made["id"] and "v2.0" in listed["options"][0]["label"]
    table = callback(client, "rel-table.children",
                     {**at, "rel-deploy.value": made["id"], "rel-window.value": 60})  # fmt: skip
    first = find_component(table, "rel-row-0")
    assert "GET /v1/orders" in str(first) and "worse" in str(first)
    assert "within noise" in str(find_component(table, "rel-row-1"))

    overview = {"ov-filters.data": "?period=24h", "url.pathname": "/dashboard/"}
    panels = callback(client, "ov-summary.children", overview)
    activity = panels["ov-activity"]["figure"]
    assert [a["text"] for a in activity["layout"]["annotations"]] == ["v2.0"]
    assert activity["layout"]["shapes"][0]["x0"].startswith(deployed.strftime("%Y-%m-%dT%H:%M"))


def test_a_share_link_sees_neither_page(sqlite_app):
    from dash_app import route

    for page in ("slos", "releases"):
        assert route(f"s/sometoken/{page}") == ("share", None)
        assert route(f"demo/{page}") == ("demo", None)
        assert route(page) == ("key", page)


def test_deploy_markers():
    figure = figures.deploy_markers(
        figures.activity(pd.DataFrame()), [{"time": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
                                            "version": "1.2", "description": None}]
    )  # fmt: skip
    assert figure.layout.shapes[0].x0.startswith("2026-01-02T03:04")
    assert figure.layout.annotations[-1].text == "1.2"


def test_the_burn_down_figure():
    empty = figures.budget_burn_down([(0, 100.0)])
    assert "No requests" in str(empty.layout.annotations)
    drawn = figures.budget_burn_down([(0, 100.0), (3600, 40.0), (7200, -10.0)])
    assert list(drawn.data[0].y) == [100.0, 40.0, -10.0]
    assert drawn.data[0].line.color == figures.BAD  # overspent
    assert drawn.layout.yaxis.range[0] < -10


def test_the_alerts_page_describes_burn_rate_rules():
    from dash_app.pages.alert_tables import describe

    fast = describe({"kind": "slo_fast_burn", "slo_id": 3})
    assert fast == "SLO 3, fast burn: error budget burning above 14.4× over both 1 h and 5 min"
    slow = describe({"kind": "slo_slow_burn", "slo_id": 3})
    assert "above 6× over both 6 h and 30 min, or above 1× over both 3 days and 6 h" in slow
