"""Falcon, WSGI (`app`, for gunicorn) and ASGI (`asgi_app`, for uvicorn)."""

import asyncio
import time

import falcon
import falcon.asgi
from api_analytics.falcon import Analytics, Config

from tests.middleware.apps import STREAM_PAUSE, api_key, configure


def headers(req):
    return {"X-User": req.get_header("X-User"), "X-Fail": req.get_header("X-Fail"),
            "User-Agent": req.get_header("User-Agent")}  # fmt: skip


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


app = falcon.App(middleware=[Analytics(api_key(), config)])
app.add_route("/items/{item:int}", Item())
app.add_route("/stream", Stream())
app.add_route("/boom", Boom())

asgi_app = falcon.asgi.App(middleware=[Analytics(api_key(), config)])
asgi_app.add_route("/items/{item:int}", AsyncItem())
asgi_app.add_route("/stream", AsyncStream())
asgi_app.add_route("/boom", AsyncBoom())
