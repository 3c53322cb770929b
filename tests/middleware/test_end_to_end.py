"""Our middleware in a real FastAPI app under uvicorn, sending to our real server.

The server is the Flask app on PostgreSQL behind a real HTTP server, with a real
`python -m worker` on a private Redis. Nothing but the timer makes the middleware send.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from werkzeug.serving import make_server

from bench.services import free_port
from tests.conftest import ROOT

from .support import serve

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def live_server(pg_app):
    """pg_app served over real HTTP, with a real RQ worker process beside it."""
    http = make_server("127.0.0.1", 0, pg_app.app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    env = {
        **os.environ,
        "DATABASE_URL": pg_app.config.DATABASE_URL,
        "REDIS_URL": pg_app.config.REDIS_URL,
        "GEOIP_DB": pg_app.config.GEOIP_DB,
        "DATA_DIR": pg_app.config.DATA_DIR,
        "LAKE_URL": pg_app.config.LAKE_URL,
    }
    worker = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env)
    try:
        yield pg_app, f"http://127.0.0.1:{http.server_port}"
    finally:
        worker.terminate()
        worker.wait(20)
        http.shutdown()


def seed_app(server_url: str, api_key: str, privacy_level: int):
    """The seed's code from PRODUCT.md, unchanged but for the values."""
    from api_analytics.fastapi import Analytics, Config
    from fastapi import FastAPI

    config = Config()
    config.privacy_level = privacy_level
    config.server_url = server_url
    config.get_ip_address = lambda request: request.headers.get(
        "X-Forwarded-For", request.client.host
    )
    config.get_user_agent = lambda request: request.headers.get("User-Agent", "")
    config.get_user_id = lambda request: request.headers.get("X-AUTH-TOKEN", "")

    app = FastAPI()
    app.add_middleware(Analytics, api_key=api_key, config=config)

    @app.get("/v1/things/{thing}")
    async def thing(thing: int):
        return {"thing": thing}

    return app


@pytest.mark.parametrize("privacy_level", [0, 2])
def test_rows_arrive_in_the_data_api_with_no_further_traffic(live_server, privacy_level):
    stack, server_url = live_server
    key = stack.new_key()
    app = seed_app(server_url, key, privacy_level)
    with serve(app) as running, httpx.Client(base_url=running.url) as client:
        for i in range(5):
            response = client.get(
                f"/v1/things/{i}",
                headers={
                    "X-Forwarded-For": "81.2.69.160",
                    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148",
                    "X-AUTH-TOKEN": "customer-7",
                },
            )
            assert response.status_code == 200
        client.get("/missing")

        # No more requests: only the middleware's timer can deliver these.
        deadline = time.monotonic() + 60
        rows = []
        while time.monotonic() < deadline and len(rows) < 6:
            time.sleep(0.5)
            rows = httpx.get(
                f"{server_url}/api/data", headers={"X-AUTH-TOKEN": key}, timeout=10
            ).json()
    assert len(rows) == 6
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {f"/v1/things/{i}" for i in range(5)} | {"/missing"}
    first = by_path["/v1/things/0"]
    assert (first["method"], first["status"], first["framework"]) == ("GET", 200, "FastAPI")
    assert by_path["/missing"]["status"] == 404
    assert first["user_id"] == "customer-7"
    assert first["device"] == "mobile"
    assert first["hostname"] == "127.0.0.1"
    assert first["created_at"].endswith("+00:00")
    assert first["response_time"] >= 0
    if privacy_level == 0:
        assert (first["ip_address"], first["location"]) == ("81.2.69.160", "GB")
    else:
        assert (first["ip_address"], first["location"]) == (None, None)


E2E_SERVERS = [
    "flask-gunicorn-sync", "django-gunicorn-gthread", "tornado", "aiohttp", "sanic",
    "falcon-gunicorn", "starlette-uvicorn", "litestar-uvicorn",
]  # fmt: skip


def test_every_framework_reaches_the_real_server(live_server):
    """Each framework's app in its own real server, all at once, each with its own key."""
    from .test_frameworks import SERVERS, start, stop, wait_until_serving

    stack, server_url = live_server
    agent = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148"
    )
    running = {}
    try:
        for name in E2E_SERVERS:
            port = free_port()
            key = stack.new_key()
            process = start(
                SERVERS[name], port, COLLECTOR_URL=server_url, API_KEY=key, MAPPERS="1",
                FLUSH_INTERVAL="0.5",
            )  # fmt: skip
            running[name] = (process, f"http://127.0.0.1:{port}", key)
        for name, (process, url, _) in running.items():
            wait_until_serving(url, process)
            for number in range(2):
                headers = {"User-Agent": agent, "X-User": f"{name}-user"}
                assert httpx.get(f"{url}/items/{number}", headers=headers).status_code == 200
            assert httpx.get(f"{url}/boom").status_code == 500

        # No more requests: only each middleware's timer can deliver these.
        found = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(found) < len(running):
            time.sleep(0.5)
            for name, (_, _, key) in running.items():
                rows = httpx.get(
                    f"{server_url}/api/data", headers={"X-AUTH-TOKEN": key}, timeout=10
                ).json()
                rows = [row for row in rows if row["path"] != "/ready-probe"]
                if len(rows) >= 3:
                    found[name] = rows
    finally:
        outputs = {
            name: stop(process, SERVERS[name].stop) for name, (process, _, _) in running.items()
        }
    assert set(found) == set(running), {n: outputs[n][-2000:] for n in set(running) - set(found)}
    for name, rows in found.items():
        by_path = {row["path"]: row for row in rows}
        assert set(by_path) == {"/items/0", "/items/1", "/boom"}, name
        first = by_path["/items/0"]
        assert (first["framework"], first["status"], first["method"]) == (
            SERVERS[name].framework, 200, "GET",
        ), name  # fmt: skip
        assert (first["user_id"], first["device"], first["hostname"]) == (
            f"{name}-user", "mobile", "127.0.0.1",
        ), name  # fmt: skip
        assert by_path["/boom"]["status"] == 500, name


# A secret of each kind, sent by every framework's app with capture on: found in no byte
# our server keeps (its database, the store's files) or writes to its logs.
E2E_SECRETS = {
    "authorization": "Bearer e2e-sekret-authorization",
    "cookie": "session=e2e-sekret-cookie",
    "password": "e2e-sekret-password",
    "token": "e2e-sekret-token",
}


def test_every_framework_sends_why_it_failed_and_for_whom_to_the_real_server(live_server, caplog):
    """Exceptions, validation errors and consumers from each framework's app in its own
    real server reach our real server: error groups and counts exact, the in-app frame
    the app's own; captured secrets are in no byte of its database, files or logs."""
    from .test_capture import APP_FILES, APPS, BOOM_FUNCTION
    from .test_frameworks import SERVERS, start, stop, wait_until_serving

    caplog.set_level(logging.DEBUG)
    stack, server_url = live_server
    running = {}
    try:
        for name in E2E_SERVERS:
            port = free_port()
            key = stack.new_key()
            process = start(
                SERVERS[name], port, COLLECTOR_URL=server_url, API_KEY=key, CONSUMER="header",
                CAPTURE="1", FLUSH_INTERVAL="0.5",
            )  # fmt: skip
            running[name] = (process, f"http://127.0.0.1:{port}", key)
        for name, (process, url, _) in running.items():
            wait_until_serving(url, process)
            with httpx.Client(base_url=url, timeout=10) as client:
                consumer = {"X-Consumer": f"cus-{name}"}
                assert client.get("/items/1", headers=consumer).status_code == 200
                assert client.post("/orders", json={"items": [{"price": "x"}]}).status_code in (
                    400, 422,
                )  # fmt: skip
                body = json.dumps({"password": E2E_SECRETS["password"], "n": 1}).encode()
                echoed = client.post(
                    "/echo", content=body, params={"token": E2E_SECRETS["token"]},
                    headers={"Content-Type": "application/json", **consumer,
                             "Authorization": E2E_SECRETS["authorization"],
                             "Cookie": E2E_SECRETS["cookie"]},
                )  # fmt: skip
                assert echoed.status_code == 200
            for _ in range(3):  # each on a connection of its own (see test_capture)
                assert httpx.get(f"{url}/boom", timeout=10).status_code == 500

        found = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(found) < len(running):
            time.sleep(0.5)
            for name, (_, _, key) in running.items():
                auth = {"X-AUTH-TOKEN": key}
                groups = httpx.get(f"{server_url}/api/errors", headers=auth, timeout=10).json()
                rows = httpx.get(f"{server_url}/api/data", headers=auth, timeout=10).json()
                if groups and groups[0]["count"] == 3 and len(rows) >= 6:
                    found[name] = (groups, rows)
    finally:
        outputs = {
            name: stop(process, SERVERS[name].stop) for name, (process, _, _) in running.items()
        }
    assert set(found) == set(running), {n: outputs[n][-2000:] for n in set(running) - set(found)}
    for name, (groups, rows) in found.items():
        app = name.split("-")[0]
        app = {"starlette": "starlette", "litestar": "litestar", "falcon": "falcon-wsgi"}.get(
            app, app
        )
        (group,) = groups
        assert (group["type"], group["message"], group["count"]) == ("RuntimeError", "boom", 3)
        function = BOOM_FUNCTION.get(app, "boom")
        assert group["frame"].startswith(f"{APPS}/{APP_FILES[app]}.py:"), (name, group)
        assert group["frame"].endswith(f" in {function}"), (name, group)
        assert group["route"] == "GET /boom" and group["state"] == "open"
        key = running[name][2]
        detail = httpx.get(
            f"{server_url}/api/errors/{group['id']}", headers={"X-AUTH-TOKEN": key}, timeout=10
        ).json()
        assert len(detail["occurrences"]) == 3
        in_app = [f for f in detail["occurrences"][0]["stack"] if f["in_app"]]
        assert in_app[-1]["function"] == function, name
        by_path = {row["path"]: row for row in rows}
        assert by_path["/items/1"]["consumer"] == f"cus-{name}"
        assert by_path["/items/1"]["consumer_group"] == "gold"
        assert by_path["/boom"]["consumer"] is None
        consumers = httpx.get(
            f"{server_url}/api/consumers", headers={"X-AUTH-TOKEN": key}, timeout=10
        ).json()
        assert [(c["id"], c["requests"], c["name"]) for c in consumers] == [
            (f"cus-{name}", 2, "Acme Inc")
        ]

    # The secrets: in no table (a dump of the database), no file of the store, no log.
    from server.lake.export import flush

    with stack.app.app_context():
        flush()
    dump = subprocess.run(
        ["pg_dump", "--data-only", stack.config.DATABASE_URL.replace("+psycopg", "")],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    files = b"".join(p.read_bytes() for p in Path(stack.config.LAKE_URL).rglob("*") if p.is_file())
    # Our server's logs (the test's own HTTP client logs the URLs it asked the apps for).
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logs = "\n".join(r.getMessage() for r in ours).encode() + "".join(outputs.values()).encode()
    assert b"e2e-sekret" not in logs
    for secret in E2E_SECRETS.values():
        assert secret.encode() not in dump, secret
        assert secret.encode() not in files, secret
    assert b"[masked]" in dump or b"[masked]" in files  # the captures themselves are there
