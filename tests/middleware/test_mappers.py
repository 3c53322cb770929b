"""The default mappers of every framework's `Config`, and how the core tells them apart."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from unittest import mock

import pytest
from api_analytics.mappers import custom_mappers, default_mappers, no_user_id, reads
from api_analytics.records import host_name

HEADERS = {"Host": "API.Example.COM:8443", "User-Agent": "curl/8.5"}
MODULES = ["fastapi", "starlette", "litestar", "flask", "django", "tornado", "aiohttp", "sanic",
           "falcon"]  # fmt: skip


def test_reads_an_attribute_a_nested_one_a_key_and_converts():
    request = SimpleNamespace(
        path="/a", url=SimpleNamespace(host="h"), headers={"User-Agent": "ua"}, host="X.org:80"
    )
    assert reads("path")(request) == "/a"
    assert reads("url.host")(request) == "h"
    assert reads("headers", "User-Agent")(request) == "ua"
    assert reads("headers", "Missing")(request) is None
    assert reads("host", then=host_name)(request) == "x.org"
    assert no_user_id(request) is None
    # What repr(Config()) shows of a default: what it reads.
    assert reads("headers", "User-Agent").__name__ == "request.headers.get('User-Agent')"
    assert reads("host", then=host_name).__name__ == "host_name(request.host)"


def asgi_scope() -> dict:
    headers = [(name.lower().encode(), value.encode()) for name, value in HEADERS.items()]
    return {"type": "http", "method": "GET", "path": "/items/7", "headers": headers,
            "client": ("10.1.2.3", 1234), "server": ("testserver", 80), "scheme": "http",
            "query_string": b"", "root_path": ""}  # fmt: skip


def starlette_request():
    from starlette.requests import Request

    return Request(asgi_scope())


def litestar_request():
    from litestar import Request

    return Request(asgi_scope())


def flask_request():
    from flask import Flask, request

    context = Flask(__name__).test_request_context(
        "/items/7", headers=HEADERS, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    context.push()
    try:
        return request._get_current_object()
    finally:
        context.pop()


def django_request():
    from django.conf import settings

    if not settings.configured:
        settings.configure(ALLOWED_HOSTS=["*"])
    from django.test import RequestFactory

    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in HEADERS.items()}
    return RequestFactory().get("/items/7", REMOTE_ADDR="10.1.2.3", **meta)


def tornado_request():
    from tornado.httputil import HTTPHeaders, HTTPServerRequest

    request = HTTPServerRequest(
        method="GET", uri="/items/7", headers=HTTPHeaders(HEADERS), connection=mock.Mock()
    )
    request.remote_ip = "10.1.2.3"
    return request


def aiohttp_request():
    from aiohttp.test_utils import make_mocked_request

    transport = mock.Mock()
    transport.get_extra_info.return_value = ("10.1.2.3", 1234)
    return make_mocked_request("GET", "/items/7", headers=HEADERS, transport=transport)


def sanic_request():
    from sanic import Request, Sanic
    from sanic.compat import Header

    headers = Header({name.lower(): value for name, value in HEADERS.items()})
    request = Request(b"/items/7", headers, "1.1", "GET", mock.Mock(), Sanic("mappers_test"))
    request.conn_info = mock.Mock(client_ip="10.1.2.3")
    return request


def falcon_request():
    from falcon.testing import create_req

    return create_req(path="/items/7", headers=HEADERS, remote_addr="10.1.2.3")


REQUESTS = {
    "fastapi": starlette_request, "starlette": starlette_request, "litestar": litestar_request,
    "flask": flask_request, "django": django_request, "tornado": tornado_request,
    "aiohttp": aiohttp_request, "sanic": sanic_request, "falcon": falcon_request,
}  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_the_default_mappers_read_the_frameworks_request(name):
    config = importlib.import_module(f"api_analytics.{name}").Config()
    request = REQUESTS[name]()
    hostname = "API.Example.COM" if name == "falcon" else "api.example.com"  # Falcon's req.host
    assert config.get_path(request) == "/items/7"
    assert config.get_ip_address(request) == "10.1.2.3"
    assert config.get_hostname(request) == hostname
    assert config.get_user_agent(request) == "curl/8.5"
    assert config.get_user_id(request) is None


@pytest.mark.parametrize("name", MODULES)
def test_the_defaults_are_told_from_the_users_mappers_by_identity(name):
    """So the adapters read the default values inline and call only the user's mappers."""
    module = importlib.import_module(f"api_analytics.{name}")
    defaults = default_mappers(module.Config)
    config = module.Config()
    assert custom_mappers(config, defaults, 0) == {}
    config.get_user_id = lambda request: "u"
    assert list(custom_mappers(config, defaults, 0)) == ["get_user_id"]
    # Each framework keeps its own class, whose mappers take that framework's request.
    others = {importlib.import_module(f"api_analytics.{m}").Config for m in MODULES}
    assert len(others) == len(MODULES)


def test_an_adapter_builds_its_recorder_or_logs_one_error(caplog):
    from api_analytics.fastapi import Config
    from api_analytics.recorder import Adapter

    adapter = Adapter("Test", Config)
    recorder = adapter.recorder("key")  # no Config: the default one
    assert recorder is not None and recorder.custom == {} and recorder.privacy == 0
    assert adapter.recorder("", Config()) is None
    for _ in range(3):  # built per request (Tornado): the same error is logged once
        assert adapter.recorder("key", Config(privacy_level=5), per_request=True) is None
    errors = [r.getMessage() for r in caplog.records if r.name == "api_analytics.recorder"]
    assert errors == [
        "API Analytics disabled (Test: api_key is empty; pass your API key)",
        "API Analytics disabled (Test: privacy_level must be 0, 1 or 2)",
    ]
