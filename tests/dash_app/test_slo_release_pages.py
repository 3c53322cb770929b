"""The SLO page through Dash's callback endpoint: signed in, each SLO's card with its
numbers and burn-down; nothing for a share link; the burn-down figure on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dash_app import figures
from tests.dash_app.helpers import find_component
from tests.dash_app.test_session import render_page, sign_in
from tests.helpers import post_batch, row


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


def test_a_share_link_sees_neither_page(sqlite_app):
    from dash_app import route

    for page in ("slos",):
        assert route(f"s/sometoken/{page}") == ("share", None)
        assert route(f"demo/{page}") == ("demo", None)
        assert route(page) == ("key", page)


def test_the_burn_down_figure():
    empty = figures.budget_burn_down([(0, 100.0)])
    assert "No requests" in str(empty.layout.annotations)
    drawn = figures.budget_burn_down([(0, 100.0), (3600, 40.0), (7200, -10.0)])
    assert list(drawn.data[0].y) == [100.0, 40.0, -10.0]
    assert drawn.data[0].line.color == figures.BAD  # overspent
    assert drawn.layout.yaxis.range[0] < -10
