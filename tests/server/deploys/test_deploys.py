"""Deploys: the lifecycle through the API, and the release comparison on generated traffic
where one endpoint's response times double after a deploy: that endpoint comes first,
worse beyond noise, the unchanged ones within noise; every count and percentile exact
against numpy over what was sent."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from server.lake.export import flush
from tests.helpers import post_batch, row

ENDPOINTS = [("GET", "/v1/items/{n}"), ("POST", "/v1/orders"), ("GET", "/v1/users"),
             ("GET", "/health"), ("DELETE", "/v1/items/{n}"), ("GET", "/v1/search")]  # fmt: skip
SLOWED = "POST /v1/orders"


def auth(key):
    return {"X-AUTH-TOKEN": key}


def traffic(deployed: datetime) -> list[dict]:
    """An hour each side of the deploy: each endpoint ~400 requests a side, response
    times from the same skewed distribution, but POST /v1/orders's doubled after."""
    rng = random.Random(7)
    rows = []
    for side in (-1, 1):
        for _ in range(2400):
            method, path = rng.choice(ENDPOINTS)
            route = f"{method} {path.replace('{n}', '{id}')}"
            base = 20 + rng.lognormvariate(3.5, 0.6)
            slow = side == 1 and route == SLOWED
            at = deployed + timedelta(seconds=side * rng.uniform(1, 3599))
            rows.append(row(
                method=method, path=path.format(n=rng.randrange(1, 99)),
                status=500 if rng.random() < 0.01 else 200,
                response_time=round(base * (2 if slow else 1)),
                created_at=at.isoformat(), _route=route, _after=side == 1,
            ))  # fmt: skip
    return rows


def test_a_release_that_doubles_one_endpoints_p95_names_it_first(stack):
    key = stack.new_key()
    deployed = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    rows = traffic(deployed)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    older = [r for r in clean if r["created_at"] < deployed.isoformat()]
    newer = [r for r in clean if r["created_at"] >= deployed.isoformat()]
    assert post_batch(stack.client, key, older).status_code == 201
    stack.process_jobs()
    flush()  # before: in Parquet files; after: hot rows
    assert post_batch(stack.client, key, newer).status_code == 201
    stack.process_jobs()
    body = {"version": "2.0.0", "time": deployed.isoformat(), "description": "orders rework"}
    made = stack.client.post("/api/deploys", json=body, headers=auth(key))
    assert made.status_code == 201, made.get_json()
    deploy = made.get_json()

    found = stack.client.get(f"/api/deploys/{deploy['id']}/comparison", headers=auth(key))
    assert found.status_code == 200, found.get_json()
    result = found.get_json()
    assert result["window_minutes"] == 60
    endpoints = result["endpoints"]
    first = endpoints[0]
    assert first["endpoint"] == SLOWED and first["verdict"] == "worse"
    assert first["changes"].get("p95") == "up" and first["changes"].get("p50") == "up"
    assert first["worse_by"] == pytest.approx(1.0, abs=0.35)
    assert [e["verdict"] for e in endpoints[1:]] == ["within noise"] * (len(ENDPOINTS) - 1)

    for e in endpoints:  # exact against what was sent
        for side, after in (("before", False), ("after", True)):
            sent = [r for r in rows if r["_route"] == e["endpoint"] and r["_after"] == after]
            times = np.array([r["response_time"] for r in sent], dtype=float)
            got = e[side]
            assert got["requests"] == len(sent)
            assert got["errors"] == sum(r["status"] >= 500 for r in sent)
            assert got["p50"] == pytest.approx(np.quantile(times, 0.5))
            assert got["p95"] == pytest.approx(np.quantile(times, 0.95))
            low, high = got["p95_ci"]
            assert low <= got["p95"] <= high and low in times and high in times


def test_a_deploy_lifecycle(stack):
    key, other = stack.new_key(), stack.new_key()
    now = datetime.now(UTC)
    made = []
    for i, hostname in enumerate((None, "api.example.com", "eu.example.com")):
        body = {"version": f"1.{i}", "time": (now - timedelta(hours=3 - i)).isoformat()}
        if hostname:
            body["hostname"] = hostname
        response = stack.client.post("/api/deploys", json=body, headers=auth(key))
        assert response.status_code == 201, response.get_json()
        made.append(response.get_json())
    listed = stack.client.get("/api/deploys", headers=auth(key)).get_json()
    assert [d["version"] for d in listed] == ["1.2", "1.1", "1.0"]
    on_api = stack.client.get("/api/deploys?hostname=api.example.com", headers=auth(key))
    assert [d["version"] for d in on_api.get_json()] == ["1.1", "1.0"]
    since = (now - timedelta(hours=2, minutes=30)).isoformat().replace("+00:00", "Z")
    recent = stack.client.get("/api/deploys", query_string={"since": since}, headers=auth(key))
    assert [d["version"] for d in recent.get_json()] == ["1.2", "1.1"]
    assert stack.client.get("/api/deploys", headers=auth(other)).get_json() == []

    untimed = stack.client.post("/api/deploys", json={"version": "1.3"}, headers=auth(key))
    stamp = datetime.fromisoformat(untimed.get_json()["time"])
    assert abs((stamp - datetime.now(UTC)).total_seconds()) < 60
    for bad in ({"version": ""}, {"time": now.isoformat()}, {"version": "x", "colour": 1},
                {"version": "x", "time": (now + timedelta(hours=1)).isoformat()},
                {"version": "x", "time": "2026-01-01T00:00:00"}):  # fmt: skip
        assert stack.client.post("/api/deploys", json=bad, headers=auth(key)).status_code == 400

    url = f"/api/deploys/{made[0]['id']}"
    assert stack.client.get(url, headers=auth(other)).status_code == 404
    empty = stack.client.get(url + "/comparison", headers=auth(key)).get_json()
    assert empty["endpoints"] == [] and empty["window_minutes"] == 60
    assert (
        stack.client.get(url + "/comparison?window_minutes=0", headers=auth(key)).status_code == 400
    )
    assert stack.client.delete(url, headers=auth(other)).status_code == 404
    assert stack.client.delete(url, headers=auth(key)).status_code == 204
    assert stack.client.get(url, headers=auth(key)).status_code == 404
    assert stack.client.get("/api/deploys").status_code == 401
