"""SLOs: the lifecycle through the API, and each SLO's SLI, error budget, burn rates and
burn-down exact against independent counts of what was sent, on both backends, from
exported (Parquet, closed months among them) and hot rows alike."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from server.api.slos import routes
from server.lake.export import flush
from tests.helpers import post_batch

BURN = {"5m": 5, "30m": 30, "1h": 60, "6h": 360, "24h": 1440, "3d": 4320}  # minutes


def auth(key):
    return {"X-AUTH-TOKEN": key}


def sent_rows(now: datetime) -> list[dict]:
    """Rows over 35 days (so 30-day windows span a closed month), denser in the last 3;
    none within a second of a window's edge."""
    rng = random.Random(35)
    moments = [now - timedelta(minutes=83 * i + 0.5) for i in range(610)]
    moments += [now - timedelta(seconds=811 * i + 7) for i in range(320)]
    moments += [now - timedelta(seconds=17 * i + 3) for i in range(40)]  # the last minutes
    rows = []
    for i, moment in enumerate(moments):
        consumer = rng.choice([None, "c1", "c2", "c3"])
        fields = {
            "hostname": ("api.example.com", "eu.example.com")[i % 2],
            "path": rng.choice(["/v1/items/7", "/v1/items/8", "/v1/orders", "/health"]),
            "method": rng.choice(["GET", "GET", "POST"]),
            "status": rng.choice([200] * 12 + [201, 404, 429, 500, 503]),
            "response_time": rng.randrange(1, 600),
            "created_at": moment.isoformat(),
        }
        if consumer:
            group = "gold" if consumer in ("c1", "c2") else "free"
            fields["consumer"] = {"id": consumer, "name": consumer.upper(), "group": group}
        rows.append({**fields, "_at": moment, "_group": group if consumer else None})
    return rows


SLOS = [
    {"name": "API", "objective": "availability", "target": 99.9, "window_days": 30},
    {
        "name": "EU, 4xx bad",
        "objective": "availability",
        "include_4xx": True,
        "target": 95,
        "window_days": 7,
        "hostname": "eu.example.com",
    },  # fmt: skip
    {
        "name": "Items fast",
        "objective": "latency",
        "threshold_ms": 250,
        "target": 99,
        "window_days": 28,
        "endpoints": ["GET /v1/items/*"],
    },  # fmt: skip
    {
        "name": "Gold",
        "objective": "availability",
        "target": 99.5,
        "window_days": 30,
        "consumer_group": "gold",
    },  # fmt: skip
]


def in_scope(slo: dict, r: dict) -> bool:
    if slo.get("hostname") and r["hostname"] != slo["hostname"]:
        return False
    if slo.get("endpoints") and not (r["method"] == "GET" and r["path"].startswith("/v1/items/")):
        return False
    return not slo.get("consumer_group") or r["_group"] == slo["consumer_group"]


def is_bad(slo: dict, r: dict) -> bool:
    if slo["objective"] == "latency":
        return r["response_time"] > slo["threshold_ms"]
    return r["status"] >= (400 if slo.get("include_4xx") else 500)


def counted(slo, rows, since, until) -> tuple[int, int]:
    chosen = [r for r in rows if since <= r["_at"] < until and in_scope(slo, r)]
    return len(chosen), sum(is_bad(slo, r) for r in chosen)


def send(stack, key, rows):
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    for start in range(0, len(clean), 500):
        assert post_batch(stack.client, key, clean[start : start + 500]).status_code == 201
    stack.process_jobs()


def test_slis_budgets_and_burn_rates_are_exact(stack, monkeypatch):
    now = datetime.now(UTC).replace(microsecond=0)
    rows = sent_rows(now)
    key = stack.new_key()
    old = [r for r in rows if r["_at"] < now - timedelta(days=2)]
    send(stack, key, old)
    flush()  # exported to Parquet; the closed month compacted
    send(stack, key, [r for r in rows if r["_at"] >= now - timedelta(days=2)])

    monkeypatch.setattr(routes, "utcnow", lambda: now)
    made = []
    for slo in SLOS:
        response = stack.client.post("/api/slos", json=slo, headers=auth(key))
        assert response.status_code == 201, response.get_json()
        made.append(response.get_json())
    listed = stack.client.get("/api/slos", headers=auth(key)).get_json()
    assert [s["id"] for s in listed] == [s["id"] for s in made]

    for slo, got in zip(SLOS, listed, strict=True):
        state = got["status"]
        n, bad = counted(slo, rows, now - timedelta(days=slo["window_days"]), now)
        assert n > 20 and bad > 0, slo["name"]  # not an empty case
        assert (state["requests"], state["bad"], state["good"]) == (n, bad, n - bad), slo
        assert state["sli"] == pytest.approx(100 * (n - bad) / n)
        allowed = (1 - slo["target"] / 100) * n
        assert state["budget"] == pytest.approx(allowed)
        assert state["budget_remaining"] == pytest.approx(100 * (1 - bad / allowed))
        for name, minutes in BURN.items():
            wn, wbad = counted(slo, rows, now - timedelta(minutes=minutes), now)
            expected = None if not wn else (wbad / wn) / (1 - slo["target"] / 100)
            assert state["burn_rates"][name] == pytest.approx(expected), (slo["name"], name)

        detail = stack.client.get(f"/api/slos/{got['id']}", headers=auth(key)).get_json()
        points = detail["burn_down"]
        assert points[0] == [pytest.approx((now - timedelta(days=slo["window_days"])).timestamp()),
                             100.0]  # fmt: skip
        assert points[-1] == [pytest.approx(now.timestamp()),
                              pytest.approx(state["budget_remaining"])]  # fmt: skip
        # Spent hour by hour: never rising, each step the hour's bad requests.
        assert all(b[1] <= a[1] + 1e-9 for a, b in zip(points, points[1:], strict=False))
        hour_end = datetime.fromtimestamp(points[len(points) // 2][0], UTC)
        _, spent = counted(slo, rows, now - timedelta(days=slo["window_days"]), hour_end)
        assert points[len(points) // 2][1] == pytest.approx(100 * (1 - spent / allowed))


def test_an_slo_lifecycle(stack):
    key = stack.new_key()
    other = stack.new_key()
    body = {"name": "API", "objective": "availability", "target": 99.9}
    made = stack.client.post("/api/slos", json=body, headers=auth(key)).get_json()
    assert made["window_days"] == 30 and made["endpoints"] == []
    assert made["status"]["requests"] == 0 and made["status"]["sli"] is None
    assert made["status"]["budget_remaining"] == 100.0
    assert set(made["status"]["burn_rates"]) == set(BURN)
    # Its two burn-rate rules are alert rules like any other.
    rules = stack.client.get("/api/alerts", headers=auth(key)).get_json()
    assert sorted((r["kind"], r["slo_id"]) for r in rules) == [
        ("slo_fast_burn", made["id"]), ("slo_slow_burn", made["id"])]  # fmt: skip
    assert sorted(made["alert_rule_ids"]) == sorted(r["id"] for r in rules)
    renamed = stack.client.patch(
        f"/api/alerts/{rules[0]['id']}", json={"name": "Pager"}, headers=auth(key)
    )
    assert renamed.status_code == 200 and renamed.get_json()["slo_id"] == made["id"]
    # Made a plain rule, it no longer names the SLO (nor goes with it).
    plain = {"kind": "error_rate", "threshold": 5, "window_minutes": 10}
    changed = stack.client.patch(f"/api/alerts/{rules[1]['id']}", json=plain, headers=auth(key))
    assert changed.status_code == 200 and changed.get_json()["slo_id"] is None

    for bad, field in (
        ({**body, "target": 100}, "target"),
        ({**body, "target": 30}, "target"),
        ({**body, "window_days": 14}, "window_days"),
        ({**body, "objective": "latency"}, "threshold_ms"),
        ({**body, "objective": "speed"}, "objective"),
        ({k: v for k, v in body.items() if k != "name"}, "name"),
        ({**body, "endpoints": ["  "]}, "endpoints"),
        ({**body, "channel_ids": [999]}, "channel_ids"),
        ({**body, "colour": "red"}, "colour"),
    ):
        response = stack.client.post("/api/slos", json=bad, headers=auth(key))
        assert response.status_code == 400, bad
        assert field in response.get_json()["message"] or field in str(response.get_json())
    made_rule = stack.client.post(
        "/api/alerts", json={"kind": "slo_fast_burn", "name": "x"}, headers=auth(key)
    )
    assert made_rule.status_code == 400 and "slo_id" in made_rule.get_json()["message"]

    url = f"/api/slos/{made['id']}"
    assert stack.client.get(url, headers=auth(other)).status_code == 404
    assert stack.client.patch(url, json={"name": "x"}, headers=auth(other)).status_code == 404
    changed = stack.client.patch(
        url, json={"objective": "latency", "threshold_ms": 300, "window_days": 7},
        headers=auth(key),
    )  # fmt: skip
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["threshold_ms"], changed.get_json()["window_days"]) == (300, 7)
    refused = stack.client.patch(url, json={"threshold_ms": None}, headers=auth(key))
    assert refused.status_code == 400
    assert stack.client.patch(url, json={"alerts": False}, headers=auth(key)).status_code == 400

    assert stack.client.delete(url, headers=auth(other)).status_code == 404
    assert stack.client.delete(url, headers=auth(key)).status_code == 204
    assert stack.client.get(url, headers=auth(key)).status_code == 404
    assert [r["kind"] for r in stack.client.get("/api/alerts", headers=auth(key)).get_json()] == [
        "error_rate"
    ]
    quiet = stack.client.post("/api/slos", json={**body, "alerts": False}, headers=auth(key))
    assert quiet.status_code == 201 and quiet.get_json()["alert_rule_ids"] == []
    assert stack.client.get("/api/slos").status_code == 401


def test_a_key_with_too_many_slos_is_refused(sqlite_app, monkeypatch):
    from server.slos import store

    monkeypatch.setattr(store, "SLO_LIMIT", 2)
    key = sqlite_app.new_key()
    body = {"name": "API", "objective": "availability", "target": 99, "alerts": False}
    for _ in range(2):
        assert sqlite_app.client.post("/api/slos", json=body, headers=auth(key)).status_code == 201
    assert sqlite_app.client.post("/api/slos", json=body, headers=auth(key)).status_code == 409
