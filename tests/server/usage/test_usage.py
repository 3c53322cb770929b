"""GET /api/usage: a closed month's counts per consumer, route and status class exact
against independent counts of what was sent (rows in Parquet and hot), identical on every
ask, rows sent later for it listed as late and never added; the current month live."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from server.lake.export import flush
from tests.helpers import post_batch, row


def auth(key):
    return {"X-AUTH-TOKEN": key}


def month_before(first: datetime) -> datetime:
    return (first - timedelta(days=1)).replace(day=1)


def closed_month(now: datetime) -> tuple[datetime, datetime, str]:
    """The month before last: closed more than an hour ago whenever the test runs."""
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = month_before(this_month)
    start = month_before(end)
    return start, end, start.strftime("%Y-%m")


def generated(start: datetime, until: datetime, n: int, seed: int) -> list[dict]:
    """Rows from three days before `start` to `until`."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        r = row(
            method=rng.choice(["GET", "POST"]),
            path=rng.choice(["/v1/items/3", "/v1/orders", "/health"]),
            status=rng.choice([200, 200, 200, 201, 404, 500]),
            created_at=(start + (until - start) * rng.random() - timedelta(days=3)).isoformat(),
        )
        consumer = rng.choice([None, "acme", "globex", "initech"])
        if consumer:
            r["consumer"] = {"id": consumer, "name": consumer.title(), "group": "paid"}
        rows.append(r)
    return rows


def expected(rows, start, end, group_by) -> dict:
    counts, errors = Counter(), Counter()
    for r in rows:
        if not start <= datetime.fromisoformat(r["created_at"]) < end:
            continue
        if group_by == "consumer":
            name = r.get("consumer", {}).get("id")
        elif group_by == "route":
            name = f"{r['method']} " + r["path"].replace("/3", "/{id}")
        else:
            name = f"{r['status'] // 100}xx"
        counts[name] += 1
        errors[name] += r["status"] >= 500
    return {name: (n, errors[name]) for name, n in counts.items()}


def ask(stack, key, **query):
    response = stack.client.get("/api/usage", query_string=query, headers=auth(key))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_a_closed_months_usage_is_exact_final_and_the_same_every_time(stack):
    now = datetime.now(UTC)
    start, end, month = closed_month(now)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    key = stack.new_key()
    rows = generated(start, now, 2000, 3)
    rows = [r for r in rows if datetime.fromisoformat(r["created_at"]) < now]
    assert post_batch(stack.client, key, rows[:1300]).status_code == 201
    stack.process_jobs()
    flush()
    assert post_batch(stack.client, key, rows[1300:]).status_code == 201
    stack.process_jobs()

    for group_by in ("consumer", "route", "status_class"):
        first = ask(stack, key, month=month, group_by=group_by).get_json()
        want = expected(rows, start, end, group_by)
        assert sum(n for n, _ in want.values()) > 300  # not an empty case
        assert first["final"] is True and first["frozen_at"]
        assert {r["name"]: (r["requests"], r["errors"]) for r in first["rows"]} == want
        assert first["requests"] == sum(n for n, _ in want.values())
        assert [r["requests"] for r in first["rows"]] == sorted(
            (r["requests"] for r in first["rows"]), reverse=True)  # fmt: skip
        assert first["late"] == {"requests": 0, "errors": 0, "rows": []}
        for _ in range(2):
            assert ask(stack, key, month=month, group_by=group_by).get_json() == first

    # Rows for the closed month sent now: late, apart, never added.
    late = [row(created_at=(start + timedelta(days=3)).isoformat(), status=500)] * 3
    late[0] = {**late[0], "consumer": {"id": "acme", "name": "Acme", "group": "paid"}}
    assert post_batch(stack.client, key, late).status_code == 201
    stack.process_jobs()
    again = ask(stack, key, month=month, group_by="consumer").get_json()
    assert again["rows"] == first_by(stack, key, month)["rows"]
    assert again["late"] == {"requests": 3, "errors": 3, "rows": [
        {"name": None, "requests": 2, "errors": 2},
        {"name": "acme", "requests": 1, "errors": 1}]}  # fmt: skip

    text = ask(stack, key, month=month, group_by="consumer", format="csv")
    assert text.mimetype == "text/csv" and text.headers["X-Usage-Final"] == "true"
    lines = list(csv.reader(io.StringIO(text.get_data(as_text=True))))
    assert lines[0] == ["consumer", "requests", "errors", "late"]
    assert sum(int(r[1]) for r in lines[1:] if r[3] == "false") == again["requests"]
    assert ["acme", "1", "1", "true"] in lines

    live = ask(stack, key, month=now.strftime("%Y-%m"), group_by="status_class").get_json()
    assert live["final"] is False and live["frozen_at"] is None
    live_rows = expected(rows, this_month, now + timedelta(days=1), "status_class")
    assert {r["name"]: (r["requests"], r["errors"]) for r in live["rows"]} == live_rows


def first_by(stack, key, month):
    return ask(stack, key, month=month, group_by="consumer").get_json()


def test_bad_usage_questions_are_refused(sqlite_app):
    key = sqlite_app.new_key()
    next_year = f"{datetime.now(UTC).year + 1}-01"
    for query in ({"month": "2026-13"}, {"month": "2026-1"}, {}, {"month": next_year},
                  {"month": "2026-11", "group_by": "user"},
                  {"month": "2026-11", "format": "xml"}):  # fmt: skip
        response = sqlite_app.client.get("/api/usage", query_string=query, headers=auth(key))
        assert response.status_code == 400, query
    assert sqlite_app.client.get("/api/usage?month=2026-11").status_code == 401


@pytest.mark.parametrize("month", ["2026-02", "2025-12"])
def test_month_spans(month):
    from server.usage.store import month_span

    start, end = month_span(month)
    assert start.strftime("%Y-%m") == month and end > start and end.day == 1
