"""Our client against our real server, on the embedded (SQLite) and PostgreSQL backends:
FastAPI apps under real uvicorn processes with `Config.app_version`. Two processes
starting with 1.0 record one deploy; a restart with 1.1 a second, listed by /api/deploys
and on the Releases page; the clock skew of their batches and the records one dropped
from a full buffer show in /api/ingest/health. And every framework's app in its own real
server (gunicorn with two workers, Sanic with two, ...) records one deploy of its version.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from werkzeug.serving import make_server

from bench.services import free_port
from tests.dash_app.test_keys_shares import callback
from tests.dash_app.test_session import sign_in

from .test_frameworks import SERVERS, Server, start, stop, uvicorn, wait_until_serving

FASTAPI = Server("FastAPI", uvicorn("tests.middleware.apps.fastapi_app:app"))
E2E_SERVERS = [
    "flask-gunicorn-sync", "django-gunicorn-sync", "tornado", "aiohttp", "sanic",
    "falcon-gunicorn", "starlette-uvicorn", "litestar-uvicorn",
]  # fmt: skip


@pytest.fixture
def served(stack):
    """The server of either backend over real HTTP."""
    http = make_server("127.0.0.1", 0, stack.app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield stack, f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()


def get(server_url: str, path: str, key: str):
    answer = httpx.get(f"{server_url}{path}", headers={"X-AUTH-TOKEN": key}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for(what, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("timed out")


def run_app(server: Server, server_url: str, key: str, **env: str):
    port = free_port()
    process = start(server, port, COLLECTOR_URL=server_url, API_KEY=key, **env)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, process)
    return process, url


def test_deploys_skew_and_drops_from_real_fastapi_processes(served):
    stack, server_url = served
    key = stack.new_key()
    running = []
    try:
        for _ in range(2):  # two processes of one release
            running.append(run_app(FASTAPI, server_url, key, APP_VERSION="1.0",
                                   FLUSH_INTERVAL="0.3"))  # fmt: skip
        for _, url in running:
            for number in range(3):
                assert httpx.get(f"{url}/items/{number}").status_code == 200
        # Each process told of its deploy before its first batch: once both processes'
        # batches are in (the probe and three requests each), both deploys were reported.
        wait_for(lambda: get(server_url, "/api/ingest/health", key)["days"][-1]["accepted"] >= 8)
    finally:
        outputs = [stop(process, FASTAPI.stop) for process, _ in running]
    listed = get(server_url, "/api/deploys", key)
    assert [(d["version"], d["hostname"]) for d in listed] == [("1.0", "127.0.0.1")], outputs

    # A restart with 1.1, whose buffer holds 3 records: of 5 requests, 2 are dropped.
    process, url = run_app(FASTAPI, server_url, key, APP_VERSION="1.1", MAX_BUFFER="3")
    try:
        for number in range(4):  # with the readiness probe, 5
            assert httpx.get(f"{url}/items/{number}").status_code == 200
    finally:
        output = stop(process, FASTAPI.stop)  # the shutdown flush: the deploy, then the batch
    listed = get(server_url, "/api/deploys", key)
    assert [(d["version"], d["hostname"]) for d in listed] == [
        ("1.1", "127.0.0.1"), ("1.0", "127.0.0.1"),
    ], output  # fmt: skip
    assert "FastAPI" in listed[0]["description"]

    sign_in(stack.client, key)  # the Releases page lists both, the newest picked
    page = callback(stack.client, "rel-deploy.options", {"url.pathname": "/dashboard/releases"})
    options = page["rel-deploy"]["options"]
    assert [o["value"] for o in options] == [d["id"] for d in listed]
    assert "1.1" in options[0]["label"] and page["rel-deploy"]["value"] == listed[0]["id"]

    health = get(server_url, "/api/ingest/health", key)
    (client,) = health["clients"]
    assert client["framework"] == "FastAPI"
    assert client["client"].startswith("api-analytics-middleware/")
    skew = client["skew"]
    assert skew["batches"] >= 3 and abs(skew["median_s"]) < 2 and abs(skew["largest_s"]) < 5
    (drops,) = health["client_drops"]
    assert (drops["buffer_full"], drops["refused"], drops["failed"]) == (2, 0, 0)
    assert drops["framework"] == "FastAPI"
    (warning,) = health["warnings"]
    assert "dropped 2 records because its buffer was full" in warning


def test_every_framework_reports_one_deploy_from_its_real_server(served):
    stack, server_url = served
    running = {}
    try:
        for name in E2E_SERVERS:
            key = stack.new_key()
            running[name] = (*run_app(SERVERS[name], server_url, key, APP_VERSION=f"{name}-7",
                                      FLUSH_INTERVAL="0.3"), key)  # fmt: skip
        for _name, (_, url, _) in running.items():
            for number in range(6):  # on new connections: spread over the workers
                httpx.get(f"{url}/items/{number}", timeout=10)

        def all_in():
            return all(get(server_url, "/api/deploys", key) for _, _, key in running.values())

        wait_for(all_in)
        time.sleep(1.0)  # the other workers' reports, had they recorded more
    finally:
        outputs = {name: stop(p, SERVERS[name].stop) for name, (p, _, _) in running.items()}
    for name, (_, _, key) in running.items():
        listed = get(server_url, "/api/deploys", key)
        assert [(d["version"], d["hostname"]) for d in listed] == [
            (f"{name}-7", "127.0.0.1")
        ], outputs[name][-2000:]  # fmt: skip
        assert SERVERS[name].framework in listed[0]["description"]
