"""How records reach the server: timer and batch flushes, retries, refusals, shutdown."""

from __future__ import annotations

import logging
import time

import httpx

from .support import demo_app, json_answer


def get_items(running, numbers) -> None:
    with httpx.Client(base_url=running.url) as client:
        for number in numbers:
            assert client.get(f"/items/{number}").status_code == 200


def item_numbers(rows) -> list[int]:
    return sorted(int(row["path"].rsplit("/", 1)[1]) for row in rows)


def messages(caplog, level=logging.WARNING) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("api_analytics") and r.levelno >= level
    ]


def settle(seconds: float = 0.5) -> None:
    """Give the flusher several intervals (0.1 s in these tests) to do something wrong."""
    time.sleep(seconds)


def test_timer_flush_sends_without_further_traffic(collector, run_app):
    running = run_app(demo_app(collector.url, flush_interval=0.2))
    get_items(running, range(3))
    rows = collector.wait_for_rows(3)  # no more requests: only the timer can send these
    assert item_numbers(rows) == [0, 1, 2]
    assert running.thread.is_alive()


def test_a_full_batch_is_sent_before_the_interval(collector, run_app):
    running = run_app(demo_app(collector.url, flush_interval=60, max_batch=5))
    get_items(running, range(7))
    assert item_numbers(collector.wait_for_rows(5)) == [0, 1, 2, 3, 4]
    settle()
    assert len(collector.rows()) == 5  # the other two wait for the interval...
    running.stop()
    assert item_numbers(collector.rows()) == list(range(7))  # ...or the shutdown flush


def test_outage_then_recovery_delivers_every_record_exactly_once(collector, run_app, caplog):
    running = run_app(demo_app(collector.url, max_batch=8))
    get_items(running, range(10))
    collector.wait_for_rows(10)

    collector.down()  # connections refused from now on
    get_items(running, range(10, 40))
    settle(1.5)  # many retry rounds (backoff 0.05 s to 0.2 s) against a closed port
    assert len(collector.rows()) == 10
    collector.up()  # same port again
    get_items(running, range(40, 50))

    collector.wait_for_rows(50)
    settle()
    assert item_numbers(collector.rows()) == list(range(50))  # nothing lost, nothing twice
    assert all(d.status == 201 for d in collector.deliveries)
    assert any("unavailable" in m for m in messages(caplog))
    assert running.thread.is_alive()


def test_a_30_second_outage_loses_nothing_and_sends_nothing_twice(collector, run_app, caplog):
    # The case, in real time: the server is gone for 30 s while traffic goes on.
    # Backoff as shipped (1 s doubling with jitter), capped at 4 s to keep the test short.
    config = {"max_batch": 8, "retry_backoff": 1.0, "retry_backoff_max": 4.0}
    running = run_app(demo_app(collector.url, **config))
    get_items(running, range(5))
    collector.wait_for_rows(5)

    collector.down()
    back_at = time.monotonic() + 30
    sent = 5
    while time.monotonic() < back_at:
        get_items(running, range(sent, sent + 7))
        sent += 7
        time.sleep(min(2.5, max(0.0, back_at - time.monotonic())))
    assert len(collector.rows()) == 5
    collector.up()
    get_items(running, range(sent, sent + 3))
    sent += 3

    collector.wait_for_rows(sent, timeout=15)
    settle()
    assert item_numbers(collector.rows()) == list(range(sent))  # nothing lost, nothing twice
    assert sum("unavailable" in m for m in messages(caplog)) == 1  # one warning, not one a try


def test_429_retry_after_is_respected(collector, run_app):
    collector.answers.append(json_answer(429, {"message": "slow down"}, {"Retry-After": "1"}))
    running = run_app(demo_app(collector.url))
    get_items(running, [1])

    refused, accepted = collector.wait_for_deliveries(2, timeout=10)
    assert (refused.status, accepted.status) == (429, 201)
    # Our own backoff would have retried after 0.05-0.1 s; the server asked for 1 s.
    assert accepted.at - refused.at >= 0.95
    assert refused.headers["Idempotency-Key"] == accepted.headers["Idempotency-Key"]
    settle()
    assert item_numbers(collector.rows()) == [1]


def test_500s_are_retried_with_the_same_batch(collector, run_app):
    for _ in range(2):
        collector.answers.append(json_answer(500, {"message": "database down"}))
    running = run_app(demo_app(collector.url))
    get_items(running, [1, 2])

    collector.wait_for_rows(2)
    settle()
    statuses = [d.status for d in collector.deliveries]
    assert statuses == [500, 500, 201]
    assert len({d.headers["Idempotency-Key"] for d in collector.deliveries}) == 1
    assert item_numbers(collector.rows()) == [1, 2]


def test_400_batch_is_dropped_and_logged_once(collector, run_app, caplog):
    collector.answers.append(json_answer(400, {"message": "requests must be a list"}))
    running = run_app(demo_app(collector.url))
    get_items(running, [1])
    collector.wait_for_deliveries(1)
    settle()
    assert [d.status for d in collector.deliveries] == [400]  # not retried

    get_items(running, [2])  # later batches still go out
    assert item_numbers(collector.wait_for_rows(1)) == [2]
    errors = messages(caplog, logging.ERROR)
    assert len(errors) == 1
    assert "400" in errors[0] and "requests must be a list" in errors[0]
    assert "test-key" not in caplog.text


def test_413_splits_the_batch(collector, run_app):
    def refuse_more_than_two(payload):
        if len(payload["requests"]) > 2:
            return json_answer(413, {"message": "too large"})
        return json_answer(201, {"accepted": len(payload["requests"]), "rejected": []})

    collector.answers.extend([refuse_more_than_two] * 7)  # 8 -> 4 + 4 -> 2 + 2 + 2 + 2
    running = run_app(demo_app(collector.url, flush_interval=60, max_batch=8))
    get_items(running, range(8))
    collector.wait_for_rows(8)
    settle()
    assert item_numbers(collector.rows()) == list(range(8))
    assert [len(d.rows) for d in collector.deliveries] == [8, 4, 2, 2, 4, 2, 2]


def test_rows_the_server_rejects_are_counted_not_retried(collector, run_app, caplog):
    collector.answers.append(
        json_answer(201, {"accepted": 1, "rejected": [{"index": 1, "error": "bad status"}]})
    )
    running = run_app(demo_app(collector.url, flush_interval=60, max_batch=2))
    get_items(running, [1, 2])
    collector.wait_for_deliveries(1)
    settle()
    assert len(collector.deliveries) == 1
    assert any("rejected 1 of 2 rows" in m for m in messages(caplog))


def test_buffer_overflow_drops_the_oldest_and_counts_them(collector, run_app, caplog):
    running = run_app(demo_app(collector.url, flush_interval=60, max_batch=100, max_buffer=5))
    get_items(running, range(12))
    running.stop()  # nothing was due before: the shutdown flush sends what is left

    assert item_numbers(collector.rows()) == [7, 8, 9, 10, 11]
    drops = [m for m in messages(caplog) if "buffer full" in m]
    assert len(drops) == 1 and "dropped the 7 oldest records" in drops[0]


def test_shutdown_flushes_what_is_buffered(collector, run_app):
    running = run_app(demo_app(collector.url, flush_interval=60))
    get_items(running, range(3))
    assert collector.deliveries == []
    running.stop()  # lifespan shutdown: the flush completes before uvicorn exits
    assert item_numbers(collector.rows()) == [0, 1, 2]


def test_shutdown_wait_is_bounded_when_the_server_is_down(collector, run_app, caplog):
    collector.down()
    running = run_app(demo_app(collector.url, flush_interval=60, shutdown_timeout=0.5))
    get_items(running, range(2))
    running.stop()  # would hang (and fail) if the final flush waited for the server
    assert any("2 records not delivered" in m for m in messages(caplog))
    collector.up()  # the flusher keeps the records and goes on trying
    assert item_numbers(collector.wait_for_rows(2)) == [0, 1]


def test_server_url_with_a_path_prefix(collector, run_app):
    running = run_app(demo_app(collector.url + "/analytics/"))
    get_items(running, [1])
    collector.wait_for_rows(1)
    assert collector.deliveries[0].path == "/analytics/api/log-request"
