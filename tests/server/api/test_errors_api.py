"""GET/PATCH /api/errors, GET /api/consumers, /api/masks: exact against independent counts
of what was sent, hot and in the store's files, under the dashboard's click filters."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from server.keys.api_keys import lookup_key
from server.lake.export import flush
from server.stats import consumers as consumer_stats
from server.stats import errors as error_stats
from server.stats.filters import Filters, window_for
from tests.helpers import post_batch, row

KINDS = ("app.errors.NotFound", "app.errors.Conflict", "KeyError")
PATHS = ("/v1/users/1", "/v1/orders", "/v2/items/7")


def occurrence(kind: str, n: int) -> dict:
    return {
        "type": kind,
        "message": f"thing {n} failed",
        "stack": [{"file": "app/views.py", "line": 10, "function": "view", "in_app": True}],
    }


def traffic(seed: int = 3, count: int = 400) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        consumer = rng.choice([None, "c1", "c2", "c3", "c4"])
        failed = rng.random() < 0.4
        fields = {
            "path": rng.choice(PATHS),
            "status": rng.choice([500, 502]) if failed else rng.choice([200, 201, 404]),
            "response_time": rng.randint(1, 900),
            "created_at": (now - timedelta(minutes=i)).isoformat(),
            "ip_address": f"8.8.8.{rng.randint(1, 30)}",
        }
        if consumer:
            group = "gold" if consumer in ("c1", "c2") else "free"
            fields["consumer"] = {"id": consumer, "name": consumer.upper(), "group": group}
        if failed:
            fields["exception"] = occurrence(rng.choice(KINDS), rng.randint(1, 99))
        rows.append(row(**fields))
    return rows


def headers(key):
    return {"X-AUTH-TOKEN": key}


def expected_groups(rows, where=lambda r: True):
    """(occurrences, distinct consumers) per (type, path's route), counted independently."""
    counts, people = Counter(), defaultdict(set)
    for r in rows:
        if "exception" in r and where(r):
            group = (r["exception"]["type"], r["path"])
            counts[group] += 1
            if r.get("consumer"):
                people[group].add(r["consumer"]["id"])
    return {g: (n, len(people[g])) for g, n in counts.items()}


def answered_groups(stack, key, period="7d"):
    answer = stack.client.get(f"/api/errors?period={period}", headers=headers(key))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def compare(stack, key, rows):
    got = answered_groups(stack, key)
    by_route = {}
    for g in got:
        path = {"GET /v1/users/{id}": "/v1/users/1", "GET /v1/orders": "/v1/orders",
                "GET /v2/items/{id}": "/v2/items/7"}[g["route"]]  # fmt: skip
        by_route[(g["type"], path)] = (g["count"], g["consumers"])
    assert by_route == expected_groups(rows)


@pytest.mark.parametrize("exported", [False, True], ids=["hot", "in-files"])
def test_error_groups_and_consumers_are_exact(stack, exported):
    key = stack.new_key()
    rows = traffic()
    for start in range(0, len(rows), 100):
        assert post_batch(stack.client, key, rows[start : start + 100]).status_code == 201
    stack.process_jobs()
    if exported:
        flush()
    compare(stack, key, rows)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    # Under a click of the dashboard (one endpoint), the counts follow.
    clicked = Filters(period="7d").with_click("endpoint", "GET /v1/orders")
    found = error_stats.groups(key_id, clicked, window_for("7d")).table
    assert int(found["n"].sum()) == sum(
        n for (_k, path), (n, _c) in expected_groups(rows).items() if path == "/v1/orders"
    )
    # Consumers: requests, errors and p95 per consumer and per group.
    table = consumer_stats.table(key_id, Filters(period="7d"), window_for("7d"))
    for consumer in ("c1", "c2", "c3", "c4"):
        mine = [r for r in rows if (r.get("consumer") or {}).get("id") == consumer]
        line = table[table["name"] == consumer].iloc[0]
        assert line["requests"] == len(mine)
        assert line["errors"] == sum(r["status"] >= 400 for r in mine)
        assert line["display_name"] == consumer.upper()
    groups = consumer_stats.table(key_id, Filters(period="7d"), window_for("7d"), "consumer_group")
    gold = [r for r in rows if (r.get("consumer") or {}).get("group") == "gold"]
    assert groups[groups["name"] == "gold"].iloc[0]["requests"] == len(gold)
    answer = stack.client.get("/api/consumers?period=7d", headers=headers(key))
    requests = {
        c: sum((r.get("consumer") or {}).get("id") == c for r in rows)
        for c in ("c1", "c2", "c3", "c4")
    }
    assert {c["id"]: c["requests"] for c in answer.get_json()} == requests
    assert answer.headers["X-Total-Count"] == "4"
    # The busiest two only, p95 and top endpoints still theirs.
    busiest = sorted(requests, key=lambda c: (-requests[c], c))[:2]
    answer = stack.client.get("/api/consumers?period=7d&limit=2", headers=headers(key))
    assert [c["id"] for c in answer.get_json()] == busiest
    assert answer.headers["X-Total-Count"] == "4"
    line = table[table["name"] == busiest[0]].iloc[0]
    assert answer.get_json()[0]["p95"] == line["p95"]
    assert answer.get_json()[0]["top_endpoints"] == list(line["top_endpoints"])
    refused = stack.client.get("/api/consumers?limit=0", headers=headers(key))
    assert refused.status_code == 400 and "limit" in str(refused.get_json())


def test_a_group_has_its_occurrences_and_its_state_can_change(stack):
    key = stack.new_key()
    stack.client.post("/api/masks", headers=headers(key),
                      json={"kind": "field", "pattern": "email"})  # fmt: skip
    rows = [
        row(status=500, exception=occurrence("app.errors.NotFound", n),
            request={"headers": [["x-trace", "t1"]], "body": '{"email": "a@b.c", "n": 1}',
                     "body_type": "application/json"})
        for n in range(3)
    ]  # fmt: skip
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    (group,) = answered_groups(stack, key)
    assert group["count"] == 3 and group["message"] == "thing {n} failed"
    one = stack.client.get(f"/api/errors/{group['id']}", headers=headers(key)).get_json()
    assert len(one["occurrences"]) == 3
    first = one["occurrences"][0]
    assert first["stack"][0] == {"file": "app/views.py", "line": 10, "function": "view",
                                 "in_app": True}  # fmt: skip
    # The key's own pattern masked the field the defaults would have kept.
    assert json.loads(first["request"]["body"])["email"] == "[masked]"
    changed = stack.client.patch(
        f"/api/errors/{group['id']}", headers=headers(key), json={"state": "ignored"}
    )
    assert changed.status_code == 200 and changed.get_json()["state"] == "ignored"
    bad = stack.client.patch(
        f"/api/errors/{group['id']}", headers=headers(key), json={"state": "gone"}
    )
    assert bad.status_code == 400 and "state" in bad.get_json()["message"]
    missing = stack.client.get(f"/api/errors/{group['id'] + 999}", headers=headers(key))
    assert missing.status_code == 404
    other = stack.new_key()
    assert stack.client.get(f"/api/errors/{group['id']}", headers=headers(other)).status_code == 404


def test_masks_lifecycle(stack):
    key = stack.new_key()
    made = stack.client.post(
        "/api/masks", headers=headers(key), json={"kind": "header", "pattern": "x-tenant"}
    )
    assert made.status_code == 201
    assert [m["pattern"] for m in stack.client.get("/api/masks", headers=headers(key)).json] == [
        "x-tenant"
    ]
    refused = stack.client.post(
        "/api/masks", headers=headers(key), json={"kind": "header", "pattern": "(unclosed"}
    )
    assert refused.status_code == 400 and "regular expression" in refused.get_json()["message"]
    gone = stack.client.delete(f"/api/masks/{made.get_json()['id']}", headers=headers(key))
    assert gone.status_code == 204
    assert stack.client.get("/api/masks", headers=headers(key)).json == []
    assert stack.client.get("/api/masks").status_code == 401
