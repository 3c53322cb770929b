"""Falcon, WSGI (`app`, for gunicorn) and ASGI (`asgi_app`, for uvicorn)."""

import asyncio
import time

import falcon
import falcon.asgi
from api_analytics.falcon import Analytics, Config
from falcon.media.validators import jsonschema

from tests.middleware.apps import (
    BINARY,
    ORDERS_SCHEMA,
    SET_COOKIE,
    STREAM_PAUSE,
    api_key,
    configure,
    echo_body,
)


def headers(req):
    names = ("X-User", "X-Fail", "User-Agent", "X-Consumer")
    return {name: req.get_header(name) for name in names}


config = configure(Config(), headers)


class Item:
    def on_get(self, req, resp, item):
        resp.media = {"item": item}


class Stream:
    def on_get(self, req, resp):
        def chunks():
            yield b"first\n"
            time.sleep(STREAM_PAUSE)
            yield b"second\n"

        resp.content_type = "text/plain"
        resp.stream = chunks()


class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("boom")


class Orders:
    @jsonschema.validate(req_schema=ORDERS_SCHEMA)
    def on_post(self, req, resp):
        resp.media = {"ok": True}


class Echo:
    def on_post(self, req, resp):
        resp.data = echo_body(req.bounded_stream.read())
        resp.content_type = "application/json"
        resp.set_cookie(*SET_COOKIE.split("=", 1))


class Binary:
    def on_get(self, req, resp):
        resp.data = BINARY
        resp.content_type = "application/octet-stream"


class AsyncItem:
    async def on_get(self, req, resp, item):
        resp.media = {"item": item}


class AsyncStream:
    async def on_get(self, req, resp):
        async def chunks():
            yield b"first\n"
            await asyncio.sleep(STREAM_PAUSE)
            yield b"second\n"

        resp.content_type = "text/plain"
        resp.stream = chunks()


class AsyncBoom:
    async def on_get(self, req, resp):
        raise RuntimeError("boom")


class AsyncOrders:
    @jsonschema.validate(req_schema=ORDERS_SCHEMA)
    async def on_post(self, req, resp):
        resp.media = {"ok": True}


class AsyncEcho:
    async def on_post(self, req, resp):
        resp.data = echo_body(await req.stream.read())
        resp.content_type = "application/json"
        resp.set_cookie(*SET_COOKIE.split("=", 1))


class AsyncBinary:
    async def on_get(self, req, resp):
        resp.data = BINARY
        resp.content_type = "application/octet-stream"


app = falcon.App(middleware=[Analytics(api_key(), config)])
app.add_route("/items/{item:int}", Item())
app.add_route("/stream", Stream())
app.add_route("/boom", Boom())
app.add_route("/orders", Orders())
app.add_route("/echo", Echo())
app.add_route("/binary", Binary())

asgi_app = falcon.asgi.App(middleware=[Analytics(api_key(), config)])
asgi_app.add_route("/items/{item:int}", AsyncItem())
asgi_app.add_route("/stream", AsyncStream())
asgi_app.add_route("/boom", AsyncBoom())
asgi_app.add_route("/orders", AsyncOrders())
asgi_app.add_route("/echo", AsyncEcho())
asgi_app.add_route("/binary", AsyncBinary())
