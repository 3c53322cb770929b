"""What our client reports of itself with a batch (X-Client-Time, X-Client-Drops), shown
by GET /api/ingest/health on both backends: the clock skew of recent batches per client
with a warning past a few seconds, the drops per client process (the largest counters
win, whatever order batches come in), and a batch without the headers (the published
clients') or with unreadable ones accepted and counted as before."""

from __future__ import annotations

import time

import pytest

from server.ingest_health.reports import parse_drops, read_report
from tests.helpers import payload, row

OURS = "api-analytics-middleware/1.2.0"


def send(stack, key, headers=None, rows=None, framework="FastAPI", agent=OURS):
    response = stack.client.post(
        "/api/log-request",
        json=payload(key, rows or [row()], 0, framework),
        headers={"User-Agent": agent, **(headers or {})},
    )
    assert response.status_code == 201, response.get_json()
    return response


def health(stack, key) -> dict:
    response = stack.client.get("/api/ingest/health", headers={"X-AUTH-TOKEN": key})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def client_of(found: dict, framework: str) -> dict:
    (client,) = [c for c in found["clients"] if c["framework"] == framework]
    return client


def test_clock_skew_per_client_with_a_warning_past_a_few_seconds(stack):
    key = stack.new_key()
    # A client whose clock runs 30 s behind ours: it says it sent 30 s before we got it.
    for _ in range(5):
        send(stack, key, {"X-Client-Time": f"{time.time() - 30:.3f}"}, framework="Flask")
    # One whose clock is right.
    for _ in range(3):
        send(stack, key, {"X-Client-Time": f"{time.time():.3f}"}, framework="Django")
    # The published client sends no clock: accepted, and no skew shown for it.
    send(stack, key, framework="FastAPI", agent="python-requests/2.31")
    found = health(stack, key)
    behind = client_of(found, "Flask")["skew"]
    assert behind["batches"] == 5
    assert 30 <= behind["median_s"] < 32 and 30 <= behind["largest_s"] < 32
    right = client_of(found, "Django")["skew"]
    assert right["batches"] == 3 and 0 <= right["median_s"] < 2
    assert client_of(found, "FastAPI")["skew"] is None
    (warning,) = [w for w in found["warnings"] if "clock" in w]
    assert "Flask · api-analytics-middleware/1.2.0" in warning
    assert "s behind this server's" in warning and "rows are dated about 3" in warning
    assert found["days"][-1]["accepted"] == 9


def test_a_clock_ahead_and_only_recent_batches_count(stack):
    key = stack.new_key()
    for _ in range(3):
        send(stack, key, {"X-Client-Time": f"{time.time() + 3600:.3f}"})
    for _ in range(50):  # the newest 50 are kept: the hour-ahead batches fall out
        send(stack, key, {"X-Client-Time": f"{time.time() + 10:.3f}"})
    skew = client_of(health(stack, key), "FastAPI")["skew"]
    assert skew["batches"] == 50
    assert -10.5 < skew["median_s"] <= -8 and -10.5 < skew["largest_s"] <= -8
    (warning,) = health(stack, key)["warnings"]
    assert "ahead of this server's" in warning and "dated about" in warning and "late" in warning


def test_drops_per_client_process(stack):
    key = stack.new_key()
    a, b = "a" * 32, "b" * 32
    drops = "instance={}; buffer_full={}; refused={}; failed={}"
    send(stack, key, {"X-Client-Drops": drops.format(a, 0, 0, 2)})
    found = health(stack, key)
    (only,) = found["client_drops"]
    assert (only["instance"], only["buffer_full"], only["refused"], only["failed"]) == (a, 0, 0, 2)
    assert found["warnings"] == []  # retried sends lost nothing
    first_change = only["changed_at"]

    send(stack, key, {"X-Client-Drops": drops.format(a, 120, 5, 7)})
    time.sleep(0.01)
    # An older batch of the same process arriving late changes nothing.
    send(stack, key, {"X-Client-Drops": drops.format(a, 3, 0, 2)})
    send(stack, key, {"X-Client-Drops": drops.format(b, 9, 0, 0)}, framework="Flask")
    found = health(stack, key)
    by_instance = {d["instance"]: d for d in found["client_drops"]}
    got = by_instance[a]
    assert (got["buffer_full"], got["refused"], got["failed"]) == (120, 5, 7)
    assert got["changed_at"] > first_change and got["last_at"] >= got["changed_at"]
    assert got["framework"] == "FastAPI" and got["client"] == OURS
    assert (by_instance[b]["buffer_full"], by_instance[b]["framework"]) == (9, "Flask")
    warnings = " ".join(found["warnings"])
    assert "FastAPI · api-analytics-middleware/1.2.0 (process aaaaaaaa) dropped 120 records" in (
        warnings
    )
    assert "5 records of batches this server refused" in warnings
    assert "Flask" in warnings and "9 records because its buffer was full" in warnings
    assert health(stack, stack.new_key())["client_drops"] == []  # each key its own


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Client-Time": "soon"},
        {"X-Client-Time": "nan"},
        {"X-Client-Drops": "buffer_full=3"},  # no instance
        {"X-Client-Drops": "instance=zz; buffer_full=3"},
        {"X-Client-Drops": f"instance={'c' * 32}; buffer_full=-3"},
    ],
)
def test_an_unreadable_report_is_ignored_and_the_batch_stored(sqlite_app, headers):
    key = sqlite_app.new_key()
    send(sqlite_app, key, headers)
    found = health(sqlite_app, key)
    assert found["days"][-1]["accepted"] == 1
    assert found["clients"][0]["skew"] is None and found["client_drops"] == []


def test_reading_the_headers():
    assert read_report({}, 100.0) is None
    assert read_report({"X-Client-Time": "98.5"}, 100.0).skew_ms == 1500
    found = parse_drops(f"instance={'AB' * 8}; buffer_full=1;refused=2 ; failed=3")
    assert found == ("ab" * 8, (1, 2, 3))
    assert parse_drops(f"instance={'ab' * 8}") == ("ab" * 8, (0, 0, 0))
    assert parse_drops(f"instance={'ab' * 8}; failed=1e3") is None
