"""What the middleware records, and that the host app behaves exactly as without it."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_analytics.fastapi import Analytics, Config
from fastapi import FastAPI, Response

from .support import demo_app, fast_config, raw_get

ROW_FIELDS = {
    "hostname",
    "ip_address",
    "path",
    "user_agent",
    "method",
    "status",
    "response_time",
    "user_id",
    "created_at",
}


def analytics_logs(caplog, level=logging.WARNING):
    return [r for r in caplog.records if r.name.startswith("api_analytics") and r.levelno >= level]


def test_the_seed_code_works_unchanged(collector, run_app):
    # PRODUCT.md section 1, line for line; only the URL points at the local collector.
    config = Config()
    config.privacy_level = 2
    config.server_url = collector.url
    config.get_ip_address = lambda request: request.headers.get(
        "X-Forwarded-For", request.client.host
    )
    config.get_user_agent = lambda request: request.headers.get("User-Agent", "")
    config.get_user_id = lambda request: request.headers.get("X-AUTH-TOKEN", "")

    app = FastAPI()
    app.add_middleware(Analytics, api_key="<API-KEY>", config=config)

    @app.get("/")
    async def root():
        return {"ok": True}

    running = run_app(app)
    before = datetime.now(UTC)
    response = httpx.get(
        running.url + "/",
        headers={
            "X-Forwarded-For": "203.0.113.7",
            "User-Agent": "seed-test/1.0",
            "X-AUTH-TOKEN": "user-42",
        },
    )
    assert response.status_code == 200 and response.json() == {"ok": True}
    running.stop()  # default flush_interval is 5 s: the shutdown flush delivers it

    [delivery] = collector.accepted()
    assert delivery.path == "/api/log-request"
    assert delivery.headers["Content-Encoding"] == "gzip"
    assert delivery.headers["Content-Type"] == "application/json"
    payload = delivery.payload
    assert payload["api_key"] == "<API-KEY>"
    assert payload["framework"] == "FastAPI"
    assert payload["privacy_level"] == 2
    [row] = payload["requests"]
    assert set(row) == ROW_FIELDS
    assert row["ip_address"] is None  # privacy level 2
    assert row["user_agent"] == "seed-test/1.0"
    assert row["user_id"] == "user-42"
    assert row["path"] == "/"
    assert row["method"] == "GET"
    assert row["status"] == 200
    assert row["hostname"] == "127.0.0.1"
    assert isinstance(row["response_time"], (int, float)) and row["response_time"] >= 0
    created = datetime.fromisoformat(row["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_privacy_levels_and_the_ip_mapper(collector, run_app, level):
    calls = []

    def forwarded_for(request):
        calls.append(1)
        return request.headers.get("X-Forwarded-For", request.client.host)

    config = fast_config(collector.url, privacy_level=level)
    config.get_ip_address = forwarded_for
    running = run_app(demo_app(collector.url, config=config))
    httpx.get(running.url + "/hello", headers={"X-Forwarded-For": "198.51.100.23"})

    [row] = collector.wait_for_rows(1)
    assert collector.accepted()[0].payload["privacy_level"] == level
    if level == 2:
        assert row["ip_address"] is None
        assert calls == []  # level 2 never even reads the IP
    else:
        assert row["ip_address"] == "198.51.100.23"  # the server enforces level 1
        assert calls == [1]


def test_default_mappers(collector, run_app):
    running = run_app(demo_app(collector.url))
    raw_get(running, "/items/7", {"Host": "API.Example.COM:8443", "User-Agent": "curl/8.5"})
    raw_get(running, "/items/8")  # no User-Agent at all
    rows = sorted(collector.wait_for_rows(2), key=lambda row: row["path"])

    first, second = rows
    assert first["path"] == "/items/7"
    assert first["hostname"] == "api.example.com"  # as request.url.hostname: no port
    assert second["hostname"] == "testserver"
    assert first["user_agent"] == "curl/8.5"
    assert first["ip_address"] == "127.0.0.1"
    assert first["user_id"] is None
    assert second["user_agent"] is None
    assert {row["status"] for row in rows} == {200}


def test_a_failing_mapper_never_breaks_the_request(collector, run_app, caplog):
    def broken_user_id(request):
        return request.headers["X-Missing"]  # KeyError on every request

    config = fast_config(collector.url)
    config.get_user_id = broken_user_id
    config.get_path = lambda request: 123  # not a string
    running = run_app(demo_app(collector.url, config=config))
    for _ in range(3):
        response = httpx.get(running.url + "/hello", headers={"X-AUTH-TOKEN": "secret-user"})
        assert response.status_code == 200 and response.json() == {"hello": "world"}

    rows = collector.wait_for_rows(3)
    # user_id is null; path falls back to the URL path (the server needs one).
    assert [(row["user_id"], row["path"]) for row in rows] == [(None, "/hello")] * 3
    assert {row["user_agent"] for row in rows} == {f"python-httpx/{httpx.__version__}"}
    warnings = analytics_logs(caplog)
    assert sum("get_user_id" in r.getMessage() for r in warnings) == 1
    assert sum("get_path" in r.getMessage() for r in warnings) == 1
    assert "KeyError" in caplog.text and "returned int" in caplog.text
    assert "secret-user" not in caplog.text and "test-key" not in caplog.text


def test_no_client_address_and_no_user_agent(collector, run_app, tmp_path, caplog):
    # Over a unix socket the ASGI scope has no client: the seed's lambda raises there.
    config = fast_config(collector.url)
    config.get_ip_address = lambda request: request.headers.get(
        "X-Forwarded-For", request.client.host
    )
    running = run_app(demo_app(collector.url, config=config), uds=str(tmp_path / "app.sock"))
    for _ in range(2):
        assert raw_get(running, "/hello").startswith(b"HTTP/1.1 200")

    rows = collector.wait_for_rows(2)
    assert [(row["ip_address"], row["user_agent"]) for row in rows] == [(None, None)] * 2
    assert sum("get_ip_address" in r.getMessage() for r in analytics_logs(caplog)) == 1


def test_streaming_response_streams_and_is_timed_to_the_last_chunk(collector, run_app):
    app = demo_app(collector.url)
    running = run_app(app)
    with httpx.stream("GET", running.url + "/stream") as response:
        chunks = response.iter_raw()
        # The endpoint holds the rest until we release it: a middleware that buffered
        # the body would never hand us this first chunk on its own.
        assert next(chunks) == b"first\n"
        app.state.release_stream.set()
        assert b"".join(chunks) == b"second\nthird\n"

    [row] = collector.wait_for_rows(1)
    assert row["path"] == "/stream" and row["status"] == 200
    # The stream ended >= 300 ms after its headers were sent; a clock stopped at
    # http.response.start would log a millisecond or two.
    assert row["response_time"] >= 300


def test_background_task_runs_and_is_not_timed(collector, run_app):
    app = demo_app(collector.url)
    running = run_app(app)
    response = httpx.get(running.url + "/background")
    assert response.json() == {"queued": True}
    assert app.state.background_done.wait(5), "the background task did not run"

    [row] = collector.wait_for_rows(1)
    assert row["status"] == 200
    assert row["response_time"] < 1000  # the task sleeps 1 s after the response


class CatchAll:
    """An outer pure-ASGI middleware that notes what propagates through ours."""

    def __init__(self, app, caught: list):
        self.app = app
        self.caught = caught

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.caught.append(exc)
            raise


def test_unhandled_exception_is_recorded_as_500_and_reraised(collector, run_app):
    caught: list[BaseException] = []
    app = demo_app(collector.url)
    app.add_middleware(CatchAll, caught=caught)  # added last, so it wraps ours
    running = run_app(app)

    response = httpx.get(running.url + "/boom")
    assert response.status_code == 500
    assert httpx.get(running.url + "/hello").status_code == 200

    rows = collector.wait_for_rows(2)
    assert {(row["path"], row["status"]) for row in rows} == {("/boom", 500), ("/hello", 200)}
    assert len(caught) == 1 and caught[0] is app.state.raised[0]  # the very same exception


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    ("raised", "when", "recorded"),
    [
        (Boom, "before the response", 500),
        (Boom, "mid-stream", 500),  # the client got a cut-off 201: logged as the failure
        (Boom, "after the body", 201),  # a background task failed: the client got a 201
        (asyncio.CancelledError, "before the response", None),  # nothing was answered
        (asyncio.CancelledError, "after the body", 201),
    ],
)
def test_an_exception_is_reraised_unchanged_and_logged_by_what_the_client_got(
    collector, raised, when, recorded
):
    error = raised("from the app")

    async def app(scope, receive, send):
        if when != "before the response":
            await send({"type": "http.response.start", "status": 201, "headers": []})
            more = when == "mid-stream"
            await send({"type": "http.response.body", "body": b"part", "more_body": more})
        raise error

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    scope = {"type": "http", "method": "GET", "path": "/fails", "headers": []}
    scope |= {"client": ("192.0.2.1", 5000), "server": ("api.test", 80)}
    middleware = Analytics(app, api_key="k", config=fast_config(collector.url))
    with pytest.raises(raised) as info:
        asyncio.run(middleware(scope, receive, send))
    assert info.value is error

    if recorded is None:
        assert middleware._client.unsent == 0
    else:
        [row] = collector.wait_for_rows(1)
        assert (row["path"], row["status"], row["hostname"]) == ("/fails", recorded, "api.test")


def test_concurrent_requests_keep_their_own_status_timing_and_user(collector, run_app):
    config = fast_config(collector.url, max_batch=1000)
    config.get_user_id = lambda request: request.headers.get("X-AUTH-TOKEN")
    app = demo_app(collector.url, config=config)

    @app.get("/status/{code}")
    async def status(code: int):
        return Response(status_code=code)

    running = run_app(app)
    codes = [200, 201, 204, 400, 404, 418, 503]

    def call(i: int) -> int:
        code = codes[i % len(codes)]
        headers = {"X-AUTH-TOKEN": f"user-{i}"}
        return httpx.get(f"{running.url}/status/{code}?i={i}", headers=headers).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(70)))
    assert statuses == [codes[i % len(codes)] for i in range(70)]

    rows = collector.wait_for_rows(70)
    assert len(rows) == 70
    seen = {(row["user_id"], row["status"]) for row in rows}
    assert seen == {(f"user-{i}", codes[i % len(codes)]) for i in range(70)}


def test_lifespan_events_still_run(collector, run_app):
    app = demo_app(collector.url)
    run_app(app)
    assert app.state.lifespan_started is True


def test_websocket_scope_passes_through_untouched(collector):
    seen = []

    async def inner(scope, receive, send):
        seen.append((scope, receive, send))

    middleware = Analytics(inner, api_key="k", config=fast_config(collector.url))
    scope = {"type": "websocket", "path": "/ws", "headers": []}

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        pass

    asyncio.run(middleware(scope, receive, send))
    assert seen == [(scope, receive, send)]
    assert middleware._client.unsent == 0


def test_websocket_round_trip_under_uvicorn(collector, run_app):
    wsproto = pytest.importorskip("wsproto")
    import socket

    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    running = run_app(demo_app(collector.url))
    host, port = running.url.removeprefix("http://").split(":")
    connection = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    received = []
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(connection.send(Request(host="testserver", target="/ws")))
        done = False
        while not done:
            connection.receive_data(sock.recv(65536) or None)
            for event in connection.events():
                if isinstance(event, AcceptConnection):
                    sock.sendall(connection.send(TextMessage(data="ping")))
                elif isinstance(event, TextMessage):
                    received.append(event.data)
                elif isinstance(event, CloseConnection):
                    done = True
    assert received == ["ping"]
    assert httpx.get(running.url + "/hello").status_code == 200
    rows = collector.wait_for_rows(1)
    assert [row["path"] for row in rows] == ["/hello"]  # the websocket is not logged


@pytest.mark.parametrize(
    ("api_key", "setting", "value"),
    [
        ("", None, None),
        ("secret-key-123", "privacy_level", 3),
        ("secret-key-123", "server_url", "ftp://example.com"),
        ("secret-key-123", "server_url", "not a url"),
        ("secret-key-123", "get_path", "not callable"),
        ("secret-key-123", "flush_interval", -1),
        ("secret-key-123", "max_batch", 20_000),
    ],
)
def test_misconfiguration_logs_once_and_disables_itself(
    collector, run_app, caplog, api_key, setting, value
):
    config = fast_config(collector.url)
    if setting:
        setattr(config, setting, value)
    running = run_app(demo_app(collector.url, api_key=api_key, config=config))
    for _ in range(3):
        assert httpx.get(running.url + "/hello").json() == {"hello": "world"}
    running.stop()

    errors = analytics_logs(caplog, logging.ERROR)
    assert len(errors) == 1 and "API Analytics disabled" in errors[0].getMessage()
    assert collector.deliveries == []
    assert "secret-key-123" not in caplog.text


def test_config_defaults(monkeypatch):
    monkeypatch.delenv("API_ANALYTICS_URL", raising=False)
    config = Config()
    assert config.server_url == "http://localhost:8000"
    assert config.privacy_level == 0
    assert (config.flush_interval, config.max_batch, config.max_buffer) == (5.0, 1000, 100_000)
    assert config.shutdown_timeout == 5.0
    monkeypatch.setenv("API_ANALYTICS_URL", "https://analytics.example.org")
    assert Config().server_url == "https://analytics.example.org"


def test_the_library_never_sets_its_logger_level(collector, run_app):
    running = run_app(demo_app(collector.url))
    httpx.get(running.url + "/hello")
    collector.wait_for_rows(1)
    for name in ("api_analytics", "api_analytics.core", "api_analytics.fastapi"):
        assert logging.getLogger(name).level == logging.NOTSET
