"""The optional fields of docs/capture.md from every framework, in its own real server.

The exception behind a 500, validation errors, consumers, and (when asked for) both
sides of the exchange, masked before anything leaves the process.

The apps are those of `tests/middleware/apps`; each run stops the server with its normal
signal, so the shutdown flush delivers what the test reads.
"""

from __future__ import annotations

import json
import sys
import time

import httpx
import pytest

from bench.services import free_port

from .test_frameworks import SERVERS, Server, start, stop, uvicorn, wait_until_serving

APPS = "tests/middleware/apps"
# One real server for each framework (both of Falcon's app kinds).
FRAMEWORKS = {
    "fastapi": Server("FastAPI", uvicorn("tests.middleware.apps.fastapi_app:app")),
    "starlette": SERVERS["starlette-uvicorn"],
    "litestar": SERVERS["litestar-uvicorn"],
    "flask": SERVERS["flask-gunicorn-gthread"],
    "django": SERVERS["django-gunicorn-gthread"],
    "tornado": SERVERS["tornado"],
    "aiohttp": SERVERS["aiohttp"],
    "sanic": SERVERS["sanic"],
    "falcon-wsgi": SERVERS["falcon-gunicorn"],
    "falcon-asgi": SERVERS["falcon-uvicorn"],
}
APP_FILES = {"fastapi": "fastapi_app", "starlette": "starlette_app", "litestar": "litestar_app",
             "flask": "flask_app", "django": "django_site", "tornado": "tornado_app",
             "aiohttp": "aiohttp_app", "sanic": "sanic_app", "falcon-wsgi": "falcon_app",
             "falcon-asgi": "falcon_app"}  # fmt: skip
# The function that raises in /boom: a handler method where the framework has classes.
BOOM_FUNCTION = {"tornado": "get", "falcon-wsgi": "on_get", "falcon-asgi": "on_get"}
# What each framework's own validation says of {"items": [{"price": "x"}]}; the others
# answer as FastAPI would (apps.ORDERS_422).
ORDERS_TYPE = {"litestar": "type", "flask": "invalid", "django": "invalid",
               "falcon-wsgi": "type", "falcon-asgi": "type"}  # fmt: skip
BASE_FIELDS = {"hostname", "ip_address", "path", "user_agent", "method", "status",
               "response_time", "user_id", "created_at"}  # fmt: skip
SECRETS = {
    "authorization": "Bearer sekret-authorization",
    "cookie": "session=sekret-cookie",
    "password": "sekret-password",
    "token": "sekret-token",
}


def run(collector, name: str, requests, **env: str) -> tuple[dict[str, list[dict]], str]:
    """Serve the framework's app, make `requests(client)`, stop it: the rows by path, and
    the server's output."""
    server = FRAMEWORKS[name]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(server, port, COLLECTOR_URL=collector.url, **env)
    try:
        wait_until_serving(url, process)
        with httpx.Client(base_url=url, timeout=10) as client:
            requests(client)
        # Sanic's main process hangs on a SIGTERM that comes right after its workers
        # report ready (a race of its own); the other servers do not mind the pause.
        time.sleep(0.3)
    finally:
        output = stop(process, server.stop)
    by_path: dict[str, list[dict]] = {}
    for row in collector.rows():
        by_path.setdefault(row["path"], []).append(row)
    by_path.pop("/ready-probe", None)
    return by_path, output


def bad_order(client: httpx.Client) -> httpx.Response:
    return client.post("/orders", json={"items": [{"price": "x"}]})


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_exceptions_validation_errors_and_consumers_with_capture_off(collector, name):
    def requests(client: httpx.Client) -> None:
        assert bad_order(client).status_code in (400, 422)
        assert client.get("/items/1", headers={"X-Consumer": "cus_42"}).status_code == 200
        assert client.get("/items/2").status_code == 200
        # On a connection of its own: an ASGI server may close the one an exception went
        # through while the client is already sending its next request on it.
        assert httpx.get(f"{client.base_url}/boom", timeout=10).status_code == 500

    rows, output = run(collector, name, requests, CONSUMER="header")

    [boom] = rows["/boom"]
    exception = boom["exception"]
    assert (exception["type"], exception["message"]) == ("RuntimeError", "boom"), output
    last_in_app = [frame for frame in exception["stack"] if frame["in_app"]][-1]
    assert last_in_app["file"] == f"{APPS}/{APP_FILES[name]}.py"
    assert last_in_app["function"] == BOOM_FUNCTION.get(name, "boom")
    assert exception["stack"][-1] == last_in_app  # the app's own frame raised it
    # Neither the framework, nor the standard library, nor our package is the app's code.
    assert {frame["file"] for frame in exception["stack"] if frame["in_app"]} == {
        last_in_app["file"]
    }
    assert 0 < len(exception["stack"]) <= 50
    assert all(set(frame) == {"file", "line", "function", "in_app"} for frame in exception["stack"])

    [order] = rows["/orders"]
    assert order["validation_errors"] == [
        {"location": "body.items.0.price", "type": ORDERS_TYPE.get(name, "int_parsing")}
    ]
    [with_consumer] = rows["/items/1"]
    assert with_consumer["consumer"] == {"id": "cus_42", "name": "Acme Inc", "group": "gold"}
    [plain] = rows["/items/2"]
    assert set(plain) == BASE_FIELDS  # nothing applies: exactly what the client sent before
    assert not any("request" in row or "response" in row for same in rows.values() for row in same)


def echo(client: httpx.Client, body: bytes, content_type: str = "application/json", **kw):
    return client.post(
        "/echo", content=body, headers={"Content-Type": content_type, **kw.pop("headers", {})},
        **kw,
    )  # fmt: skip


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_captured_exchanges_are_masked_cut_and_streamed_intact(collector, name):
    secret_body = json.dumps({"email": "a@b.c", "password": SECRETS["password"],
                              "note": "rewrite-me", "nested": [{"api_key": "k-1"}]})  # fmt: skip
    big = json.dumps({"filler": "x" * 2000}).encode()
    answers = {}

    def requests(client: httpx.Client) -> None:
        answers["secret"] = echo(
            client, secret_body.encode(), params={"page": "2", "token": SECRETS["token"]},
            headers={"Authorization": SECRETS["authorization"], "Cookie": SECRETS["cookie"]},
        )  # fmt: skip
        answers["dropped"] = echo(client, b'{"note": "drop-me"}', params={"n": "2"})
        answers["big"] = echo(client, big, params={"n": "3"})
        answers["binary"] = echo(client, bytes(range(200)), "application/octet-stream",
                                 params={"n": "4"})  # fmt: skip
        answers["stream"] = client.get("/stream")
        answers["download"] = client.get("/binary")

    rows, output = run(collector, name, requests, CAPTURE="1", BODY_MAX="512", CONSUMER="raise")

    assert answers["stream"].content == b"first\nsecond\n"  # every chunk, in order
    assert answers["download"].content == bytes(range(256))
    assert answers["big"].json() == {"echo": json.loads(big), "size": len(big)}
    received = collector.received()
    for secret in [*SECRETS.values(), "sekret-set-cookie", "k-1"]:
        assert secret.encode() not in received, f"{secret} left the process"
    assert "get_consumer raised ValueError" in output  # the failing mapper, logged
    assert not any("consumer" in row for same in rows.values() for row in same)

    echoes = {row["request"]["query"]: row for row in rows["/echo"]}
    secret = echoes["page=2&token=[masked]"]
    request, response = secret["request"], secret["response"]
    headers = dict(request["headers"])
    assert headers["authorization"] == headers["cookie"] == "[masked]"
    assert headers["content-type"] == "application/json"
    assert request["body_type"] == "application/json"
    sent = json.loads(request["body"])
    assert sent["password"] == "[masked]" and sent["nested"] == [{"api_key": "[masked]"}]
    assert (sent["note"], sent["email"]) == ("rewritten", "a@b.c")  # mask_body rewrote it
    assert request["body_size"] == len(secret_body)
    assert (request["body_truncated"], request["body_omitted"]) == (False, None)
    # Falcon keeps cookies apart from the headers its middleware can read.
    assert dict(response["headers"]).get("set-cookie", "[masked]") == "[masked]"
    assert "set-cookie" in dict(response["headers"]) or name.startswith("falcon")
    assert json.loads(response["body"])["echo"]["password"] == "[masked]"

    dropped = echoes["n=2"]
    assert dropped["request"]["body"] is None
    assert dropped["request"]["body_omitted"] == dropped["response"]["body_omitted"] == "dropped"

    cut = echoes["n=3"]["request"]
    assert (cut["body_truncated"], cut["body_size"], cut["body_omitted"]) == (True, len(big), None)
    assert cut["body"].startswith('{"filler": "xxx') and len(cut["body"]) <= 512

    binary = echoes["n=4"]["request"]
    assert (binary["body"], binary["body_omitted"]) == (None, "binary")
    assert (binary["body_type"], binary["body_size"]) == ("application/octet-stream", 200)

    [download] = rows["/binary"]
    answer = download["response"]
    assert (answer["body"], answer["body_omitted"], answer["body_size"]) == (None, "binary", 256)
    [stream] = rows["/stream"]
    assert (stream["response"]["body"], stream["response"]["body_omitted"]) == (None, "streamed")


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_a_sample_rate_of_zero_keeps_headers_and_leaves_every_body_out(collector, name):
    def requests(client: httpx.Client) -> None:
        for number in range(3):
            assert echo(client, b'{"n": %d}' % number).status_code == 200

    rows, _ = run(collector, name, requests, CAPTURE="1", SAMPLE="0")
    assert len(rows["/echo"]) == 3
    for row in rows["/echo"]:
        for side in (row["request"], row["response"]):
            assert (side["body"], side["body_omitted"]) == (None, "sampled_out")
            assert side["body_type"] == "application/json"
        assert dict(row["request"]["headers"])["content-type"] == "application/json"


def test_the_frameworks_cover_every_adapter():
    adapters = {server.framework for server in FRAMEWORKS.values()}
    assert adapters == {"FastAPI", "Starlette", "Litestar", "Flask", "Django", "Tornado",
                        "aiohttp", "Sanic", "Falcon"}  # fmt: skip
    assert sys.modules["tests.middleware.test_frameworks"].SERVERS is SERVERS
