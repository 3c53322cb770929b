"""What our client tells the server of itself, against a local collector: its clock with
every batch (X-Client-Time), its drop counters once one is above zero (X-Client-Drops),
and `Config.app_version` as a deploy (POST /api/deploys, the key in X-AUTH-TOKEN) at its
first send and whenever the value changes in the running process. The ingest body stays
what the published clients send."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from .support import demo_app, fast_config, json_answer

DEPLOYS = "/api/deploys"


def get_items(running, numbers, host=None) -> None:
    headers = {"Host": host} if host else {}
    with httpx.Client(base_url=running.url) as client:
        for number in numbers:
            assert client.get(f"/items/{number}", headers=headers).status_code == 200


def deploys(collector) -> list:
    return [d for d in collector.deliveries if d.path == DEPLOYS]


def batches(collector) -> list:
    return [d for d in collector.deliveries if d.path != DEPLOYS]


def drops_of(delivery) -> dict | None:
    value = delivery.headers.get("X-Client-Drops")
    if value is None:
        return None
    return dict(part.strip().split("=") for part in value.split(";"))


def test_every_batch_carries_the_clients_clock_and_the_body_is_unchanged(collector, run_app):
    running = run_app(demo_app(collector.url, flush_interval=0.1))
    get_items(running, range(2))
    (delivery,) = collector.wait_for_deliveries(1)
    sent = float(delivery.headers["X-Client-Time"])
    assert abs(time.time() - sent) < 5
    assert "X-Client-Drops" not in delivery.headers  # nothing dropped: nothing sent
    assert set(delivery.payload) == {"api_key", "framework", "privacy_level", "requests"}
    assert deploys(collector) == []  # no app_version: no deploy


def test_drop_counters_go_with_the_batches_after_a_drop(collector, run_app):
    # 503 twice (retried: two failed sends), then one refused batch (its 1 record lost).
    collector.answers.extend([json_answer(503, {"message": "busy"})] * 2)
    collector.answers.append(json_answer(201, {"accepted": 1, "rejected": []}))
    collector.answers.append(json_answer(400, {"message": "bad batch"}))
    running = run_app(demo_app(collector.url, flush_interval=60, max_batch=1, max_buffer=3))
    get_items(running, [0])
    collector.wait_for_deliveries(3)
    first, second, third = collector.deliveries
    assert drops_of(first) is None
    counts = drops_of(second)
    assert (counts["buffer_full"], counts["refused"], counts["failed"]) == ("0", "0", "1")
    assert drops_of(third)["failed"] == "2"
    assert len({d.headers["Idempotency-Key"] for d in (first, second, third)}) == 1
    get_items(running, [1])  # refused with 400
    collector.wait_for_deliveries(4)
    get_items(running, [2])
    collector.wait_for_rows(2)
    counts = drops_of(collector.deliveries[-1])
    assert (counts["refused"], counts["failed"]) == ("1", "2")
    assert len(counts["instance"]) == 32
    assert {drops_of(d)["instance"] for d in collector.deliveries[1:]} == {counts["instance"]}


def test_records_dropped_from_a_full_buffer_are_reported(collector, run_app):
    running = run_app(demo_app(collector.url, flush_interval=60, max_batch=100, max_buffer=5))
    get_items(running, range(12))
    running.stop()  # the shutdown flush sends the newest 5
    (delivery,) = collector.deliveries
    assert len(delivery.rows) == 5 and drops_of(delivery)["buffer_full"] == "7"


def test_app_version_is_reported_as_a_deploy_at_the_first_send_and_on_change(
    collector, run_app, caplog
):
    caplog.set_level(logging.DEBUG, "api_analytics")
    config = fast_config(collector.url, flush_interval=0.1, app_version="1.0")
    running = run_app(demo_app(collector.url, "the-key", config=config))
    started = time.time()
    get_items(running, [0], host="api.example.com:8443")
    collector.wait_for_rows(1)
    (deploy,) = deploys(collector)
    assert collector.deliveries.index(deploy) == 0  # before the batch
    assert deploy.headers["X-AUTH-TOKEN"] == "the-key" and "the-key" not in deploy.path
    body = deploy.payload
    assert (body["version"], body["hostname"], body["only_if_changed"]) == (
        "1.0", "api.example.com", True,
    )  # fmt: skip
    assert "FastAPI" in body["description"]
    assert abs(time.mktime(time.strptime(body["time"][:19], "%Y-%m-%dT%H:%M:%S"))
               - time.timezone - started) < 10  # fmt: skip

    get_items(running, [1], host="api.example.com:8443")
    collector.wait_for_rows(2)
    assert len(deploys(collector)) == 1  # told once for the version and host
    get_items(running, [2], host="admin.example.com")  # a host it had not served
    collector.wait_for_rows(3)
    assert [d.payload["hostname"] for d in deploys(collector)] == [
        "api.example.com", "admin.example.com",
    ]  # fmt: skip

    config.app_version = "1.1"  # a change in the running process
    get_items(running, [3], host="api.example.com:8443")
    collector.wait_for_rows(4)
    deadline = time.monotonic() + 5
    while len(deploys(collector)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    changed = [d.payload for d in deploys(collector)[2:]]
    assert sorted((d["version"], d["hostname"]) for d in changed) == [
        ("1.1", "admin.example.com"), ("1.1", "api.example.com"),
    ]  # fmt: skip
    assert "the-key" not in caplog.text


def test_a_deploy_the_server_will_not_take_is_not_retried_and_data_still_flows(
    collector, run_app, caplog
):
    collector.answers.append(json_answer(404, {"message": "Not Found"}))  # an older server
    running = run_app(demo_app(collector.url, flush_interval=0.1, app_version="1.0"))
    get_items(running, [0])
    collector.wait_for_rows(1)
    get_items(running, [1])
    collector.wait_for_rows(2)
    assert [d.status for d in deploys(collector)] == [404]
    warned = [r.getMessage() for r in caplog.records if "did not record the deploy" in
              r.getMessage()]  # fmt: skip
    assert len(warned) == 1 and "404" in warned[0]


def test_a_deploy_is_retried_while_the_server_fails(collector, run_app):
    collector.answers.append(json_answer(503, {"message": "busy"}))  # the deploy's first try
    running = run_app(demo_app(collector.url, flush_interval=0.1, app_version="2.0"))
    get_items(running, [0])
    collector.wait_for_rows(1)  # the batch does not wait for the deploy
    deadline = time.monotonic() + 10
    while len(deploys(collector)) < 2 and time.monotonic() < deadline:
        get_items(running, [1])
        time.sleep(0.2)
    assert [d.status for d in deploys(collector)] == [503, 201]


@pytest.mark.parametrize(
    "module",
    ["fastapi", "starlette", "litestar", "flask", "django", "tornado", "aiohttp", "sanic",
     "falcon"],
)  # fmt: skip
def test_every_frameworks_config_has_app_version(module, caplog):
    import importlib

    from api_analytics.recorder import Adapter

    config_class = importlib.import_module(f"api_analytics.{module}").Config
    assert config_class().app_version is None
    adapter = Adapter(module, config_class)
    config = config_class()
    config.server_url = "http://127.0.0.1:9"
    config.app_version = " 3.4.5 "
    recorder = adapter.recorder("key-" + module, config)
    assert recorder.client._deploys.version == "3.4.5"
    for bad, problem in ((7, "non-empty string"), ("", "non-empty string"),
                         ("v" * 101, "at most 100"), ("1.0\x00b", "control")):  # fmt: skip
        config.app_version = bad
        assert adapter.recorder("key-" + module, config) is None
        assert problem in caplog.text


def test_deploy_body_is_json_with_an_iso_time():
    from api_analytics.deploys import Announcer

    announcer = Announcer("k", "Flask")

    class Config:
        app_version = "9.9"

    announcer.follow(Config())
    found = json.loads(announcer._body("api.example.com"))
    assert found["time"].endswith("+00:00") and len(found["time"]) == 29
